"""generation use cases: engine status and personalised sub-topics (PRD §3.3, §4.2)."""

from __future__ import annotations

import datetime as dt
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

from nats.js import JetStreamContext
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from infou_generation import repository
from infou_generation.admission import Admissions, Workload
from infou_generation.catalog import CatalogClient, main_topic_context
from infou_generation.content.levels import LEVEL_NAMES, level_index
from infou_generation.content.moderation import CONTENT_FLAGGED, FlaggedOutputError
from infou_generation.engine import TEMPERATURE, Generated, GenerationEngine
from infou_generation.llm.types import BudgetExceededError, InvalidOutputError
from infou_generation.models import (
    GeneratedSubTopic,
    SubTopicGenerationRequest,
    idempotency_keys,
    new_public_id,
    outbox,
)
from infou_libs import idempotency, limits, subjects
from infou_libs.db import unit_of_work
from infou_libs.errors import InvalidArgument, NotFound
from infou_libs.levels import LEVELS
from infou_libs.logging import get_logger
from infou_libs.messaging import pending_messages
from infou_libs.outbox import add_event
from infou_libs.protobuf import timestamp
from infou_protos.events.v1 import events_pb2

log = get_logger(__name__)

GENERATION_FAILED: Final = "GENERATION_FAILED"
LLM_BUDGET_EXCEEDED: Final = "LLM_BUDGET_EXCEEDED"
GENERATION_FAILED_MESSAGE: Final = "맞춤 소주제를 생성하지 못했습니다. 잠시 후 다시 시도해 주세요."
CONTENT_FLAGGED_MESSAGE: Final = (
    "생성된 소주제가 콘텐츠 안전 검사를 통과하지 못했습니다. 요청 내용을 바꿔 다시 시도해 주세요."
)

MAX_LOOKUP_IDS: Final = 100
_PUBLIC_ID = re.compile(r"[A-Za-z0-9_-]{16,40}")
_GENERATION_ID = re.compile(r"gen_[0-9a-f]{16}")
_ITEM_CHARS: Final = 300
_LIST_ITEMS: Final = 8


@dataclass(frozen=True)
class EngineStatus:
    providers: list[str]
    workers_alive: int
    pending_jobs: int


async def engine_status(
    session: AsyncSession, js: JetStreamContext, providers: list[str], heartbeat_seconds: float
) -> EngineStatus:
    # A worker that missed three heartbeats is taken for dead.
    alive = await repository.count_alive(session, dt.timedelta(seconds=3 * heartbeat_seconds))
    return EngineStatus(providers, alive, await pending_messages(js, subjects.JOBS_STREAM))


# --- personalised sub-topics: the request ----------------------------------------------------


@dataclass(frozen=True)
class SubTopicRequestAccepted:
    generation_id: str
    status: str
    estimated_completion: dt.datetime
    replayed: bool = False


def validate_personalization(raw: dict[str, Any]) -> dict[str, Any]:
    """The learner's input for sub-topics, trimmed and bounded; InvalidArgument names the field."""
    interests = [str(i).strip() for i in raw.get("interests") or []]
    if len(interests) > limits.MAX_INTERESTS:
        raise InvalidArgument(
            f"at most {limits.MAX_INTERESTS} interests", field="personalization.interests"
        )
    for i, interest in enumerate(interests):
        if not interest or len(interest) > limits.MAX_INTEREST_CHARS:
            raise InvalidArgument(
                f"each interest must be 1-{limits.MAX_INTEREST_CHARS} characters",
                field=f"personalization.interests.{i}",
            )
    level = str(raw.get("current_level") or "").strip()
    if level and level not in LEVELS:
        raise InvalidArgument(
            f"must be one of {', '.join(LEVELS)}", field="personalization.current_level"
        )
    clean: dict[str, Any] = {"interests": interests, "current_level": level}
    for key, limit in (
        ("learning_goals", limits.MAX_LEARNING_GOALS_CHARS),
        ("time_availability", limits.MAX_SHORT_TEXT_CHARS),
        ("preferred_style", limits.MAX_SHORT_TEXT_CHARS),
    ):
        value = str(raw.get(key) or "").strip()
        if len(value) > limit:
            raise InvalidArgument(f"at most {limit} characters", field=f"personalization.{key}")
        clean[key] = value
    return clean


def learner_text(personal: dict[str, Any]) -> dict[str, str]:
    """The free text of validated sub-topic personalization, by its public field (moderated)."""
    texts = {
        f"personalization.{key}": str(personal[key])
        for key in ("learning_goals", "time_availability", "preferred_style")
    }
    for i, interest in enumerate(personal["interests"]):
        texts[f"personalization.interests.{i}"] = str(interest)
    return texts


def validate_options(raw: dict[str, Any] | None) -> dict[str, Any]:
    """max_subtopics 1..10 (0 or missing: 5); both flags default to true when no options came."""
    raw = raw or {}
    count = raw.get("max_subtopics") or limits.DEFAULT_SUBTOPICS
    if (
        isinstance(count, bool)
        or not isinstance(count, int)
        or not 1 <= count <= limits.MAX_SUBTOPICS
    ):
        raise InvalidArgument(
            f"must be between 1 and {limits.MAX_SUBTOPICS}", field="options.max_subtopics"
        )
    return {
        "max_subtopics": count,
        "include_prerequisites": bool(raw.get("include_prerequisites", True)),
        "difficulty_progression": bool(raw.get("difficulty_progression", True)),
    }


def new_generation_id() -> str:
    return f"gen_{secrets.token_hex(8)}"


def estimated_seconds(max_subtopics: int) -> int:
    """What a generation of this size usually takes (a provider call of a few thousand tokens)."""
    return 10 + 3 * max_subtopics


async def request_subtopics(
    sessions: async_sessionmaker[AsyncSession],
    catalog: CatalogClient,
    *,
    main_topic_id: int,
    personalization: dict[str, Any],
    options: dict[str, Any] | None,
    requester_id: str,
    ttl: dt.timedelta,
    admissions: Admissions,
    client_id: str = "",
    client_share: float = 0.0,
    idempotency_key: str = "",
) -> SubTopicRequestAccepted:
    """Admits the request against the budget (its own committed hold, like a call's budget hold:
    it must be taken before anything is stored or queued), then stores the request and its job
    in one transaction; the work runs on a worker. With an Idempotency-Key a replay returns the
    first request."""
    personal = validate_personalization(personalization)
    opts = validate_options(options)
    key = fingerprint = ""
    if idempotency_key:
        key = idempotency.key_hash("subtopics", client_id, idempotency_key)
        fingerprint = idempotency.request_hash(
            {"main_topic_id": main_topic_id, "personalization": personal, "options": opts}
        )
        replay = await _replayed(sessions, key, fingerprint)
        if replay is not None:
            return replay
    await catalog.main_topic(main_topic_id)  # NotFound(field="main_topic_id")
    generation_id = new_generation_id()
    now = dt.datetime.now(dt.UTC)
    eta = now + dt.timedelta(seconds=estimated_seconds(opts["max_subtopics"]))
    await admissions.reserve(
        kind="subtopics",
        reference_id=generation_id,
        work=Workload(subtopic_generations=1),
        client_id=client_id,
        client_share=client_share,
        learner_text=learner_text(personal),
    )
    try:
        async with unit_of_work(sessions) as session:
            if key:
                await idempotency.remember(
                    session, idempotency_keys, key, fingerprint, generation_id
                )
            await repository.add_subtopic_request(
                session,
                SubTopicGenerationRequest(
                    generation_batch_id=generation_id,
                    main_topic_id=main_topic_id,
                    user_session_id=requester_id[:100] or None,
                    personalization_input=personal,
                    generation_options=opts,
                    status="pending",
                    estimated_completion_at=eta,
                    expires_at=now + ttl,
                ),
            )
            await add_event(
                session,
                outbox,
                subjects.SUBTOPICS_JOB,
                events_pb2.GenerateSubTopicsJob(generation_id=generation_id),
                event_id=f"job-subtopics-{generation_id}",
            )
    except BaseException as exc:
        await admissions.release(generation_id)
        if isinstance(exc, idempotency.KeyTaken):
            replay = await _replayed(sessions, key, fingerprint)
            if replay is not None:
                return replay
        raise
    log.info("subtopics_requested", generation_id=generation_id, main_topic_id=main_topic_id)
    return SubTopicRequestAccepted(generation_id, "processing", eta)


async def _replayed(
    sessions: async_sessionmaker[AsyncSession], key: str, fingerprint: str
) -> SubTopicRequestAccepted | None:
    """The request an earlier call with this Idempotency-Key stored, if any."""
    async with sessions() as session:
        generation_id = await idempotency.recall(session, idempotency_keys, key, fingerprint)
        if generation_id is None:
            return None
        earlier = await repository.subtopic_request(session, generation_id)
    if earlier is None:
        return None
    status = "processing" if earlier.status == "pending" else earlier.status
    return SubTopicRequestAccepted(
        generation_id, status, earlier.estimated_completion_at, replayed=True
    )


# --- personalised sub-topics: the job ----------------------------------------------------------


class GenerationGone(Exception):
    """The job names a generation that does not exist (or whose topic is gone): never retried."""


async def generate_subtopics(
    sessions: async_sessionmaker[AsyncSession],
    engine: GenerationEngine,
    catalog: CatalogClient,
    generation_id: str,
) -> None:
    """Runs one sub-topic generation to its end; a second run of a finished one does nothing.

    The answer passes the engine's output moderation: flagged → generated once more; flagged
    again → the generation fails with CONTENT_FLAGGED.

    A run killed half-way leaves nothing behind but the request in `processing`: the results,
    the request's completion and the SubTopicsGenerated event commit together.

    Two short units of work with the LLM calls between them, not one: the first marks the
    generation processing and counts the attempt (readers see it started), the second stores
    the results with their event. One transaction across the calls would hold the request's row
    lock and a connection for the whole generation. The request's status is the job's
    idempotency key (a finished generation is never run again, whichever job names it), so
    this job needs no claim of its event id.
    """
    async with unit_of_work(sessions) as session:
        request = await repository.subtopic_request(session, generation_id, lock=True)
        if request is None:
            raise GenerationGone(f"no sub-topic generation {generation_id!r}")
        if request.status in ("completed", "failed"):
            log.info("subtopics_job_already_done", generation_id=generation_id)
            return
        request.status = "processing"
        request.started_at = request.started_at or dt.datetime.now(dt.UTC)
        request.attempts += 1
        main_topic_id = request.main_topic_id
        personalization = dict(request.personalization_input or {})
        options = dict(request.generation_options)

    try:
        detail = await catalog.main_topic(main_topic_id)
    except NotFound as exc:
        raise GenerationGone(f"main topic {main_topic_id} is gone") from exc
    context = main_topic_context(detail) | {
        "personalization": personalization,
        "options": options,
    }
    curated = [c["name"] for c in context["curated_sub_topics"]]
    try:
        generated = await engine.generate("subtopics", context, generation_id=generation_id)
        items = shape_subtopics(generated.data, curated, options)
        if not items and generated.cache_hit:
            generated = await engine.generate(
                "subtopics",
                context,
                generation_id=generation_id,
                use_cache=False,
            )
            items = shape_subtopics(generated.data, curated, options)
    except BudgetExceededError as exc:
        await fail_subtopic_generation(sessions, generation_id, LLM_BUDGET_EXCEEDED, exc.message)
        return
    except FlaggedOutputError:
        await fail_subtopic_generation(
            sessions, generation_id, CONTENT_FLAGGED, CONTENT_FLAGGED_MESSAGE
        )
        return
    if not items:
        raise InvalidOutputError("every generated sub-topic repeated a curated or earlier one")

    async with unit_of_work(sessions) as session:
        request = await repository.subtopic_request(session, generation_id, lock=True)
        if request is None or request.status in ("completed", "failed"):
            # Another delivery of this job finished first.
            log.info("subtopics_job_already_done", generation_id=generation_id)
            return
        rows = [_row(request, generated, item, position) for position, item in enumerate(items, 1)]
        stored = await repository.add_generated_sub_topics(session, rows)
        request.status = "completed"
        request.completed_at = dt.datetime.now(dt.UTC)
        request.generated_count = stored
        request.total_tokens_used = generated.total_tokens
        request.llm_cost_usd = generated.cost_usd
        request.llm_model = generated.model[:100]
        request.prompt_version = generated.prompt_version
        request.cache_hit = generated.cache_hit
        request.error_code = None
        request.error_message = None
        occurred_at = timestamp(request.completed_at)
        await add_event(
            session,
            outbox,
            subjects.SUBTOPICS_GENERATED,
            events_pb2.SubTopicsGenerated(
                generation_id=generation_id,
                main_topic_id=main_topic_id,
                count=stored,
                occurred_at=occurred_at,
            ),
            event_id=f"subtopics-generated-{generation_id}",
        )
    log.info(
        "subtopics_generated",
        generation_id=generation_id,
        count=stored,
        cache_hit=generated.cache_hit,
        llm_provider=generated.provider,
        tokens_used=generated.total_tokens,
    )


async def fail_subtopic_generation(
    sessions: async_sessionmaker[AsyncSession], generation_id: str, code: str, message: str
) -> None:
    """Marks a generation failed with the code the client sees (a completed one stays)."""
    async with unit_of_work(sessions) as session:
        request = await repository.subtopic_request(session, generation_id, lock=True)
        if request is None or request.status == "completed":
            return
        request.status = "failed"
        request.error_code = code
        request.error_message = message
        request.completed_at = dt.datetime.now(dt.UTC)
    log.warning("subtopics_generation_failed", generation_id=generation_id, error_code=code)


def shape_subtopics(
    data: dict[str, Any], curated_names: Sequence[str], options: dict[str, Any]
) -> list[dict[str, Any]]:
    """The model's sub-topics made to honour the request: none repeating a curated or an
    earlier one, at most max_subtopics, unique slugs, no prerequisites unless asked for,
    easiest first under difficulty_progression."""
    seen = {_norm(name) for name in curated_names}
    slugs: set[str] = set()
    items: list[dict[str, Any]] = []
    for item in data.get("subtopics") or []:
        name = _clip(item["name"], 200)
        key = _norm(name)
        if not key or key in seen:
            continue
        seen.add(key)
        items.append(
            {
                "slug": _unique_slug(item.get("slug") or "", slugs),
                "name": name,
                "description": _clip(item["description"], 2000),
                "estimated_learning_time": _clip(item["estimated_learning_time"], 50),
                "prerequisites": (
                    _clip_list(item["prerequisites"]) if options["include_prerequisites"] else []
                ),
                "practical_projects": _clip_list(item["practical_projects"]),
                "learning_outcomes": _clip_list(item["learning_outcomes"]),
                "difficulty_focus": item["difficulty_focus"],
            }
        )
        if len(items) == options["max_subtopics"]:
            break
    if options["difficulty_progression"]:
        items.sort(key=lambda i: level_index(i["difficulty_focus"]))
    return items


def _row(
    request: SubTopicGenerationRequest, generated: Generated, item: dict[str, Any], position: int
) -> dict[str, Any]:
    level = (request.personalization_input or {}).get("current_level") or ""
    return {
        **item,
        "public_id": new_public_id(),
        "generation_batch_id": request.generation_batch_id,
        "main_topic_id": request.main_topic_id,
        "position": position,
        "generation_prompt": generated.prompt_excerpt,
        "llm_model": generated.model[:100],
        "llm_temperature": Decimal(str(TEMPERATURE)),
        "generation_params": {
            "provider": generated.provider,
            "prompt_version": generated.prompt_version,
            "max_subtopics": request.generation_options["max_subtopics"],
            "include_prerequisites": request.generation_options["include_prerequisites"],
            "difficulty_progression": request.generation_options["difficulty_progression"],
            "cache_hit": generated.cache_hit,
            "attempts": generated.attempts,
            "input_tokens": generated.input_tokens,
            "output_tokens": generated.output_tokens,
            "cost_usd": str(generated.cost_usd),
        },
        "personalization_input": request.personalization_input,
        "target_audience": LEVEL_NAMES.get(level),
        "expires_at": request.expires_at,
    }


def _norm(text: str) -> str:
    return re.sub(r"\W+", "", text).lower()


def _clip(text: str, limit: int) -> str:
    return " ".join(str(text).split())[:limit]


def _clip_list(values: Sequence[str]) -> list[str]:
    clipped = [_clip(v, _ITEM_CHARS) for v in values[:_LIST_ITEMS]]
    return [v for v in clipped if v]


def _unique_slug(raw: str, taken: set[str]) -> str:
    base = re.sub(r"[^a-z0-9]+", "-", raw.lower()).strip("-")[:90].strip("-") or "sub-topic"
    slug, n = base, 2
    while slug in taken:
        slug, n = f"{base}-{n}", n + 1
    taken.add(slug)
    return slug


# --- personalised sub-topics: reads ------------------------------------------------------------


@dataclass(frozen=True)
class SubTopicGenerationView:
    request: SubTopicGenerationRequest
    items: Sequence[GeneratedSubTopic]

    @property
    def public_status(self) -> str:
        """processing | completed | failed (a queued request is already processing for clients)."""
        return "processing" if self.request.status == "pending" else self.request.status


async def get_subtopic_generation(
    session: AsyncSession, generation_id: str
) -> SubTopicGenerationView:
    request = None
    if _GENERATION_ID.fullmatch(generation_id):
        request = await repository.subtopic_request(session, generation_id)
    if request is None:
        raise NotFound("no sub-topic generation with this id", field="generation_id")
    items: Sequence[GeneratedSubTopic] = []
    if request.status == "completed":
        items = await repository.generated_of_batch(session, generation_id)
    return SubTopicGenerationView(request, items)


async def get_generated_sub_topics(
    session: AsyncSession, ids: Sequence[int], public_ids: Sequence[str] = ()
) -> Sequence[GeneratedSubTopic]:
    """The known, unexpired sub-topics among `ids` and `public_ids` (the caller compares)."""
    if len(ids) + len(public_ids) > MAX_LOOKUP_IDS:
        raise InvalidArgument(f"at most {MAX_LOOKUP_IDS} ids", field="ids")
    wanted = sorted({i for i in ids if i > 0})
    keys = sorted({k for k in public_ids if _PUBLIC_ID.fullmatch(k)})
    if not wanted and not keys:
        return []
    return await repository.generated_by_ids(session, wanted, keys)
