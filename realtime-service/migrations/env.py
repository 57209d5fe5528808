"""Alembic environment of realtime-service: schema `realtime`, version table inside it."""

from infou_realtime.models import Base
from infou_libs.migrations import run_env

run_env(Base.metadata)
