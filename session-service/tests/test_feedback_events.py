"""feedback-service's events applied by session-service (the test plays feedback-service):
progress sets the session's counts once however often it arrives, and adaptive difficulty
converts the unread articles and tells the watchers."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any, TypeAlias

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from infou_libs.subjects import DIFFICULTY_ADJUSTED as ADJUSTED
from infou_libs.subjects import PROGRESS_RECORDED as PROGRESS
from infou_protos.events.v1 import events_pb2
from infou_protos.session.v1 import session_pb2, session_pb2_grpc

# The aio channel gives the async stub, which only the .pyi declares.
Stub: TypeAlias = "session_pb2_grpc.SessionServiceAsyncStub"


def _usage() -> events_pb2.GenerationUsage:
    return events_pb2.GenerationUsage(model="fake-model", provider="openai", input_tokens=10)


def _at(when: dt.datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(when)
    return ts


async def written_session(
    stub: Stub, worker: Any, topics: Any, articles: int = 3
) -> tuple[session_pb2.CreateSessionResponse, list[str]]:
    await worker.drain()
    topic = topics[0]
    created = await stub.CreateSession(
        session_pb2.CreateSessionRequest(
            main_topic_id=topic.id,
            sub_topics=[session_pb2.SubTopicRef(type="curated", id=topic.curated[0])],
            level="intermediate",
            options=session_pb2.SessionOptions(
                max_articles_per_subtopic=articles, enable_adaptive_difficulty=True
            ),
        )
    )
    await worker.job("jobs.curriculum.generate", events_pb2.GenerateCurriculumJob)
    ref = f"curated_{topic.curated[0]}"
    await worker.answer(
        "events.generation.curriculum_generated",
        events_pb2.CurriculumGenerated(
            session_id=created.session_id,
            title="적응형",
            items=[
                events_pb2.PlannedArticle(title=f"글 {n}", summary="s", sub_topic_ref=ref)
                for n in range(1, articles + 1)
            ],
            usage=_usage(),
        ),
    )
    jobs = await worker.jobs("jobs.article.generate", events_pb2.GenerateArticleJob, articles)
    for job in jobs:
        title = json.loads(job.context_json)["outline"]["title"]
        body = {"title": title, "sections": [{"heading": "h", "body": "b"}]}
        await worker.answer(
            "events.generation.article_generated",
            events_pb2.ArticleGenerated(
                session_id=job.session_id,
                article_id=job.article_id,
                article=events_pb2.WrittenArticle(
                    article_json=json.dumps(body), content="본문", word_count=300, title=title
                ),
                usage=_usage(),
            ),
        )
    return created, sorted(job.article_id for job in jobs)


def _get(stub: Stub, created: session_pb2.CreateSessionResponse) -> Any:
    return stub.GetSession(
        session_pb2.GetSessionRequest(
            session_id=created.session_id, access_token=created.access_token
        )
    )


async def test_progress_sets_the_sessions_counts_once(
    stub: Stub, worker: Any, topics: Any, eventually: Any
) -> None:
    created, ids = await written_session(stub, worker, topics)
    await eventually(lambda: _get(stub, created), lambda s: s.status == "ready")
    now = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=5)
    first = events_pb2.ProgressRecorded(
        session_id=created.session_id,
        article_id=ids[0],
        action="completed",
        time_spent=120,
        occurred_at=_at(now),
        completed_articles=1,
        total_time_spent=120,
        total_articles=3,
    )
    event_id = await worker.answer(PROGRESS, first)
    session = await eventually(
        lambda: _get(stub, created), lambda s: s.curriculum.completed_articles == 1
    )
    assert session.progress.completion_percentage == 33.3
    assert session.status == "active"  # the learner has started reading
    assert session.progress.time_spent_seconds == 120
    assert session.progress.current_article_id == ids[1]  # done with the first: on to the next
    assert abs(session.progress.last_accessed.ToDatetime(tzinfo=dt.UTC) - now) < dt.timedelta(
        milliseconds=1
    )

    # The same event again, and an older one arriving late: nothing moves back or doubles.
    await worker.answer(PROGRESS, first, event_id=event_id)
    await worker.answer(PROGRESS, first)  # a copy under another id: totals are set, not added
    older = events_pb2.ProgressRecorded(
        session_id=created.session_id,
        article_id=ids[0],
        action="started",
        occurred_at=_at(now - dt.timedelta(minutes=5)),
        completed_articles=0,
        total_time_spent=0,
    )
    await worker.answer(PROGRESS, older)
    later = events_pb2.ProgressRecorded(
        session_id=created.session_id,
        article_id=ids[2],
        action="started",
        time_spent=30,
        occurred_at=_at(now + dt.timedelta(minutes=1)),
        completed_articles=1,
        total_time_spent=150,
    )
    await worker.answer(PROGRESS, later)
    session = await eventually(
        lambda: _get(stub, created), lambda s: s.progress.current_article_id == ids[2]
    )
    assert session.curriculum.completed_articles == 1
    assert session.progress.time_spent_seconds == 150
    assert session.status == "active"

    done = events_pb2.ProgressRecorded(
        session_id=created.session_id,
        article_id=ids[2],
        action="completed",
        time_spent=60,
        occurred_at=_at(now + dt.timedelta(minutes=2)),
        completed_articles=3,
        total_time_spent=210,
    )
    await worker.answer(PROGRESS, done)
    session = await eventually(lambda: _get(stub, created), lambda s: s.status == "completed")
    assert session.progress.completion_percentage == 100.0


async def test_difficulty_adjusted_converts_the_unread_articles_and_tells_the_watchers(
    stub: Stub, worker: Any, topics: Any, progress_log: Any, eventually: Any
) -> None:
    created, ids = await written_session(stub, worker, topics)
    await eventually(lambda: _get(stub, created), lambda s: s.status == "ready")
    await worker.answer(
        ADJUSTED,
        events_pb2.DifficultyAdjusted(
            session_id=created.session_id,
            from_level="intermediate",
            to_level="beginner",
            direction="down",
            reason="too_hard",
            article_ids=[ids[1], ids[2], f"{created.session_id}_999"],
            trigger_article_id=ids[0],
            occurred_at=_at(dt.datetime.now(dt.UTC)),
        ),
    )
    jobs = await worker.jobs("jobs.article.convert", events_pb2.ConvertArticleJob, 2)
    assert sorted(j.article_id for j in jobs) == [ids[1], ids[2]]
    assert {j.target_level for j in jobs} == {"beginner"}

    messages = await eventually(
        lambda: _now(progress_log.of(created.session_id, "difficulty_adjusted")), bool
    )
    [message] = messages
    assert (message["from_level"], message["to_level"], message["direction"]) == (
        "intermediate",
        "beginner",
        "down",
    )
    assert [(a["article_id"], a["status"]) for a in message["articles"]] == [
        (ids[1], "processing"),
        (ids[2], "processing"),
    ]
    assert {a["task_id"] for a in message["articles"]} == {j.task_id for j in jobs}

    # The conversions finish as any other: the variants are readable at the new level.
    for job in jobs:
        await worker.answer(
            "events.generation.article_converted",
            events_pb2.ArticleConverted(
                session_id=job.session_id,
                article_id=job.article_id,
                target_level="beginner",
                task_id=job.task_id,
                article=events_pb2.WrittenArticle(content="쉬운 본문", word_count=200, title="t"),
                usage=_usage(),
            ),
        )
    article = await eventually(
        lambda: _read(stub, created, ids[1], "beginner"),
        lambda a: a is not None and a.status == "ready",
    )
    assert article.content == "쉬운 본문"

    # The first article was read: it stays at its level.
    first = await stub.GetArticle(
        session_pb2.GetArticleRequest(article_id=ids[0], access_token=created.access_token)
    )
    assert list(first.difficulty_variants.available_levels) == ["intermediate"]


async def _now(value: Any) -> Any:
    return value


async def _read(
    stub: Stub, created: session_pb2.CreateSessionResponse, article_id: str, level: str
) -> Any:
    try:
        return await stub.GetArticle(
            session_pb2.GetArticleRequest(
                article_id=article_id, level=level, access_token=created.access_token
            )
        )
    except grpc.aio.AioRpcError:
        return None
