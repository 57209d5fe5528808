"""SessionService servicer: proto <-> domain, nothing else."""

from __future__ import annotations

import datetime as dt
import json

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from infou_libs.db import unit_of_work
from infou_libs.grpc_server import Context
from infou_libs.protobuf import optional_timestamp as _ts
from infou_protos.session.v1 import session_pb2, session_pb2_grpc
from infou_session import conversion, creation, feedback_access, results, service
from infou_session.admission import AdmissionClient
from infou_session.models import ArticleVariant, GeneratedArticle
from infou_session.progress import ProgressPublisher
from infou_session.service import ArticleView, SessionView
from infou_session.settings import SessionSettings
from infou_session.topics import SubTopicRef, TopicDirectory, public_ref
from infou_session.workflow import ArticleStatus, Status, learner_status


class SessionServicer(session_pb2_grpc.SessionServiceServicer):
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        settings: SessionSettings,
        directory: TopicDirectory,
        publisher: ProgressPublisher,
        admission: AdmissionClient,
    ) -> None:
        self._sessions = sessions
        self._settings = settings
        self._directory = directory
        self._publisher = publisher
        self._admission = admission
        self._secret = settings.session_token_secret.get_secret_value()

    async def GetSessionStats(
        self, request: session_pb2.GetSessionStatsRequest, context: Context
    ) -> session_pb2.SessionStats:
        async with self._sessions() as db:
            stats = await service.session_stats(db)
        return session_pb2.SessionStats(
            active_sessions=stats.active, generating_sessions=stats.generating
        )

    async def CreateSession(
        self, request: session_pb2.CreateSessionRequest, context: Context
    ) -> session_pb2.CreateSessionResponse:
        p = request.personalization
        o = request.options
        new = service.check_request(
            service.NewSession(
                main_topic_id=request.main_topic_id,
                sub_topics=[SubTopicRef(ref.type, ref.id, ref.key) for ref in request.sub_topics],
                level=request.level,
                personalization={
                    "learning_pace": p.learning_pace,
                    "preferred_article_length": p.preferred_article_length,
                    "include_examples": p.include_examples
                    if request.HasField("personalization")
                    else True,
                    "interests": list(p.interests),
                    "learning_goals": p.learning_goals,
                    "preferred_style": p.preferred_style,
                },
                options={
                    "max_articles_per_subtopic": o.max_articles_per_subtopic,
                    "enable_adaptive_difficulty": o.enable_adaptive_difficulty,
                    "include_practice_problems": o.include_practice_problems,
                },
            ),
            self._settings,
        )
        created, replayed = await creation.create(
            self._sessions,
            self._directory,
            self._admission,
            self._settings,
            new,
            creation.Caller(
                client_id=request.client_id,
                budget_share=request.client_budget_share,
                idempotency_key=request.idempotency_key,
            ),
        )
        await self._publisher.publish(created.session.id, created.messages)
        return session_pb2.CreateSessionResponse(
            replayed=replayed,
            session_id=created.session.id,
            status=created.session.status,
            estimated_total_time=created.estimated_total_time,
            access_token=created.token,
            estimated_cost_usd=float(created.session.estimated_cost_usd),
            expires_at=_ts(created.session.expires_at),
            estimated_articles=created.estimated_articles,
        )

    async def GetSession(
        self, request: session_pb2.GetSessionRequest, context: Context
    ) -> session_pb2.Session:
        async with self._sessions() as db:
            view = await service.get_session(
                db, self._secret, request.session_id, request.access_token
            )
        return session_message(view)

    async def GetCurriculum(
        self, request: session_pb2.GetSessionRequest, context: Context
    ) -> session_pb2.Curriculum:
        async with self._sessions() as db:
            view = await service.get_curriculum(
                db, self._secret, request.session_id, request.access_token
            )
        s = view.session
        return session_pb2.Curriculum(
            session_id=s.id,
            title=s.curriculum_title or "",
            level=s.target_level,
            ready=s.curriculum_generated_at is not None,
            status=s.status,
            items=[
                session_pb2.CurriculumItem(
                    id=a.id,
                    order=a.order_num,
                    title=a.title,
                    summary=a.summary or "",
                    sub_topic=a.sub_topic_name,
                    sub_topic_id=public_ref(s.selected_subtopics, a.sub_topic_type, a.sub_topic_id),
                    estimated_read_time=a.estimated_read_time or a.planned_read_time or "",
                    key_concepts=a.key_concepts,
                    is_generated=True,  # written by an LLM for this session
                    difficulty_indicators=a.difficulty_indicators,
                    status=a.status,
                    prerequisites=a.prerequisites,
                )
                for a in view.articles
            ],
        )

    async def GetArticle(
        self, request: session_pb2.GetArticleRequest, context: Context
    ) -> session_pb2.Article:
        async with self._sessions() as db:
            view = await service.get_article(
                db, self._secret, request.article_id, request.level, request.access_token
            )
        return article_message(view)

    async def ConvertArticle(
        self, request: session_pb2.ConvertArticleRequest, context: Context
    ) -> session_pb2.ConvertArticleResponse:
        async with unit_of_work(self._sessions) as db:
            converted = await conversion.convert_article(
                db, self._secret, request.article_id, request.target_level, request.access_token
            )
        return session_pb2.ConvertArticleResponse(
            status=converted.status,
            task_id=converted.task_id,
            article=article_message(converted.view) if converted.view else None,
        )

    async def RetrySession(
        self, request: session_pb2.GetSessionRequest, context: Context
    ) -> session_pb2.Session:
        async with unit_of_work(self._sessions) as db:
            retried = await results.retry_session(
                db, self._secret, request.session_id, request.access_token
            )
        await self._publisher.publish(request.session_id, retried.messages)
        return session_message(retried.view)

    async def GetProgressSnapshot(
        self, request: session_pb2.GetProgressSnapshotRequest, context: Context
    ) -> session_pb2.ProgressSnapshot:
        async with self._sessions() as db:
            snapshot, sequence = await service.progress_snapshot(db, request.session_id)
        return session_pb2.ProgressSnapshot(
            session_id=request.session_id,
            snapshot_json=json.dumps(snapshot, ensure_ascii=False),
            sequence=sequence,
        )

    async def AuthorizeArticle(
        self, request: session_pb2.AuthorizeArticleRequest, context: Context
    ) -> session_pb2.ArticleAccess:
        async with self._sessions() as db:
            access = await feedback_access.authorize_article(
                db, self._secret, request.session_id, request.article_id, request.access_token
            )
        s, a = access.session, access.article
        return session_pb2.ArticleAccess(
            session_id=s.id,
            article_id=a.id if a else "",
            level=a.target_level if a else "",
            main_topic_id=s.main_topic_id,
            sub_topic_type=a.sub_topic_type if a else "",
            sub_topic_id=a.sub_topic_id if a else 0,
            adaptive_difficulty=access.adaptive_difficulty,
            total_articles=s.total_articles or 0,
            word_count=(a.word_count or 0) if a else 0,
            article_status=a.status if a else "",
            article_ids=[article.id for article in access.articles],
            session_level=s.target_level,
            session_status=s.status,
        )


def session_message(view: SessionView) -> session_pb2.Session:
    s = view.session
    failed = sum(1 for a in view.articles if a.status == ArticleStatus.FAILED)
    total = s.total_articles or 0
    if Status(s.status) is Status.READY:
        generation_time = s.generation_duration_seconds or 0
    else:
        generation_time = int((dt.datetime.now(dt.UTC) - s.created_at).total_seconds())
    return session_pb2.Session(
        session_id=s.id,
        status=learner_status(
            Status(s.status), s.completed_articles or 0, total, s.last_accessed_at is not None
        ),
        created_at=_ts(s.created_at),
        expires_at=_ts(s.expires_at),
        failure_reason=s.failure_reason or "",
        main_topic_id=s.main_topic_id,
        sub_topic_ids=[sub["ref"] for sub in s.selected_subtopics],
        level=s.target_level,
        curriculum=session_pb2.CurriculumSummary(
            title=s.curriculum_title or "",
            level=s.target_level,
            total_articles=total,
            completed_articles=s.completed_articles or 0,
            estimated_completion_time=view.estimated_completion_time,
            generated_articles=view.generated,
            failed_articles=failed,
        ),
        progress=session_pb2.Progress(
            current_article_id=s.current_article_id or "",
            completion_percentage=(
                round(100.0 * (s.completed_articles or 0) / total, 1) if total else 0.0
            ),
            time_spent_seconds=s.total_time_spent or 0,
            last_accessed=_ts(s.last_accessed_at),
        ),
        generation_info=session_pb2.GenerationInfo(
            llm_model=s.generation_llm_model or "",
            generation_time_seconds=max(0, generation_time),
            total_tokens_used=s.generation_total_tokens or 0,
            cost_usd=float(s.generation_cost_usd or 0),
            cached_results=s.generation_cached_results or 0,
            input_tokens=s.generation_input_tokens or 0,
            output_tokens=s.generation_output_tokens or 0,
            saved_cost_usd=float(s.generation_saved_usd or 0),
        ),
    )


def article_message(view: ArticleView) -> session_pb2.Article:
    a: GeneratedArticle = view.article
    v: ArticleVariant | None = view.variant
    source: GeneratedArticle | ArticleVariant = v if v is not None else a
    ready = view.status == ArticleStatus.READY
    key_terms = [str(t.get("term", "")) for t in (source.key_terms or []) if t.get("term")]
    return session_pb2.Article(
        id=a.id,
        session_id=a.session_id,
        order=a.order_num,
        title=(v.title if v is not None and v.title else a.title),
        summary=(v.summary if v is not None and v.summary else a.summary or ""),
        content=(source.content or "") if ready else "",
        level=view.level,
        status=view.status,
        failure_reason=source.failure_reason or "",
        sub_topic_slug=a.sub_topic_slug,
        sub_topic_id=view.sub_topic_ref or f"{a.sub_topic_type}_{a.sub_topic_id}",
        sub_topic=a.sub_topic_name,
        word_count=(source.word_count or 0) if ready else 0,
        estimated_read_time=(
            source.estimated_read_time if ready and source.estimated_read_time else None
        )
        or a.planned_read_time
        or "",
        next_article_id=a.next_article_id or "",
        previous_article_id=a.previous_article_id or "",
        base_article_id=a.id if v is not None else "",
        metadata=session_pb2.ArticleMetadata(
            generated_at=_ts(source.generated_at) if ready else None,
            llm_model=(source.llm_model or "") if ready else "",
            generation_prompt=(source.generation_prompt or "") if ready else "",
            quality_score=float(source.quality_score or 0),
            human_reviewed=a.human_reviewed,
            content_warnings=source.content_warnings or [],
            quality_report_json=(
                json.dumps(source.quality_report, ensure_ascii=False)
                if ready and source.quality_report
                else ""
            ),
        ),
        learning_elements=session_pb2.LearningElements(
            key_terms=key_terms,
            code_examples=source.code_examples_count or 0,
            practical_tips=source.practical_tips or [],
            related_concepts=source.related_concepts or [],
        ),
        difficulty_variants=session_pb2.DifficultyVariants(
            available_levels=view.available_levels, current_level=view.level
        ),
    )
