"""The offline composer of a personal adaptation: a short section tying a shared article to the
learner's goal and interests, from the article's title and key terms (content/adaptation.py)."""

from __future__ import annotations

import random
from typing import Any, Final

from infou_generation.content.korean import fill
from infou_generation.content.offline.phrasing import goal_of, interests_of, seed

_HEADINGS: Final = ("내 목표와 연결하기", "나에게 적용하기", "내 관심사로 다시 보기")
_CONNECTIONS: Final = (
    "{goal:을} 이루는 과정에서 ‘{title}’에서 다룬 {term:은} 출발점이 됩니다. "
    "목표에 필요한 일을 작게 나누고, 그중 {term:이} 필요한 단계가 어디인지 먼저 표시해 보세요.",
    "‘{title}’의 핵심인 {term:은} {goal:과} 직접 이어집니다. "
    "글을 다시 읽으며 목표에 바로 쓸 수 있는 부분에 밑줄을 그어 두면 다음 글도 더 쉽게 읽힙니다.",
    "{goal:을} 생각하며 읽으면 {term:이} 왜 중요한지 더 분명해집니다. "
    "이 글에서 배운 내용을 목표와 관련된 일 하나에 연결해 짧게 적어 보세요.",
)
_EXAMPLES: Final = (
    "예를 들어 {interest} 분야에서 작은 과제를 하나 골라 {term:을} 적용해 보세요. "
    "적용하기 전과 후에 무엇이 달라지는지 한두 문장으로 비교하면 개념이 손에 잡힙니다.",
    "예를 들어 {interest}에 관한 자료를 하나 정해 {term}의 관점에서 다시 읽어 보세요. "
    "어느 부분에 {term:이} 숨어 있는지 찾는 것만으로도 좋은 연습이 됩니다.",
    "가령 {interest}에서 자주 겪는 문제를 하나 떠올리고, {term:이} 그 문제의 어느 부분을 "
    "설명하는지 짚어 보세요. 찾은 내용을 메모해 두면 복습할 때 도움이 됩니다.",
)


def compose_adaptation(context: dict[str, Any]) -> dict[str, Any]:
    """The adaptation for `context` ({level, article, learner}, content/adaptation.py)."""
    article = context.get("article") or {}
    learner = context.get("learner") or {}
    # Reproducible text, not secrecy: a seeded PRNG is the point here.
    rng = random.Random(seed("article_adaptation", context))  # noqa: S311
    title = str(article.get("title") or "이 글").strip()[:60]
    terms = [str(t).strip() for t in article.get("key_terms") or [] if str(t).strip()]
    term = terms[0] if terms else "핵심 개념"
    goal, _ = goal_of(learner)
    interests = interests_of(learner)
    slots = {
        "goal": goal,
        "title": title,
        "term": term,
        "interest": interests[0] if interests else title,
    }
    return {
        "heading": rng.choice(_HEADINGS),
        "connection": fill(rng.choice(_CONNECTIONS), slots),
        "example": fill(rng.choice(_EXAMPLES), slots),
    }
