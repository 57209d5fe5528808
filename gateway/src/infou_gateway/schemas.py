"""The public contract (PRD §3), field for field."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field, StringConstraints


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


# ── catalog (PRD §3.2, §3.3) ──────────────────────────────────────────────────────────


class SubTopicCount(BaseModel):
    curated: int
    generated: int


class MainTopic(BaseModel):
    id: int = Field(examples=[1])
    slug: str = Field(examples=["ai-ml"])
    name: str = Field(examples=["인공지능 & 머신러닝"])
    description: str
    category: str = Field(examples=["tech"])
    popularity_score: float = Field(examples=[0.95], description="0-1, from live statistics")
    total_learners: int
    avg_completion_rate: float = Field(examples=[0.73])
    estimated_learning_time: str = Field(examples=["4-6주"])
    difficulty_range: list[str] = Field(examples=[["absolute_beginner", "expert"]])
    subtopic_count: SubTopicCount


class PageMeta(BaseModel):
    total: int
    page: int
    per_page: int


class MainTopicList(BaseModel):
    items: list[MainTopic]
    meta: PageMeta


class CuratedSubTopic(BaseModel):
    id: str = Field(examples=["curated_1"])
    main_topic_id: int
    slug: str = Field(examples=["transformers-architecture"])
    name: str
    description: str
    source_type: str = Field(examples=["curated"])
    quality_score: float
    usage_count: int
    avg_rating: float = Field(examples=[4.3], description="1-5 (like = 5, dislike = 1); 0 unrated")
    learning_outcomes: list[str]
    prerequisites: list[str] = Field(default_factory=list)
    levels: list[str] = Field(default_factory=list, description="the levels it suits")


class CuratedSubTopicList(BaseModel):
    items: list[CuratedSubTopic]


class MainTopicDetail(MainTopic):
    sub_topics: list[CuratedSubTopic] = Field(description="its curated sub-topics, in order")


# ── personalised sub-topics (PRD §3.3) ────────────────────────────────────────────────


LevelCode = Literal["absolute_beginner", "beginner", "intermediate", "advanced", "expert"]
Interest = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=50)]


class SubTopicPersonalization(BaseModel):
    interests: list[Interest] = Field(
        default_factory=list, max_length=10, examples=[["chatbot", "automation", "nlp"]]
    )
    current_level: LevelCode | None = Field(default=None, examples=["intermediate"])
    learning_goals: str = Field(default="", max_length=500, examples=["업무 자동화 도구 개발"])
    time_availability: str = Field(default="", max_length=50, examples=["regular"])
    preferred_style: str = Field(default="", max_length=50, examples=["practical"])


class SubTopicOptions(BaseModel):
    max_subtopics: int = Field(default=5, ge=1, le=10)
    include_prerequisites: bool = True
    difficulty_progression: bool = Field(default=True, description="easiest sub-topic first")


class SubTopicGenerateRequest(BaseModel):
    main_topic_id: int = Field(ge=1, le=2_147_483_647, examples=[1])
    personalization: SubTopicPersonalization = Field(default_factory=SubTopicPersonalization)
    options: SubTopicOptions = Field(default_factory=SubTopicOptions)


class SubTopicGenerateAccepted(BaseModel):
    generation_id: str = Field(examples=["gen_3f9a1c2b7d4e5f60"])
    status: str = Field(examples=["processing"])
    estimated_completion: str = Field(examples=["2024-08-30T15:30:00Z"])
    message: str


class GeneratedSubTopic(BaseModel):
    id: str = Field(examples=["generated_456"])
    main_topic_id: int
    slug: str
    name: str
    description: str
    estimated_learning_time: str = Field(examples=["1-2주"])
    prerequisites: list[str]
    practical_projects: list[str]
    learning_outcomes: list[str]
    difficulty_focus: str = Field(examples=["intermediate"])
    source_type: str = Field(default="generated", examples=["generated"])


class GenerationFailure(BaseModel):
    code: str = Field(examples=["GENERATION_FAILED", "LLM_BUDGET_EXCEEDED"])
    message: str


class SubTopicGenerationResult(BaseModel):
    generation_id: str
    status: str = Field(description="processing | completed | failed")
    items: list[GeneratedSubTopic] = Field(description="filled once completed")
    error: GenerationFailure | None = Field(default=None, description="set when failed")
