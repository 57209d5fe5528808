"""The public contract (PRD §3), field for field."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field, StringConstraints

from infou_libs import limits
from infou_libs.levels import LevelCode


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


Interest = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=limits.MAX_INTEREST_CHARS),
]


class SubTopicPersonalization(BaseModel):
    interests: list[Interest] = Field(
        default_factory=list,
        max_length=limits.MAX_INTERESTS,
        examples=[["chatbot", "automation", "nlp"]],
    )
    current_level: LevelCode | None = Field(default=None, examples=["intermediate"])
    learning_goals: str = Field(
        default="", max_length=limits.MAX_LEARNING_GOALS_CHARS, examples=["업무 자동화 도구 개발"]
    )
    time_availability: str = Field(
        default="", max_length=limits.MAX_SHORT_TEXT_CHARS, examples=["regular"]
    )
    preferred_style: str = Field(
        default="", max_length=limits.MAX_SHORT_TEXT_CHARS, examples=["practical"]
    )


class SubTopicOptions(BaseModel):
    max_subtopics: int = Field(default=limits.DEFAULT_SUBTOPICS, ge=1, le=limits.MAX_SUBTOPICS)
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
    id: str = Field(examples=["generated_Xb3kP9qL2mN8vR4tY7wZ1a"])
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


# ── learning sessions, curricula, articles (PRD §3.4, §3.5) ───────────────────────────


class SessionPersonalization(BaseModel):
    learning_pace: Literal["slow", "relaxed", "regular", "fast", "intensive"] = Field(
        default="regular", description="articles read per week: 2, 3, 4, 6, 7"
    )
    preferred_article_length: Literal["short", "medium", "long"] = "medium"
    include_examples: bool = True
    interests: list[Interest] = Field(default_factory=list, max_length=limits.MAX_INTERESTS)
    learning_goals: str = Field(default="", max_length=limits.MAX_LEARNING_GOALS_CHARS)
    preferred_style: str = Field(default="", max_length=limits.MAX_SHORT_TEXT_CHARS)


class SessionOptions(BaseModel):
    max_articles_per_subtopic: int | None = Field(
        default=None,
        ge=1,
        le=limits.MAX_ARTICLES_PER_SUBTOPIC,
        description="default: INFOU_DEFAULT_ARTICLES_PER_SUBTOPIC",
    )
    enable_adaptive_difficulty: bool = False
    include_practice_problems: bool = False


SubTopicId = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True,
        max_length=60,
        pattern=r"^(curated_[0-9]{1,9}|generated_[A-Za-z0-9_-]{16,40})$",
    ),
]


class SessionCreateRequest(BaseModel):
    main_topic_id: int = Field(ge=1, le=2_147_483_647, examples=[1])
    sub_topic_ids: list[SubTopicId] = Field(
        min_length=1,
        max_length=50,
        examples=[["curated_1", "generated_Xb3kP9qL2mN8vR4tY7wZ1a"]],
        description="1 to 10 ids",
    )
    level: LevelCode = Field(examples=["intermediate"])
    personalization: SessionPersonalization = Field(default_factory=SessionPersonalization)
    options: SessionOptions = Field(default_factory=SessionOptions)


class SessionCreated(BaseModel):
    session_id: str = Field(examples=["sess_0f6e2a9c4b7d4e1f8a3b5c6d7e8f9a0b"])
    status: str = Field(examples=["initializing"])
    estimated_total_time: str = Field(examples=["3-4주"])
    websocket_url: str = Field(examples=["ws://api.infou.com/sessions/sess_…/ws"])
    access_token: str = Field(
        description="shown once: send it as `Authorization: Bearer <token>` on every call of "
        "this session (for the WebSocket: that header, or the subprotocols `infou.v1, <token>`)"
    )
    token_type: str = "Bearer"  # noqa: S105 - the scheme, not a secret
    estimated_cost_usd: float = Field(description="an estimate; generation_info has the real cost")
    estimated_articles: int
    expires_at: str


class CurriculumSummary(BaseModel):
    title: str
    level: str
    total_articles: int
    completed_articles: int = Field(description="read to the end by the learner")
    estimated_completion_time: str = Field(examples=["3-4주"])
    generated_articles: int = Field(description="written and readable")
    failed_articles: int


class SessionProgress(BaseModel):
    current_article_id: str | None
    completion_percentage: float
    time_spent: str = Field(examples=["0분"])
    last_accessed: str | None


class GenerationInfo(BaseModel):
    llm_model: str | None = Field(examples=["gpt-4.1"])
    generation_time: str = Field(examples=["2분 15초"], description="so far, until ready")
    total_tokens_used: int
    cost: float = Field(description="USD, from the LLM cost ledger")
    cached_results: int = Field(description="curriculum and articles served from the cache")
    saved_cost: float = Field(
        description="USD the content cache saved: what the content served from it cost when "
        "it was generated (6 decimals, like cost)"
    )


class SessionStatus(BaseModel):
    session_id: str
    status: str = Field(
        description="initializing | generating | ready | active | completed | failed"
    )
    created_at: str
    expires_at: str
    curriculum: CurriculumSummary
    progress: SessionProgress
    generation_info: GenerationInfo
    failure_reason: str | None = Field(default=None, description="set while failed")
    main_topic_id: int
    sub_topic_ids: list[str]


class CurriculumItem(BaseModel):
    id: str
    order: int
    title: str
    summary: str
    sub_topic: str
    sub_topic_id: str
    estimated_read_time: str = Field(examples=["3-4분"])
    key_concepts: list[str]
    is_generated: bool = Field(description="written by an LLM for this session")
    difficulty_indicators: list[str]
    prerequisites: list[str] = Field(description="titles of earlier items to read first")
    status: str = Field(description="generating | ready | failed")
    content_ready: bool


class CurriculumResponse(BaseModel):
    session_id: str
    title: str
    level: str
    status: str = Field(description="the session's status")
    ready: bool = Field(description="false (HTTP 202, no items) until the curriculum exists")
    items: list[CurriculumItem]


class QualityReport(BaseModel):
    score: float = Field(description="0-1; an article under the threshold is never served")
    passed: bool
    judged: bool = Field(
        default=True, description="false for offline template text: its score judges nothing"
    )
    threshold: float
    warnings: list[str] = Field(examples=[["missing_analogies"]])
    level_fit: list[str] = Field(description="level-fit bands the text breaks, e.g. too_hard:…")
    checks: dict[str, float] = Field(description="what the gate measured")


class ArticleMetadata(BaseModel):
    generated_at: str | None
    llm_model: str | None
    offline: bool = Field(
        default=False, description="template text of the offline provider, not an LLM's"
    )
    generation_prompt: str
    quality_score: float
    human_reviewed: bool
    quality: QualityReport | None = Field(
        default=None, description="the quality gate's report; null while none was written"
    )


class LearningElements(BaseModel):
    key_terms: list[str]
    code_examples: int
    practical_tips: list[str]
    related_concepts: list[str]


class DifficultyVariants(BaseModel):
    available_levels: list[str]
    current_level: str


class ArticleResponse(BaseModel):
    id: str
    session_id: str
    order: int
    title: str
    summary: str
    content: str
    level: str
    sub_topic: str
    sub_topic_slug: str
    word_count: int
    estimated_read_time: str
    next_article_id: str | None
    previous_article_id: str | None
    metadata: ArticleMetadata
    learning_elements: LearningElements
    difficulty_variants: DifficultyVariants
    base_article_id: str | None = Field(description="set on a level variant")
    status: str = "ready"


class ArticlePending(BaseModel):
    """HTTP 202: the article (or its variant at this level) is not written yet."""

    id: str
    session_id: str
    order: int
    title: str
    level: str
    status: str = Field(examples=["generating"])
    message: str


class ConversionAccepted(BaseModel):
    """HTTP 202: the conversion runs in the background; `conversion_complete` on the
    session's WebSocket announces it, then GET /articles/{id}?level=<target_level> serves it."""

    task_id: str
    status: str = Field(examples=["processing"])
    article_id: str
    target_level: str
    message: str


# ── feedback, learning progress, analytics (PRD §3.7) ─────────────────────────────────

FeedbackType = Literal["difficulty", "clarity", "usefulness", "accuracy"]
ProgressAction = Literal["started", "completed", "bookmarked", "skipped", "level_switched"]
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]


class FeedbackRequest(BaseModel):
    rating: Literal["like", "dislike"]
    feedback_type: list[FeedbackType] = Field(default_factory=list, max_length=4)
    comments: str | None = Field(
        default=None, max_length=1000, examples=["예제가 더 있으면 좋겠어요"]
    )
    difficulty_perceived: Literal["too_easy", "appropriate", "too_hard"] | None = None
    session_id: str = Field(min_length=1, max_length=64, examples=["sess_xyz789"])


class FeedbackResponse(BaseModel):
    """HTTP 201: the stored feedback; a later one for the same article replaces it."""

    id: int
    article_id: str
    session_id: str
    rating: str
    feedback_type: list[str]
    comments: str | None
    difficulty_perceived: str | None
    user_level_at_time: str | None = Field(description="the level the learner read at")
    time_spent_reading: int = Field(description="seconds, from the article's progress entries")
    scroll_depth: float | None
    created_at: str | None
    updated_at: str | None = Field(description="the latest submission")
    replaced: bool = Field(description="this submission replaced an earlier rating")
    previous_rating: str | None


class ProgressRequest(BaseModel):
    article_id: str = Field(min_length=1, max_length=80, examples=["art_001"])
    action: ProgressAction
    time_spent: int = Field(default=0, ge=0, le=86_400, description="seconds")
    scroll_depth: Fraction | None = None
    engagement_score: Fraction | None = None
    device_type: str | None = Field(default=None, max_length=20, examples=["mobile"])
    referrer_url: str | None = Field(
        default=None, max_length=2048, pattern=r"^https?://[^\x00-\x1f\x7f-\x9f]*$"
    )
    level: LevelCode | None = Field(
        default=None, description="the level read at; default: the session's current level"
    )
    from_level: LevelCode | None = Field(default=None, description="level_switched only")
    to_level: LevelCode | None = Field(default=None, description="level_switched: required")


class ProgressResponse(BaseModel):
    """HTTP 201: the logged entry."""

    id: int
    session_id: str
    article_id: str
    action: str
    time_spent: int
    scroll_depth: float | None
    engagement_score: float | None
    level: str | None
    from_level: str | None
    to_level: str | None
    device_type: str | None
    timestamp: str | None


class SessionAnalyticsResponse(BaseModel):
    """Beyond the PRD: the session's analytics (PRD §4.5 session_analytics), kept current."""

    session_id: str
    completion_rate: float = Field(description="completed articles / articles, 0.0-1.0")
    avg_time_per_article: int = Field(description="seconds")
    total_engagement_score: float = Field(description="mean engagement score, 0.0-1.0")
    positive_feedback_count: int
    negative_feedback_count: int
    avg_difficulty_rating: float = Field(
        description="too_easy 1, appropriate 2, too_hard 3; 0 while nobody said"
    )
    level_switches_count: int
    most_used_level: str | None
    preferred_article_length: int | None = Field(description="words")
    completed_articles: int
    total_articles: int
    total_time_spent: int = Field(description="seconds")
    feedback_count: int
    current_level: str = Field(description="after adaptive or manual level switches")
    adaptive_difficulty: bool
    last_calculated_at: str | None
