"""Alembic environment of session-service: schema `session`, version table inside it."""

from infou_session.models import Base
from infou_libs.migrations import run_env

run_env(Base.metadata)
