"""POST /sessions as one use case: replayed when its Idempotency-Key was seen, admitted against
the LLM budget before anything is written, then stored with its curriculum job.

Order matters: the admission is held before the session row and its outbox job commit, so a
refused request (over budget, or learner text that failed moderation) leaves nothing queued;
a commit that fails gives the admission back. With an
Idempotency-Key the key row is written first in the creating transaction, so two requests with
the same key never both create: the second waits, finds the key taken and replays the first.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from infou_libs import idempotency
from infou_libs.db import autocommit, unit_of_work
from infou_libs.errors import NotFound
from infou_session import repository, service, tokens
from infou_session.admission import AdmissionClient
from infou_session.models import idempotency_keys
from infou_session.service import Created, NewSession
from infou_session.settings import SessionSettings
from infou_session.topics import TopicDirectory


@dataclass(frozen=True)
class Caller:
    """Who asks, as the gateway identified them."""

    client_id: str = ""
    budget_share: float = 0.0
    idempotency_key: str = ""


def fingerprint(request: NewSession) -> str:
    """The normalised request: a replay must ask for the same session."""
    return idempotency.request_hash(
        {
            "main_topic_id": request.main_topic_id,
            "sub_topics": [ref.public_id for ref in request.sub_topics],
            "level": request.level,
            "personalization": request.personalization,
            "options": request.options,
        }
    )


async def create(
    sessions: async_sessionmaker[AsyncSession],
    directory: TopicDirectory,
    admission: AdmissionClient,
    settings: SessionSettings,
    request: NewSession,
    caller: Caller,
) -> tuple[Created, bool]:
    """The created (or replayed) session and whether it was a replay."""
    secret = settings.session_token_secret.get_secret_value()
    key = request_hash = ""
    token = None
    if caller.idempotency_key:
        key = idempotency.key_hash(
            secret, f"sessions\x00{caller.client_id}", caller.idempotency_key
        )
        request_hash = fingerprint(request)
        token = tokens.replayable_token(secret, caller.client_id, caller.idempotency_key)
        earlier = await _replay(sessions, key, request_hash, token)
        if earlier is not None:
            return earlier, True
    selection = await directory.resolve(request.main_topic_id, request.sub_topics)
    session_id = service.new_session_id()
    articles = int(request.options["max_articles_per_subtopic"]) * len(selection.sub_topics)
    # Admission also moderates the learner's text: a flagged field is refused (422) here.
    estimate = await admission.reserve(
        session_id,
        articles,
        caller.client_id,
        caller.budget_share,
        learner_text=service.learner_text(request.personalization),
    )
    try:
        # Without a key the create is one statement, atomic on its own: no BEGIN and COMMIT.
        async with unit_of_work(sessions) if key else autocommit(sessions) as db:
            if key:
                await idempotency.remember(db, idempotency_keys, key, request_hash, session_id)
            created = await service.create_session(
                db,
                request,
                selection,
                settings,
                session_id=session_id,
                token=token,
                estimated_cost_usd=Decimal(str(round(estimate, 6))),
            )
    except BaseException as exc:
        await admission.release(session_id)
        if isinstance(exc, idempotency.KeyTaken) and token is not None:
            earlier = await _replay(sessions, key, request_hash, token)
            if earlier is not None:
                return earlier, True
        raise
    return created, False


async def _replay(
    sessions: async_sessionmaker[AsyncSession],
    key: str,
    request_hash: str,
    token: str,
) -> Created | None:
    async with sessions() as db:
        session_id = await idempotency.recall(db, idempotency_keys, key, request_hash)
        if session_id is None:
            return None
        row = await repository.session_by_id(db, session_id)
    if row is None:
        raise NotFound("the session this Idempotency-Key created is gone", field="Idempotency-Key")
    articles = int(row.generation_options.get("max_articles_per_subtopic", 1)) * len(
        row.selected_subtopics
    )
    pace = str((row.personalization_settings or {}).get("learning_pace", "regular"))
    return Created(
        session=row,
        token=token,
        estimated_total_time=service.estimated_study_time(articles, pace),
        estimated_articles=articles,
        messages=[],
    )
