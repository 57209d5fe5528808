"""GET /articles/{id}?level= and GET /articles/{id}/convert?target_level= (PRD §3.5).

An article not written yet answers 202 with its status (not 404); a conversion not cached
answers 202 with a task id and is announced on the session's WebSocket (`conversion_complete`).
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, status
from fastapi.responses import JSONResponse, Response

from infou_gateway.auth import SessionToken
from infou_gateway.cache import Target, encode
from infou_gateway.path_params import PATH_PARAM_PATTERN
from infou_gateway.routes.sessions import ERRORS, cache_seconds, iso
from infou_gateway.schemas import (
    ArticlePending,
    ArticleResponse,
    ConversionAccepted,
    ErrorResponse,
)
from infou_gateway.session_cache import Loaded, article_key
from infou_gateway.state import State
from infou_libs.errors import FailedPrecondition
from infou_libs.levels import LevelCode
from infou_protos.session.v1 import session_pb2

router = APIRouter(tags=["articles"])

ArticleId = Annotated[str, Path(min_length=1, max_length=80, pattern=PATH_PARAM_PATTERN)]

PENDING_MESSAGE = "아티클을 생성하고 있습니다. 완료되면 WebSocket으로 알려 드립니다."
CONVERTING_MESSAGE = "요청한 난이도로 변환하고 있습니다. 완료되면 WebSocket으로 알려 드립니다."


def article_json(a: session_pb2.Article) -> dict[str, Any]:
    m, e, v = a.metadata, a.learning_elements, a.difficulty_variants
    return {
        "id": a.id,
        "session_id": a.session_id,
        "order": a.order,
        "title": a.title,
        "summary": a.summary,
        "content": a.content,
        "level": a.level,
        "sub_topic": a.sub_topic,
        "sub_topic_slug": a.sub_topic_slug,
        "word_count": a.word_count,
        "estimated_read_time": a.estimated_read_time,
        "next_article_id": a.next_article_id or None,
        "previous_article_id": a.previous_article_id or None,
        "metadata": {
            "generated_at": iso(m.generated_at) if m.HasField("generated_at") else None,
            "llm_model": m.llm_model or None,
            # Written by the offline provider (model "offline-<version>"), not by an LLM.
            "offline": m.llm_model.startswith("offline"),
            "generation_prompt": m.generation_prompt,
            "quality_score": round(m.quality_score, 2),
            "human_reviewed": m.human_reviewed,
            "quality": json.loads(m.quality_report_json) if m.quality_report_json else None,
        },
        "learning_elements": {
            "key_terms": list(e.key_terms),
            "code_examples": e.code_examples,
            "practical_tips": list(e.practical_tips),
            "related_concepts": list(e.related_concepts),
        },
        "difficulty_variants": {
            "available_levels": list(v.available_levels),
            "current_level": v.current_level,
        },
        "base_article_id": a.base_article_id or None,
        "status": a.status,
    }


def _not_ready(a: session_pb2.Article) -> JSONResponse:
    if a.status == "failed":
        raise FailedPrecondition(
            a.failure_reason or "this article could not be generated; retry the session",
            field="article_id",
            code="GENERATION_FAILED",
        )
    pending = {
        "id": a.id,
        "session_id": a.session_id,
        "order": a.order,
        "title": a.title,
        "level": a.level,
        "status": a.status,
        "message": PENDING_MESSAGE,
    }
    return JSONResponse(pending, status_code=status.HTTP_202_ACCEPTED)


@router.get(
    "/articles/{article_id}",
    response_model=ArticleResponse,
    responses={
        **ERRORS,
        202: {"model": ArticlePending, "description": "not written yet"},
        409: {"model": ErrorResponse, "description": "its generation failed"},
    },
)
async def get_article(
    state: State,
    request: Request,
    article_id: ArticleId,
    token: SessionToken,
    level: Annotated[LevelCode | None, Query()] = None,
) -> Any:
    """The article at `level` (default: the session's); 404 `level` if not converted yet."""
    # Article ids are `<session id>_<order>`; a reply naming another session is not kept.
    session_id = article_id.rpartition("_")[0]

    async def load() -> Loaded:
        reply = await state.clients.session.GetArticle(
            session_pb2.GetArticleRequest(
                article_id=article_id, level=level or "", access_token=token
            ),
            timeout=state.clients.deadline,
        )
        if reply.status != "ready":
            pending = _not_ready(reply)
            return Loaded(pending.status_code, bytes(pending.body))
        ttl = 0.0
        if reply.session_id == session_id and state.settings.article_cache_seconds > 0:
            # A written article does not change (a conversion is another level, announced),
            # but it must not outlive its session: the session's expiry bounds it.
            owner = await state.clients.session.GetSession(
                session_pb2.GetSessionRequest(session_id=session_id, access_token=token),
                timeout=state.clients.deadline,
            )
            ttl = cache_seconds(state.settings.article_cache_seconds, owner.expires_at)
        return Loaded(200, encode(article_json(reply)), ttl)

    key = article_key(article_id, level or "")
    read = await state.session_reads.served(
        "article", key, session_id, token, load, Target.of(request)
    )
    return Response(read.body, status_code=read.status, media_type="application/json")


@router.get(
    "/articles/{article_id}/convert",
    response_model=ArticleResponse,
    responses={
        **ERRORS,
        202: {"model": ConversionAccepted, "description": "converting in the background"},
        409: {"model": ErrorResponse, "description": "the article is not written yet"},
    },
)
async def convert_article(
    state: State,
    article_id: ArticleId,
    token: SessionToken,
    target_level: Annotated[LevelCode, Query()],
) -> Any:
    """The article at another level: at once when cached, otherwise 202 and a background job."""
    reply = await state.clients.session.ConvertArticle(
        session_pb2.ConvertArticleRequest(
            article_id=article_id, target_level=target_level, access_token=token
        ),
        timeout=state.clients.deadline,
    )
    if reply.status == "ready" and reply.HasField("article"):
        return article_json(reply.article)
    accepted = {
        "task_id": reply.task_id,
        "status": reply.status,
        "article_id": article_id,
        "target_level": target_level,
        "message": CONVERTING_MESSAGE,
    }
    return JSONResponse(accepted, status_code=status.HTTP_202_ACCEPTED)
