"""The input of each generation job: the prompt context of its task, as facts.

Jobs carry their input (`context_json`), built here when the job is enqueued, instead of the
worker calling back for it: the worker then needs nothing but the message, a redelivered job
means exactly what it meant the first time, and generation never reads this service's data.
The keys are those generation-service's content/prompts.py documents per task. Learner text
(interests, goals) is passed as data; the prompts keep it inside their data delimiters.
"""

from __future__ import annotations

import json
from typing import Any

from infou_session.models import GeneratedArticle, LearningSession


def _personalization(session: LearningSession) -> dict[str, Any]:
    given = session.personalization_settings or {}
    options = session.generation_options or {}
    return {
        "learning_pace": str(given.get("learning_pace", "")),
        "preferred_article_length": str(given.get("preferred_article_length") or "medium"),
        "include_examples": bool(given.get("include_examples", True)),
        "include_practice_problems": bool(options.get("include_practice_problems", False)),
        "interests": [str(x) for x in given.get("interests", [])],
        "learning_goals": str(given.get("learning_goals", "")),
        "preferred_style": str(given.get("preferred_style", "")),
    }


def _sub_topic(session: LearningSession, kind: str, sub_topic_id: int) -> dict[str, Any]:
    for sub in session.selected_subtopics:
        if sub["type"] == kind and int(sub["id"]) == sub_topic_id:
            return sub
    raise KeyError(f"{kind}_{sub_topic_id}")


def curriculum_context(session: LearningSession) -> dict[str, Any]:
    options = session.generation_options or {}
    return {
        "main_topic": session.main_topic,
        "level": session.target_level,
        "sub_topics": [
            {
                "ref": sub["ref"],
                "name": sub["name"],
                "description": sub["description"],
                "learning_outcomes": list(sub.get("learning_outcomes", [])),
                "prerequisites": list(sub.get("prerequisites", [])),
            }
            for sub in session.selected_subtopics
        ],
        "personalization": _personalization(session),
        "options": {
            "max_articles_per_subtopic": int(options["max_articles_per_subtopic"]),
            "include_practice_problems": bool(options.get("include_practice_problems", False)),
        },
    }


def article_context(
    session: LearningSession, article: GeneratedArticle, order_in_sub_topic: int, total: int
) -> dict[str, Any]:
    personalization = _personalization(session)
    sub = _sub_topic(session, article.sub_topic_type, article.sub_topic_id)
    return {
        "main_topic": session.main_topic,
        "level": article.target_level,
        "sub_topic": {
            "ref": sub["ref"],
            "name": sub["name"],
            "description": sub["description"],
            "learning_outcomes": list(sub.get("learning_outcomes", [])),
        },
        "outline": {
            "title": article.title,
            "summary": article.summary or "",
            "key_concepts": list(article.key_concepts),
            "difficulty_indicators": list(article.difficulty_indicators),
            "order": order_in_sub_topic,
            "total": total,
        },
        "personalization": personalization,
        "options": {
            "include_examples": personalization["include_examples"],
            "include_practice_problems": personalization["include_practice_problems"],
            "preferred_article_length": personalization["preferred_article_length"],
        },
    }


def conversion_context(
    session: LearningSession,
    article: GeneratedArticle,
    order_in_sub_topic: int,
    total: int,
    target_level: str,
) -> dict[str, Any]:
    context = article_context(session, article, order_in_sub_topic, total)
    context["level"] = target_level
    context["source_level"] = article.target_level
    context["source_article"] = article.body or {}
    return context


def to_json(context: dict[str, Any]) -> str:
    return json.dumps(context, ensure_ascii=False, sort_keys=True)
