"""Alembic environment of feedback-service: schema `feedback`, version table inside it."""

from infou_feedback.models import Base
from infou_libs.migrations import run_env

run_env(Base.metadata)
