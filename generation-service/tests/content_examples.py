"""Example task contexts (curated-style data) for the tests."""

from __future__ import annotations

import copy
import uuid
from typing import Any, Final

MAIN_TOPICS: Final[dict[str, dict[str, Any]]] = {
    "ai-ml": {
        "id": 1,
        "slug": "ai-ml",
        "name": "인공지능 & 머신러닝",
        "description": "AI, ML, DL, LLM 전반적인 내용을 실무 관점에서 다룹니다.",
        "category": "tech",
    },
    "economics": {
        "id": 2,
        "slug": "economics",
        "name": "경제학",
        "description": "희소성과 기회비용에서 출발해 수요·공급, 시장 구조, 거시 지표를 다룹니다.",
        "category": "humanities",
    },
    "drawing": {
        "id": 3,
        "slug": "drawing",
        "name": "드로잉과 일러스트",
        "description": "선 긋기와 기본 도형에서 출발해 원근법, 명암, 인체 드로잉을 다룹니다.",
        "category": "arts",
    },
}

SUB_TOPICS: Final[dict[str, dict[str, Any]]] = {
    "transformers": {
        "main": "ai-ml",
        "ref": "curated_6",
        "name": "트랜스포머 아키텍처",
        "description": (
            "Self-attention과 멀티헤드 어텐션, 위치 인코딩, 인코더-디코더 구조를 살펴보고 "
            "BERT(인코더)와 GPT(디코더) 계열의 설계 차이를 비교합니다."
        ),
        "learning_outcomes": [
            "Scaled dot-product attention 계산 과정 설명",
            "멀티헤드 어텐션의 역할 설명",
            "BERT와 GPT 구조 차이 비교",
            "위치 인코딩의 필요성 설명",
        ],
        "prerequisites": ["선형대수 기초", "신경망 기초"],
    },
    "supervised": {
        "main": "ai-ml",
        "ref": "curated_2",
        "name": "지도학습 기초",
        "description": (
            "선형회귀, 로지스틱 회귀, 결정트리, 랜덤 포레스트를 scikit-learn으로 학습시키며 "
            "train/validation/test 분할과 편향-분산 트레이드오프를 익힙니다."
        ),
        "learning_outcomes": [
            "회귀와 분류 문제 구분",
            "scikit-learn으로 기본 모델 학습·예측",
            "학습 곡선으로 과적합 진단",
            "L1·L2 정규화 적용",
        ],
        "prerequisites": ["Python 기초 문법", "함수와 그래프 읽기"],
    },
    "economics-basics": {
        "main": "economics",
        "ref": "curated_40",
        "name": "경제학의 기본 개념",
        "description": (
            "희소성과 선택, 기회비용과 매몰비용, 인센티브, 한계적 사고, 비교우위와 교역의 이익, "
            "생산가능곡선을 일상 사례로 다룹니다."
        ),
        "learning_outcomes": [
            "기회비용과 매몰비용 구분",
            "한계적 사고로 선택 분석",
            "비교우위로 교역 이익 계산",
            "생산가능곡선 해석",
        ],
        "prerequisites": [],
    },
    "lines-shapes": {
        "main": "drawing",
        "ref": "curated_90",
        "name": "선과 기본 도형",
        "description": (
            "연필 쥐는 법과 어깨로 긋는 선 연습, 구·원기둥·육면체 같은 기본 도형으로 사물을 "
            "분해하기, 비율 재기와 관찰 드로잉 습관을 다룹니다."
        ),
        "learning_outcomes": [
            "흔들림 없는 직선·곡선 긋기",
            "사물을 기본 도형으로 분해",
            "연필로 비율 측정",
            "10분 관찰 드로잉 완성",
        ],
        "prerequisites": [],
    },
}

PERSONALIZATION: Final[dict[str, Any]] = {
    "interests": ["chatbot", "automation", "nlp"],
    "current_level": "intermediate",
    "learning_goals": "업무 자동화 도구 개발",
    "time_availability": "regular",
    "preferred_style": "practical",
    "learning_pace": "regular",
    "preferred_article_length": "medium",
    "include_examples": True,
    "include_practice_problems": False,
}


def _sub_topic(key: str, fields: tuple[str, ...]) -> dict[str, Any]:
    return {f: copy.deepcopy(SUB_TOPICS[key][f]) for f in fields}


def subtopics_context(main: str = "ai-ml", **options: Any) -> dict[str, Any]:
    """A `subtopics` context for one main topic, its curated sub-topics listed."""
    return {
        "main_topic": dict(MAIN_TOPICS[main]),
        "curated_sub_topics": [
            _sub_topic(key, ("name", "description"))
            for key, data in SUB_TOPICS.items()
            if data["main"] == main
        ],
        "personalization": copy.deepcopy(PERSONALIZATION),
        "options": {
            "max_subtopics": 5,
            "include_prerequisites": True,
            "difficulty_progression": True,
            **options,
        },
    }


def curriculum_context(
    sub_topics: tuple[str, ...] = ("transformers", "supervised"),
    level: str = "intermediate",
    **options: Any,
) -> dict[str, Any]:
    """A `curriculum` context over the given example sub-topics."""
    fields = ("ref", "name", "description", "learning_outcomes", "prerequisites")
    return {
        "main_topic": dict(MAIN_TOPICS[SUB_TOPICS[sub_topics[0]]["main"]]),
        "level": level,
        "sub_topics": [_sub_topic(k, fields) for k in sub_topics],
        "personalization": copy.deepcopy(PERSONALIZATION),
        "options": {"max_articles_per_subtopic": 4, "include_practice_problems": False, **options},
    }


def article_context(
    sub_topic: str = "transformers",
    level: str = "intermediate",
    *,
    length: str = "medium",
    include_examples: bool = True,
    include_practice_problems: bool = False,
    key_concepts: tuple[str, ...] = (),
    order: int = 2,
    total: int = 4,
) -> dict[str, Any]:
    """An `article` context for one example sub-topic."""
    data = SUB_TOPICS[sub_topic]
    return {
        "main_topic": dict(MAIN_TOPICS[data["main"]]),
        "level": level,
        "sub_topic": _sub_topic(sub_topic, ("ref", "name", "description", "learning_outcomes")),
        "outline": {
            "title": f"{data['name']} 핵심 개념",
            "summary": f"{data['name']}의 핵심 개념을 차례로 살펴봅니다.",
            "key_concepts": list(key_concepts),
            "difficulty_indicators": [],
            "order": order,
            "total": total,
        },
        "personalization": copy.deepcopy(PERSONALIZATION),
        "options": {
            "include_examples": include_examples,
            "include_practice_problems": include_practice_problems,
            "preferred_article_length": length,
        },
    }


def level_conversion_context(
    source_article: dict[str, Any],
    *,
    sub_topic: str = "transformers",
    source_level: str = "intermediate",
    level: str = "beginner",
    length: str = "medium",
) -> dict[str, Any]:
    """A `level_conversion` context: `source_article` rewritten for `level`."""
    context = article_context(sub_topic, level, length=length)
    context["source_level"] = source_level
    context["source_article"] = copy.deepcopy(source_article)
    return context


def unique(context: dict[str, Any]) -> dict[str, Any]:
    """The context with a content cache key no other test uses (the cache is shared by the run):
    a tag on the article's outline title, or on the curriculum's first sub-topic. Learner text
    would not do: shared content is written (and keyed) without it."""
    tag = uuid.uuid4().hex[:8]
    if "outline" in context:
        context["outline"]["title"] = f"{context['outline']['title']} {tag}"
    elif "sub_topics" in context:
        first = context["sub_topics"][0]
        first["description"] = f"{first['description']} ({tag})"
    else:
        context["personalization"]["learning_goals"] = f"업무 자동화 {tag}"
    return context
