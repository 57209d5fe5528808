"""What feedback-service asks before it records anything: does this token open this session
(and this article of it)? The same checks as the learner's own reads (service.authorize): 401
without a valid token, 404 for another session's, 410 once expired; an article that is not
the session's is 404 `article_id`, whether it exists elsewhere or not."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from infou_libs.errors import InvalidArgument, NotFound
from infou_session import repository, service
from infou_session.models import GeneratedArticle, LearningSession

MAX_ID_LENGTH = 80


@dataclass(frozen=True)
class ArticleAccess:
    session: LearningSession
    articles: Sequence[GeneratedArticle]
    article: GeneratedArticle | None

    @property
    def adaptive_difficulty(self) -> bool:
        return bool((self.session.generation_options or {}).get("enable_adaptive_difficulty"))


async def authorize_article(
    db: AsyncSession, secret: str, session_id: str, article_id: str, token: str
) -> ArticleAccess:
    """The session a token opens, its articles in order, and `article_id` among them."""
    if not session_id or len(session_id) > MAX_ID_LENGTH:
        raise InvalidArgument("session_id is required", field="session_id")
    if len(article_id) > MAX_ID_LENGTH:
        raise InvalidArgument("article_id is too long", field="article_id")
    session = await service.authorize(db, secret, session_id, token)
    articles = await repository.articles_of(db, session.id)
    article = None
    if article_id:
        article = next((a for a in articles if a.id == article_id), None)
        if article is None:
            raise NotFound("this session has no article with this id", field="article_id")
    return ArticleAccess(session, articles, article)
