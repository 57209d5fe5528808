"""The Dockerfile: hadolint-clean, pinned, non-root, and installing what the install test tests."""

from __future__ import annotations

import re
import subprocess
import tomllib
from collections.abc import Callable

from infou_devtools.testing import repo_root

DOCKERFILE = repo_root() / "Dockerfile"


def test_hadolint_finds_nothing(tool: Callable[[str], str]) -> None:
    result = subprocess.run(
        [tool("hadolint"), "--failure-threshold", "info", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_base_image_is_pinned_by_digest() -> None:
    froms = re.findall(r"^FROM\s+(\S+)", DOCKERFILE.read_text(), flags=re.MULTILINE)
    assert froms
    for image in froms:
        assert re.search(r"@sha256:[0-9a-f]{64}$", image), f"not pinned by digest: {image}"


def test_the_image_installs_as_the_install_test_does_and_runs_as_a_number() -> None:
    text = DOCKERFILE.read_text()
    assert "uv sync --frozen --no-dev --no-install-workspace" in text
    assert "uv sync --frozen --no-dev --no-editable" in text
    assert re.search(r"^USER \d+:\d+$", text, flags=re.MULTILINE)
    assert re.search(r"^HEALTHCHECK ", text, flags=re.MULTILINE)
    root = tomllib.loads((repo_root() / "pyproject.toml").read_text())
    for member in root["tool"]["uv"]["workspace"]["members"]:
        assert f"COPY {member}/pyproject.toml {member}/" in text, member
        if member != "devtools":
            assert f"COPY {member} {member}" in text, member
    assert "COPY devtools devtools" not in text
