"""Regenerates infou_protos from protos/proto; `--check` fails when the committed code is stale."""

from __future__ import annotations

import contextlib
import filecmp
import io
import shutil
import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent
PROTO_DIR = ROOT / "proto"
OUT_DIR = ROOT / "src"
PACKAGE = "infou_protos"


def generate(out: Path) -> None:
    protos = sorted(str(p.relative_to(PROTO_DIR)) for p in PROTO_DIR.rglob("*.proto"))
    include = Path(protoc.__file__).parent / "_proto"
    args = [
        "protoc",
        f"-I{PROTO_DIR}",
        f"-I{include}",
        f"--python_out={out}",
        f"--grpc_python_out={out}",
        f"--mypy_out={out}",
        f"--mypy_grpc_out={out}",
        *protos,
    ]
    # protoc-gen-mypy reports each file on stdout; keep the check's output to its verdict.
    with contextlib.redirect_stdout(io.StringIO()):
        status = protoc.main(args)
    if status != 0:
        raise SystemExit("protoc failed")
    for folder in [out / PACKAGE, *(out / PACKAGE).rglob("*")]:
        if folder.is_dir():
            (folder / "__init__.py").touch()
    (out / PACKAGE / "py.typed").touch()


def generated_files(base: Path) -> dict[str, Path]:
    root = base / PACKAGE
    return {
        str(p.relative_to(base)): p
        for p in root.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }


def main() -> None:
    check = "--check" in sys.argv
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp)
        generate(fresh)
        new = generated_files(fresh)
        old = generated_files(OUT_DIR)
        stale = sorted(
            name
            for name in new.keys() | old.keys()
            if name not in new or name not in old or not filecmp.cmp(new[name], old[name], False)
        )
        if check:
            if stale:
                print("generated protobuf code is stale; run `make protos`:", *stale, sep="\n  ")
                raise SystemExit(1)
            print(f"infou_protos is up to date ({len(new)} files)")
            return
        for name in stale:
            target = OUT_DIR / name
            if name in new:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(new[name], target)
            else:
                target.unlink()
        print(f"regenerated infou_protos: {len(stale)} file(s) changed")


if __name__ == "__main__":
    main()
