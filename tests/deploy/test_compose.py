"""docker-compose.yml: valid against the compose specification's schema; every engine and
service has a healthcheck and starts only once what it depends on is healthy."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from typing import Any

import yaml

from infou_devtools.testing import repo_root

COMPOSE = repo_root() / "docker-compose.yml"


def test_the_compose_file_follows_the_compose_schema(tool: Callable[[str], str]) -> None:
    # check-jsonschema ships the compose-spec schema (no download needed).
    result = subprocess.run(
        [tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(COMPOSE)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_everything_is_health_checked_and_waits_for_health() -> None:
    services: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())["services"]
    for name, service in services.items():
        assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
        for dependency, condition in (service.get("depends_on") or {}).items():
            assert dependency in services, (name, dependency)
            assert condition == {"condition": "service_healthy"}, (name, dependency)
    gateway_needs = set(services["gateway"]["depends_on"])
    assert {"catalog", "session", "generation", "feedback", "realtime", "valkey"} <= gateway_needs
    for name in ("catalog", "session", "generation", "feedback", "realtime"):
        assert {"postgres", "nats"} <= set(services[name]["depends_on"]), name
