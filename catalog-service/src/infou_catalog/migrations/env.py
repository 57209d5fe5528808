"""Alembic environment of catalog-service: schema `catalog`, version table inside it."""

from infou_catalog.models import Base
from infou_libs.migrations import run_env

run_env(Base.metadata)
