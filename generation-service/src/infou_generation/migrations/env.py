"""Alembic environment of generation-service: schema `generation`, version table inside it."""

from infou_generation.models import Base
from infou_libs.migrations import run_env

run_env(Base.metadata)
