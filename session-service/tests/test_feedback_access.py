"""AuthorizeArticle: what feedback-service asks before recording feedback or progress. The same
access rules as the learner's own reads; the facts feedback keeps with each record."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeAlias

import grpc
import pytest

from infou_protos.events.v1 import events_pb2
from infou_protos.session.v1 import session_pb2, session_pb2_grpc

# The aio channel gives the async stub, which only the .pyi declares.
Stub: TypeAlias = "session_pb2_grpc.SessionServiceAsyncStub"
RpcError = Callable[[grpc.aio.AioRpcError], tuple[grpc.StatusCode, str, str]]


def _usage() -> events_pb2.GenerationUsage:
    return events_pb2.GenerationUsage(
        model="fake-model", provider="openai", input_tokens=10, output_tokens=20, cost_usd=0.001
    )


async def ready_session(
    stub: Stub, worker: Any, topics: Any, *, adaptive: bool
) -> tuple[session_pb2.CreateSessionResponse, list[str]]:
    """A written two-article session of the first topic's first curated sub-topic."""
    await worker.drain()
    topic = topics[0]
    created = await stub.CreateSession(
        session_pb2.CreateSessionRequest(
            main_topic_id=topic.id,
            sub_topics=[session_pb2.SubTopicRef(type="curated", id=topic.curated[0])],
            level="beginner",
            options=session_pb2.SessionOptions(
                max_articles_per_subtopic=2, enable_adaptive_difficulty=adaptive
            ),
        )
    )
    await worker.job("jobs.curriculum.generate", events_pb2.GenerateCurriculumJob)
    ref = f"curated_{topic.curated[0]}"
    await worker.answer(
        "events.generation.curriculum_generated",
        events_pb2.CurriculumGenerated(
            session_id=created.session_id,
            title="피드백 입문",
            items=[
                events_pb2.PlannedArticle(title="첫 글", summary="s", sub_topic_ref=ref),
                events_pb2.PlannedArticle(title="둘째 글", summary="s", sub_topic_ref=ref),
            ],
            usage=_usage(),
        ),
    )
    jobs = await worker.jobs("jobs.article.generate", events_pb2.GenerateArticleJob, 2)
    for job in jobs:
        title = json.loads(job.context_json)["outline"]["title"]
        await worker.answer(
            "events.generation.article_generated",
            events_pb2.ArticleGenerated(
                session_id=job.session_id,
                article_id=job.article_id,
                article=events_pb2.WrittenArticle(
                    content=f"## {title}\n\n본문", word_count=250, title=title, quality_score=0.8
                ),
                usage=_usage(),
            ),
        )
    return created, sorted(job.article_id for job in jobs)


def _ask(
    created: session_pb2.CreateSessionResponse, article_id: str = "", token: str | None = None
) -> session_pb2.AuthorizeArticleRequest:
    return session_pb2.AuthorizeArticleRequest(
        session_id=created.session_id,
        article_id=article_id,
        access_token=created.access_token if token is None else token,
    )


async def test_the_sessions_token_opens_its_article_with_the_facts_feedback_keeps(
    stub: Stub, worker: Any, topics: Any, eventually: Any
) -> None:
    created, article_ids = await ready_session(stub, worker, topics, adaptive=True)
    access = await eventually(
        lambda: stub.AuthorizeArticle(_ask(created, article_ids[1])),
        lambda a: a.article_status == "ready",
    )
    assert access.session_id == created.session_id
    assert access.article_id == article_ids[1]
    assert access.level == "beginner"
    assert access.session_level == "beginner"
    assert access.main_topic_id == topics[0].id
    assert (access.sub_topic_type, access.sub_topic_id) == ("curated", topics[0].curated[0])
    assert access.adaptive_difficulty is True
    assert access.total_articles == 2
    assert access.word_count == 250
    assert list(access.article_ids) == article_ids

    session_only = await stub.AuthorizeArticle(_ask(created))
    assert session_only.article_id == ""
    assert list(session_only.article_ids) == article_ids


async def test_adaptive_difficulty_is_off_unless_asked_for(
    stub: Stub, worker: Any, topics: Any
) -> None:
    created, _ids = await ready_session(stub, worker, topics, adaptive=False)
    assert (await stub.AuthorizeArticle(_ask(created))).adaptive_difficulty is False


@pytest.mark.parametrize(
    ("case", "status", "field"),
    [
        ("no token", grpc.StatusCode.UNAUTHENTICATED, ""),
        ("wrong token", grpc.StatusCode.UNAUTHENTICATED, ""),
        ("another session's token", grpc.StatusCode.NOT_FOUND, "session_id"),
        ("another session's article", grpc.StatusCode.NOT_FOUND, "article_id"),
        ("unknown article", grpc.StatusCode.NOT_FOUND, "article_id"),
        ("no session id", grpc.StatusCode.INVALID_ARGUMENT, "session_id"),
    ],
)
async def test_access_is_refused_like_the_sessions_own_reads(
    stub: Stub,
    worker: Any,
    topics: Any,
    rpc_error: RpcError,
    case: str,
    status: grpc.StatusCode,
    field: str,
) -> None:
    mine, my_articles = await ready_session(stub, worker, topics, adaptive=False)
    other, other_articles = await ready_session(stub, worker, topics, adaptive=False)
    request = {
        "no token": _ask(mine, my_articles[0], token=""),
        "wrong token": _ask(mine, my_articles[0], token="st_" + "x" * 43),
        "another session's token": _ask(mine, my_articles[0], token=other.access_token),
        "another session's article": _ask(mine, other_articles[0]),
        "unknown article": _ask(mine, f"{mine.session_id}_999"),
        "no session id": session_pb2.AuthorizeArticleRequest(
            article_id=my_articles[0], access_token=mine.access_token
        ),
    }[case]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.AuthorizeArticle(request)
    got_status, _code, got_field = rpc_error(caught.value)
    assert got_status == status
    assert got_field == field
