"""`infou`: the development command line (run the stack, make migrations, rotate data keys)."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import sys
import tempfile
from pathlib import Path

SERVICES = ("catalog", "session", "generation", "feedback", "realtime")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="infou", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start engines and every service; Ctrl-C stops all")
    up.add_argument("--port", type=int, default=None, help="gateway port (default 8000)")
    up.add_argument("--data-dir", type=Path, default=None, help="engine data (default .infou)")
    rev = sub.add_parser("revision", help="autogenerate an Alembic revision for a service")
    rev.add_argument("service", choices=SERVICES)
    rev.add_argument("-m", "--message", required=True)
    keys = sub.add_parser(
        "keys", help="API keys of the gateway: create, revoke, list", add_help=False
    )
    keys.add_argument("rest", nargs=argparse.REMAINDER)
    rot = sub.add_parser(
        "rotate-keys", help="re-encrypt stored personal data under the newest INFOU_DATA_KEYS key"
    )
    rot.add_argument("services", nargs="*", metavar="service", help="default: every service")
    args, extra = parser.parse_known_args(argv)
    if args.command != "keys" and extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")

    if args.command == "up":
        from infou_devtools.stack import run_up
        from infou_libs.logging import configure_logging

        configure_logging("stack", json=False)
        sys.exit(run_up(port=args.port, data_dir=args.data_dir))
    if args.command == "revision":
        _revision(args.service, args.message)
    if args.command == "keys":
        # The gateway owns its keys (in its Redis); this is only the way in.
        apikeys = importlib.import_module("infou_gateway.apikeys")
        sys.exit(apikeys.command([*args.rest, *extra]))
    if args.command == "rotate-keys":
        unknown = sorted(set(args.services) - set(SERVICES))
        if unknown:
            parser.error(f"unknown services {unknown}; known: {list(SERVICES)}")
        asyncio.run(_rotate_keys(args.services or list(SERVICES)))


async def _rotate_keys(services: list[str]) -> None:
    """Each service's own `python -m infou_<svc> rotate-keys` (infou_libs.runtime), in turn."""
    from infou_libs.runtime import rotate_keys
    from infou_libs.settings import CommonSettings

    settings = CommonSettings()
    for service in services:
        spec = importlib.import_module(f"infou_{service}.main").SPEC
        await rotate_keys(spec, settings)


def _revision(service: str, message: str) -> None:
    """Compares the service's models with its migrations on a throw-away embedded database."""
    from infou_devtools import engines
    from infou_libs import migrations

    module = importlib.import_module(f"infou_{service}.main")
    spec = module.SPEC
    with tempfile.TemporaryDirectory() as tmp:
        pg = engines.start_postgres(Path(tmp) / "pg", fast=True)
        try:
            url = asyncio.run(engines.ensure_database(pg.url, "infou"))
            migrations.revision(spec.migrations_dir, url, spec.schema, message)
        finally:
            pg.stop()


if __name__ == "__main__":
    main()
