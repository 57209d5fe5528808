"""Concept phrases pulled out of curated sub-topic data, for the offline composer.

Curated learning outcomes are noun phrases ending in an action ("RAG 파이프라인 설계·구현",
"기회비용과 매몰비용 구분"); descriptions list concepts separated by commas before a closing
verb ("선형회귀, 로지스틱 회귀, 결정트리, 랜덤 포레스트를 … 익힙니다."). The phrases found here
name what an article teaches; they are never shown as a claim about the world.
"""

from __future__ import annotations

import re
from typing import Any, Final

from infou_generation.content.korean import final_sound

MAX_CONCEPT_CHARS: Final = 24

# Words ending in 로 that are nouns, not the particle.
_RO_NOUNS: Final = frozenset(
    {"경로", "회로", "통로", "진로", "도로", "항로", "수로", "미로", "선로", "활로", "노로"}
)
# Words ending in 과 that are nouns, not the particle.
_GWA_NOUNS: Final = frozenset(
    {
        "효과",
        "결과",
        "성과",
        "사과",
        "학과",
        "교과",
        "통과",
        "초과",
        "경과",
        "부과",
        "인과",
        "전과",
        "과",
    }
)
_OBJECT_SUFFIXES: Final = ("으로", "에서", "까지", "부터", "에게", "을", "를", "에")
_VERB_ENDINGS: Final = (
    "니다",
    "하며",
    "하고",
    "되고",
    "되며",
    "보고",
    "으며",
    "하여",
    "해서",
    "시키며",
    "는",
    "한",
    "된",
    "던",
)
_VERB_STEMS: Final = ("었", "았", "했", "겠", "하", "되", "있", "없")
_STOP_TOKENS: Final = frozenset(
    {"등", "등을", "등의", "같은", "및", "또는", "그리고", "위한", "통한", "대한", "따른", "이용한"}
)
# Words too general to name what an article teaches.
_GENERIC: Final = frozenset(
    [
        "목적",
        "목적이",
        "결론",
        "상황",
        "일상",
        "결과",
        "방법",
        "방식",
        "과정",
        "내용",
        "개요",
        "기초",
        "기본",
        "사례",
        "선택",
        "자주",
        "간을",
        "연구",
        "진행",
        "데이터",
        "서비스",
        "요청",
        "흐름",
        "정중하게",
        "부분",
        "그림",
        "대화",
        "해석",
        "영향",
        "차이",
        "재료",
        "작업",
        "사용법",
        "한계",
        "전환",
        "1분",
        "입력",
        "출력",
        "상태",
        "화면",
        "패키지",
        "로그",
        "프로세스",
        "비용",
        "중복",
        "사전",
        "표기",
        "인분",
        "냄비",
        "저울",
        "식품",
        "제과",
        "리소스",
        "인체",
        "연필",
        "손",
        "절감",
        "비율",
        "성과",
        "이야기",
        "최소",
        "피사체",
        "그림자",
        "대비",
        "정확히",
        "함께",
        "요구사항",
        "특정 색",
        "외부 도구",
        "앱·DB 함께",
    ]
)
# A phrase with one of these inside is a clause, not a concept.
_CLAUSE_MARKERS: Final = ("보고", "찾아", "니다", "하게", "삼아", "없이")


def outcome_concept(outcome: str) -> list[str]:
    """The concepts of one learning outcome: its phrase without the closing action word."""
    tokens = outcome.split()
    if len(tokens) >= 2:
        tokens = tokens[:-1]
    return _split_instrument(tokens)


def _split_instrument(tokens: list[str]) -> list[str]:
    """ "X로 Y" → [X (the method), Y (the object)]; otherwise the phrase itself."""
    for i, token in enumerate(tokens[:-1]):
        head = _instrument_head(token)
        if head is not None:
            before = " ".join([*tokens[:i], head])
            after = " ".join(tokens[i + 1 :])
            return [c for c in (_clean(before), _clean(after)) if c]
    phrase = _clean(" ".join(tokens))
    return [phrase] if phrase else []


def description_concepts(description: str) -> list[str]:
    """The comma-separated concepts a description lists, up to where its verb begins."""
    found: list[str] = []
    for chunk in _split_outside_parentheses(description):
        words: list[str] = []
        for token in chunk.split():
            if token in _STOP_TOKENS:
                break
            head = _strip_object(token)
            if head != token:
                if not head.endswith(_VERB_STEMS):
                    words.append(head)
                break
            if token.endswith(_VERB_ENDINGS) and not _is_noun_like(token):
                break
            words.append(token)
        for phrase in _split_instrument(words):
            if len(phrase.split()) <= 4:
                found.extend(_split_conjunction(phrase))
    return found


def _split_outside_parentheses(text: str) -> list[str]:
    """Split on commas and 및 that are not inside parentheses."""
    chunks: list[str] = []
    current: list[str] = []
    depth = 0
    for char in text:
        depth += char == "("
        depth -= char == ")"
        if char == "," and depth <= 0:
            chunks.append("".join(current))
            current = []
        else:
            current.append(char)
    chunks.append("".join(current))
    return [part for chunk in chunks for part in re.split(r"\s+및\s+", chunk)]


def sub_topic_concepts(sub_topic: dict[str, Any]) -> list[str]:
    """Ordered, de-duplicated concepts of a sub-topic: description first, then outcomes."""
    candidates = description_concepts(str(sub_topic.get("description", "")))
    for outcome in sub_topic.get("learning_outcomes") or []:
        candidates.extend(outcome_concept(str(outcome)))
    seen: set[str] = set()
    result = []
    for concept in candidates:
        key = concept.replace(" ", "").lower()
        if (
            key
            and key not in seen
            and 1 < len(concept) <= MAX_CONCEPT_CHARS
            and concept not in _GENERIC
            and not _is_clause(concept)
        ):
            seen.add(key)
            result.append(concept)
    return result


def _is_clause(phrase: str) -> bool:
    """Whether a phrase carries an object or a verb inside it ("실행 계획을 보고 인덱스")."""
    tokens = phrase.split()
    for token in tokens[:-1]:
        if token.endswith(_CLAUSE_MARKERS) or _strip_object(token) != token:
            return True
    return tokens[-1].endswith(_CLAUSE_MARKERS)


def _instrument_head(token: str) -> str | None:
    """`token` without a trailing instrumental particle (으)로, or None if it has none."""
    if token.endswith("으로") and len(token) > 2:
        return token[:-2]
    if token.endswith("로") and len(token) > 2 and token not in _RO_NOUNS:
        head = token[:-1]
        if final_sound(head) in ("", "rieul") and not head.endswith(("으", "므")):
            return head
    return None


def _strip_object(token: str) -> str:
    """`token` without a trailing object, place or instrument particle that agrees with it."""
    for suffix in _OBJECT_SUFFIXES:
        if token.endswith(suffix) and len(token) > len(suffix) + 1:
            head = token[: -len(suffix)]
            sound = final_sound(head)
            if head.endswith(")") and suffix in ("을", "를"):
                return head
            if (suffix == "을" and not sound) or (suffix == "를" and sound):
                continue
            if suffix == "으로" and sound != "other":
                continue
            return head
    return token


def _is_noun_like(token: str) -> bool:
    return bool(re.search(r"[A-Za-z0-9)]$", token))


def _clean(phrase: str) -> str:
    phrase = phrase.strip(" ,.·:;")
    tokens = phrase.split()
    if tokens:
        tokens[-1] = _strip_object(tokens[-1])
    return " ".join(tokens).strip(" ,.·:;")


def _split_conjunction(phrase: str) -> list[str]:
    """ "A와 B" → [A, B] when the particle is really one (효과, 결과 … are nouns)."""
    tokens = phrase.split()
    for i, token in enumerate(tokens[:-1]):
        for particle, needs_final in (("과", True), ("와", False)):
            if token.endswith(particle) and token not in _GWA_NOUNS and len(token) > 1:
                head = token[:-1]
                if bool(final_sound(head)) == needs_final:
                    left = " ".join([*tokens[:i], head])
                    # "A와 B의 차이" is about both: keep B alone.
                    right = re.sub(r"의 (차이|관계|비교)$", "", " ".join(tokens[i + 1 :]))
                    return [p for p in (left, right) if p]
    return [phrase]
