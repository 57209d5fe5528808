"""Alembic environment of realtime-service: schema `realtime`, version table inside it."""

from infou_libs.migrations import run_env
from infou_realtime.models import Base

run_env(Base.metadata)
