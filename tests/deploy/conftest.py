"""Helpers of the deployment checks: the dev group's command-line tools."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import pytest


def _tool(name: str) -> str:
    local = Path(sys.executable).parent / name
    found = str(local) if local.exists() else shutil.which(name)
    if not found:
        pytest.fail(f"{name} is missing: it is a dev dependency, `make bootstrap` installs it")
    return found


@pytest.fixture(scope="session")
def tool() -> Callable[[str], str]:
    """The path of a console script of the test environment (hadolint, kubectl, …)."""
    return _tool
