"""The public contract (PRD §3), field for field."""

from __future__ import annotations

from pydantic import BaseModel, Field


class Level(BaseModel):
    code: str = Field(examples=["absolute_beginner"])
    name: str = Field(examples=["완전 초심자"])
    description: str
    target_audience: str
    characteristics: list[str]
    estimated_hours_per_week: int
    order: int


class LevelsResponse(BaseModel):
    levels: list[Level]


class HealthMetrics(BaseModel):
    avg_response_time: str = Field(examples=["145ms"])
    active_sessions: int
    generation_queue: int


class HealthResponse(BaseModel):
    status: str = Field(examples=["healthy"])
    version: str
    services: dict[str, str | list[str]]
    metrics: HealthMetrics
    degraded: list[str] = Field(default_factory=list, description="what is not connected")


class ErrorDetail(BaseModel):
    code: str
    message: str
    field: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorDetail
