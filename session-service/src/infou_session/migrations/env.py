"""Alembic environment of session-service: schema `session`, version table inside it."""

from infou_libs.migrations import run_env
from infou_session.models import Base

run_env(Base.metadata)
