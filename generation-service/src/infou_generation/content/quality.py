"""The quality gate: scores an article (or a level conversion) before it is stored.

`evaluate` measures the article's markdown (`article_markdown`) and its structured parts and
returns a score in 0..1 with stable machine-readable warnings. Every warning subtracts a
documented penalty from 1.0 (`PENALTIES`); an article passes at `QUALITY_THRESHOLD`. One
structural failure (not Korean, a missing required part, empty or duplicated sections, or
more than about an eighth too short) or text clearly written for another level
(`level_mismatch`) fails on its own; one difficulty-fit warning does not, two or three do.

Bands (all counts are eojeol, i.e. whitespace-separated tokens, code excluded):

* Length — `WORD_BOUNDS[level][preferred_article_length]` = (min, max). Deeper levels get
  longer articles; "short"/"medium"/"long" roughly double from one to the next.
* Korean — Hangul must be at least `MIN_KOREAN_RATIO` (0.6) of the letters outside code.
* Structure — at least `MIN_SECTIONS[length]` sections, each with a heading and a body of at
  least `MIN_SECTION_WORDS` words, no two with the same heading or near-identical bodies
  (word-set Jaccard ≥ `DUPLICATE_JACCARD`); at least `MIN_KEY_TERMS` key terms, all defined;
  a code example when `expects_code` and `include_examples`; at least
  `MIN_PRACTICE_PROBLEMS` practice problems when `include_practice_problems`.
* Difficulty fit — per level, `LEVEL_BANDS`:
  - sentence length: the mean words per sentence of the prose must lie in
    [min_avg_sentence, max_avg_sentence], and at most `MAX_LONG_SENTENCE_SHARE` of the
    sentences may be longer than `long_sentence`;
  - defined-term share: of the key terms used in the prose, the share whose first use sits in
    a defining sentence ("X란 …", "X는 …을 말합니다/뜻합니다/…입니다", "…을 X라고 부릅니다")
    must reach `min_defined_share`;
  - jargon density: Latin-script words (API, scikit-learn, …) that are neither key terms nor
    defined at first use nor a gloss in parentheses after a Korean word, per prose word,
    must stay at or under `max_jargon_density` (Korean-script jargon cannot be told apart
    without a lexicon; the defined-term share covers it instead);
  - beginner levels need analogies ("마치 …처럼", "비유하자면", "예를 들어"), advanced and expert
    need trade-offs ("트레이드오프", "장단점", "반면", "한계", "비용"), expert needs edge cases.
* Level fit — the measured check of `content.level_fit` (sentence length, terms used before they
  are defined and jargon density against a per-level vocabulary, code share, with bands
  calibrated on a labelled corpus and on the offline composer's output). Text clearly written for
  another level (`LevelFit.off_level`: too easy, too hard on two features at once, or three
  undefined advanced/expert terms in a beginner's text) is `level_mismatch`, which fails on its
  own: an expert article is never served to an absolute beginner. Text that breaks a band
  without being off-level (a few bare terms of the sub-topic) is `level_drift`, a difficulty-fit
  warning like the others. The broken bands are in `QualityReport.level_fit`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from infou_generation.content import level_fit
from infou_generation.content.korean import is_hangul
from infou_generation.content.levels import ARTICLE_LENGTHS, level_index

QUALITY_THRESHOLD: Final = 0.7
MIN_KOREAN_RATIO: Final = 0.6
MIN_SECTION_WORDS: Final = 10
DUPLICATE_JACCARD: Final = 0.8
MIN_KEY_TERMS: Final = 3
MIN_PRACTICE_PROBLEMS: Final = 2
MIN_SECTIONS: Final = {"short": 3, "medium": 4, "long": 5}
MAX_LONG_SENTENCE_SHARE: Final = 0.2

WORD_BOUNDS: Final[dict[str, dict[str, tuple[int, int]]]] = {
    "absolute_beginner": {"short": (200, 500), "medium": (350, 800), "long": (600, 1300)},
    "beginner": {"short": (220, 550), "medium": (400, 900), "long": (700, 1400)},
    "intermediate": {"short": (250, 600), "medium": (450, 1000), "long": (800, 1600)},
    "advanced": {"short": (280, 650), "medium": (500, 1100), "long": (900, 1800)},
    "expert": {"short": (300, 700), "medium": (550, 1200), "long": (1000, 2000)},
}


@dataclass(frozen=True)
class LevelBand:
    """Difficulty-fit bands of one level."""

    min_avg_sentence: float
    max_avg_sentence: float
    long_sentence: int
    min_defined_share: float
    max_jargon_density: float
    min_analogies: int
    min_tradeoffs: int
    min_edge_cases: int
    words_per_minute: int


LEVEL_BANDS: Final = {
    "absolute_beginner": LevelBand(4, 12, 18, 0.8, 0.01, 2, 0, 0, 110),
    "beginner": LevelBand(4, 14, 22, 0.6, 0.02, 1, 0, 0, 130),
    "intermediate": LevelBand(5, 17, 26, 0.4, 0.04, 0, 0, 0, 150),
    "advanced": LevelBand(6, 20, 30, 0.2, 0.07, 0, 1, 0, 170),
    "expert": LevelBand(7, 24, 36, 0.0, 0.12, 0, 2, 1, 190),
}

# What each warning costs. Beginner levels weigh the difficulty-fit warnings double.
PENALTIES: Final = {
    "missing_title": 0.35,
    "missing_summary": 0.05,
    "too_short": 0.2,  # + 0.8 × the missing share of the minimum
    "too_long": 0.1,  # + up to 0.3 more in proportion to the excess
    "low_korean_ratio": 0.5,
    "too_few_sections": 0.15,
    "empty_section": 0.35,
    "duplicate_sections": 0.35,
    "missing_key_terms": 0.35,
    "missing_code_examples": 0.35,
    "missing_practice_problems": 0.35,
    "missing_examples": 0.1,
    "missing_practical_tips": 0.05,
    "sentences_too_long_for_level": 0.2,
    "sentences_too_short_for_level": 0.05,
    "terms_not_defined_before_use": 0.1,
    "undefined_jargon": 0.1,
    "missing_analogies": 0.1,
    "missing_tradeoffs": 0.1,
    "missing_edge_cases": 0.05,
    "level_drift": 0.2,
    "level_mismatch": 0.35,  # fails on its own: text for another level is never served
}
_DOUBLED_FOR_BEGINNERS: Final = {"terms_not_defined_before_use", "undefined_jargon"}

_FENCED_CODE = re.compile(r"```.*?(?:```|\Z)", re.S)
_INLINE_CODE = re.compile(r"`[^`\n]*`")
_LIST_MARKER = re.compile(r"^\s*(?:[-*+>]|\d+[.)])\s+")
_SENTENCE_END = re.compile(r"(?<=[.!?。])\s+")
_LIST_NUMBER = re.compile(r"^\d+[.)]$")
_LATIN_RUN = re.compile(r"[A-Za-z][A-Za-z0-9+#]*(?:[-_/.][A-Za-z0-9+#]+)*")
_LATIN_GLOSS = re.compile(r"(?<=[\uac00-\ud7a3])\([A-Za-z0-9 \-_/.,+#'’]+\)")
_COMMON_LATIN: Final = frozenset({"ok", "vs", "pc", "tv", "it", "ai", "sns", "app", "etc", "e"})
_DEFINING_PREDICATE = re.compile(
    r"(말합니다|말한다|뜻합니다|뜻한다|의미합니다|의미한다|가리킵니다|가리킨다|부릅니다|부른다|"
    r"일컫습니다|정의합니다|정의됩니다|입니다|이다|예요|이에요|말해요|뜻해요)[.!?]?$"
)
# "X는 …하는 개념이며, …" / "X는 …을 다루는 원리로, …": the definition sits in the first clause.
_DEFINING_CLAUSE = re.compile(
    r"(개념|용어|원리|방법|기준|말|뜻|요소|과정|단계)(이며|이고|으로|로서|로),"
)
_ANALOGY = re.compile(
    r"비유하자면|비유하면|비유해 보면|마치|처럼|듯,|와 같습니다|과 같습니다|예를 들어|예컨대|떠올려"
)
_TRADEOFF = re.compile(
    r"트레이드오프|trade-?off|장단점|장점과 단점|대가|반면|한계|절충|비용이|비용을|희생",
    re.I,
)
_EDGE_CASE = re.compile(
    r"엣지 케이스|edge case|코너 케이스|경계 조건|예외 상황|극단적인 경우|드문 경우", re.I
)
_EXAMPLE = re.compile(r"예를 들어|예컨대|가령|이를테면|예시|예제|사례")


@dataclass(frozen=True)
class QualityReport:
    """The gate's verdict on one article."""

    score: float
    warnings: list[str]
    passed: bool
    word_count: int
    metrics: dict[str, float] = field(default_factory=dict)
    # The level-fit bands the text breaks ("too_hard:jargon_density", "too_easy", …).
    level_fit: list[str] = field(default_factory=list)
    # The LLM judge's verdict (content.judge), when INFOU_QUALITY_LLM_JUDGE is on.
    judge: dict[str, Any] | None = None


def word_count(text: str) -> int:
    """Whitespace-separated tokens (Korean eojeol) with a letter or digit, code blocks excluded."""
    prose = _FENCED_CODE.sub(" ", text)
    return sum(
        1
        for token in prose.split()
        if any(ch.isalnum() for ch in token) and not _LIST_NUMBER.match(token)
    )


def read_time(word_count: int, level: str) -> str:
    """Reading time as the PRD shows it ("3-4분"); beginners read more slowly."""
    rate = LEVEL_BANDS[_checked_level(level)].words_per_minute
    low = max(1, math.floor(max(word_count, 0) / rate))
    return f"{low}-{low + max(1, low // 5)}분"


def expects_code(main_topic_category: str, sub_topic: dict[str, Any]) -> bool:
    """Whether an article on this sub-topic should carry code examples.

    Tech sub-topics do, unless they are plainly conceptual (a concept map, an ecosystem
    overview, personal safety rules); others only when they name code (Python, SQL, …).
    """
    text = " ".join(
        [
            str(sub_topic.get("name", "")),
            str(sub_topic.get("description", "")),
            " ".join(str(x) for x in sub_topic.get("learning_outcomes") or []),
        ]
    ).lower()
    if any(keyword in text for keyword in _CODE_KEYWORDS):
        return True
    if main_topic_category.strip().lower() != "tech":
        return False
    name = str(sub_topic.get("name", ""))
    return not any(keyword in name for keyword in _CONCEPTUAL_KEYWORDS)


# Words that mean code in any field.
_CODE_KEYWORDS: Final = (
    "python",
    "파이썬",
    "javascript",
    "자바스크립트",
    "typescript",
    "sql",
    "소스 코드",
    "코드 작성",
    "코드 리뷰",
    "코딩",
    "프로그래밍",
    "스크립트",
    "pandas",
    "numpy",
    "pytorch",
    "scikit-learn",
    "html",
    "css",
    "react",
    "flutter",
    "docker",
    "kubernetes",
    "terraform",
    "bash",
    "셸",
    "git",
    "api",
    "정규표현식",
)
# Tech sub-topic names that are about ideas, not code.
_CONCEPTUAL_KEYWORDS: Final = ("개념 지도", "생태계", "수칙", "리터러시", "윤리", "커리어")


def article_markdown(article: dict[str, Any]) -> str:
    """The stored `content`: sections as ## headings, then key terms, code, tips, problems."""
    parts: list[str] = []
    for section in article.get("sections") or []:
        heading = str(section.get("heading", "")).strip()
        body = str(section.get("body", "")).strip()
        parts.append(f"## {heading}\n\n{body}" if heading else body)
    section = article.get("personal_adaptation")
    if isinstance(section, dict):
        # The learner's own section (content/adaptation.py), after the shared article's body.
        parts.append(_adaptation_markdown(section))
    terms = [t for t in article.get("key_terms") or [] if str(t.get("term", "")).strip()]
    if terms:
        lines = [
            f"- **{t['term'].strip()}**: {str(t.get('definition', '')).strip()}" for t in terms
        ]
        parts.append("## 핵심 용어\n\n" + "\n".join(lines))
    examples = [e for e in article.get("code_examples") or [] if str(e.get("code", "")).strip()]
    if examples:
        blocks = []
        for example in examples:
            language = str(example.get("language", "")).strip().lower()
            code = str(example["code"]).strip("\n")
            explanation = str(example.get("explanation", "")).strip()
            blocks.append(
                f"```{language}\n{code}\n```" + (f"\n\n{explanation}" if explanation else "")
            )
        parts.append("## 코드 예제\n\n" + "\n\n".join(blocks))
    tips = [str(t).strip() for t in article.get("practical_tips") or [] if str(t).strip()]
    if tips:
        parts.append("## 실무 팁\n\n" + "\n".join(f"- {t}" for t in tips))
    related = [str(c).strip() for c in article.get("related_concepts") or [] if str(c).strip()]
    if related:
        parts.append("## 관련 개념\n\n" + "\n".join(f"- {c}" for c in related))
    problems = [
        p for p in article.get("practice_problems") or [] if str(p.get("question", "")).strip()
    ]
    if problems:
        lines = []
        for i, problem in enumerate(problems, start=1):
            lines.append(f"{i}. {problem['question'].strip()}")
            hint = str(problem.get("hint", "")).strip()
            if hint:
                lines.append(f"   - 힌트: {hint}")
        parts.append("## 연습 문제\n\n" + "\n".join(lines))
    return "\n\n".join(parts).strip() + "\n"


def _adaptation_markdown(section: dict[str, Any]) -> str:
    heading = str(section.get("heading", "")).strip() or "내 목표와 연결하기"
    parts = [str(section.get(k, "")).strip() for k in ("connection", "example")]
    return f"## {heading}\n\n" + "\n\n".join(p for p in parts if p)


def evaluate(
    article: dict[str, Any],
    level: str,
    *,
    preferred_article_length: str = "medium",
    include_examples: bool = True,
    include_practice_problems: bool = False,
    expects_code: bool = False,
    topic_names: Sequence[str] = (),
) -> QualityReport:
    """Score an article for `level` and the learner's options; see the module docstring.

    `topic_names` (main topic, sub-topic) are words the learner chose: level fit counts them known.
    """
    level = _checked_level(level)
    if preferred_article_length not in ARTICLE_LENGTHS:
        raise ValueError(
            f"unknown preferred_article_length {preferred_article_length!r}; "
            f"expected one of {', '.join(ARTICLE_LENGTHS)}"
        )
    band = LEVEL_BANDS[level]
    penalties: dict[str, float] = {}

    def warn(name: str, extra: float = 0.0) -> None:
        base = PENALTIES[name]
        if name in _DOUBLED_FOR_BEGINNERS and level_index(level) <= 1:
            base *= 2
        penalties[name] = base + extra

    markdown = article_markdown(article)
    words = word_count(markdown)
    sections = [s for s in article.get("sections") or [] if isinstance(s, dict)]
    bodies = [str(s.get("body", "")) for s in sections]
    prose = "\n".join(bodies)
    prose_plain = _plain(prose)

    # Presence and length.
    if not str(article.get("title", "")).strip():
        warn("missing_title")
    if not str(article.get("summary", "")).strip():
        warn("missing_summary")
    low, high = WORD_BOUNDS[level][preferred_article_length]
    if words < low:
        warn("too_short", 0.8 * (low - words) / low)
    elif words > high:
        warn("too_long", min(0.3, 0.3 * (words - high) / high))
    korean = korean_ratio(markdown)
    if korean < MIN_KOREAN_RATIO:
        warn("low_korean_ratio")

    # Structure.
    if len(sections) < MIN_SECTIONS[preferred_article_length]:
        warn("too_few_sections")
    if any(
        not str(s.get("heading", "")).strip()
        or word_count(str(s.get("body", ""))) < MIN_SECTION_WORDS
        for s in sections
    ):
        warn("empty_section")
    duplicates = _duplicate_pairs(sections)
    if duplicates:
        warn("duplicate_sections")
    terms = [t for t in article.get("key_terms") or [] if isinstance(t, dict)]
    named_terms = [str(t.get("term", "")).strip() for t in terms if str(t.get("term", "")).strip()]
    if len(named_terms) < MIN_KEY_TERMS or any(
        not str(t.get("definition", "")).strip() for t in terms
    ):
        warn("missing_key_terms")
    code_count = sum(
        1
        for e in article.get("code_examples") or []
        if isinstance(e, dict) and str(e.get("code", "")).strip()
    )
    if expects_code and include_examples and code_count == 0:
        warn("missing_code_examples")
    problem_count = sum(
        1
        for p in article.get("practice_problems") or []
        if isinstance(p, dict) and str(p.get("question", "")).strip()
    )
    if include_practice_problems and problem_count < MIN_PRACTICE_PROBLEMS:
        warn("missing_practice_problems")
    if include_examples and code_count == 0 and not _EXAMPLE.search(prose_plain):
        warn("missing_examples")
    if not any(str(t).strip() for t in article.get("practical_tips") or []):
        warn("missing_practical_tips")

    # Difficulty fit.
    sentences = _sentences(prose)
    lengths = [len(s.split()) for s in sentences]
    avg_sentence = sum(lengths) / len(lengths) if lengths else 0.0
    long_share = (
        sum(1 for n in lengths if n > band.long_sentence) / len(lengths) if lengths else 0.0
    )
    if lengths and (avg_sentence > band.max_avg_sentence or long_share > MAX_LONG_SENTENCE_SHARE):
        warn("sentences_too_long_for_level")
    elif lengths and avg_sentence < band.min_avg_sentence:
        warn("sentences_too_short_for_level")
    defined_share = _defined_share(named_terms, sentences)
    if defined_share < band.min_defined_share:
        warn("terms_not_defined_before_use")
    prose_words = max(1, word_count(prose))
    jargon = _undefined_jargon(prose, named_terms, sentences)
    jargon_density = jargon / prose_words
    if jargon_density > band.max_jargon_density:
        warn("undefined_jargon")
    analogies = sum(1 for s in sentences if _ANALOGY.search(s))
    tradeoffs = sum(1 for s in sentences if _TRADEOFF.search(s))
    edge_cases = sum(1 for s in sentences if _EDGE_CASE.search(s))
    if analogies < band.min_analogies:
        warn("missing_analogies")
    if tradeoffs < band.min_tradeoffs:
        warn("missing_tradeoffs")
    if edge_cases < band.min_edge_cases:
        warn("missing_edge_cases")

    fit = level_fit.assess(_level_fit_text(article), level, topic_names)
    if fit.off_level:
        warn("level_mismatch")
    elif not fit.fits:
        warn("level_drift")

    score = round(max(0.0, min(1.0, 1.0 - sum(penalties.values()))), 3)
    metrics = {
        "word_count": float(words),
        "korean_ratio": round(korean, 3),
        "section_count": float(len(sections)),
        "key_term_count": float(len(named_terms)),
        "code_example_count": float(code_count),
        "practice_problem_count": float(problem_count),
        "duplicate_section_pairs": float(duplicates),
        "sentence_count": float(len(lengths)),
        "avg_sentence_words": round(avg_sentence, 2),
        "long_sentence_share": round(long_share, 3),
        "defined_term_share": round(defined_share, 3),
        "jargon_density": round(jargon_density, 4),
        "analogy_count": float(analogies),
        "tradeoff_count": float(tradeoffs),
        "edge_case_count": float(edge_cases),
        **{f"level_fit_{name}": value for name, value in fit.features.as_metrics().items()},
    }
    return QualityReport(
        score=score,
        warnings=sorted(penalties),
        passed=score >= QUALITY_THRESHOLD,
        word_count=words,
        metrics=metrics,
        level_fit=fit.problems,
    )


def _level_fit_text(article: dict[str, Any]) -> str:
    """What the level-fit check reads: the sections' bodies, then the code examples."""
    parts = [str(s.get("body", "")) for s in article.get("sections") or [] if isinstance(s, dict)]
    parts.extend(
        f"```\n{e['code']}\n```"
        for e in article.get("code_examples") or []
        if isinstance(e, dict) and str(e.get("code", "")).strip()
    )
    return "\n\n".join(parts)


def korean_ratio(text: str) -> float:
    """Share of Hangul among the letters outside code (1.0 for text without letters)."""
    letters = [ch for ch in _plain(text) if ch.isalpha()]
    if not letters:
        return 0.0
    return sum(1 for ch in letters if is_hangul(ch)) / len(letters)


def _checked_level(level: str) -> str:
    level_index(level)
    return level


def _plain(text: str) -> str:
    """Text without fenced or inline code."""
    return _INLINE_CODE.sub(" ", _FENCED_CODE.sub(" ", text))


def _sentences(prose: str) -> list[str]:
    """Sentences of at least three words; list items and lines count as their own sentences."""
    result: list[str] = []
    for line in _plain(prose).splitlines():
        line = _LIST_MARKER.sub("", line).strip()
        if not line:
            continue
        result.extend(
            sentence.strip() for sentence in _SENTENCE_END.split(line) if len(sentence.split()) >= 3
        )
    return result


def _duplicate_pairs(sections: list[dict[str, Any]]) -> int:
    headings = [re.sub(r"\W+", "", str(s.get("heading", ""))).lower() for s in sections]
    bags = [set(_plain(str(s.get("body", ""))).split()) for s in sections]
    pairs = 0
    for i in range(len(sections)):
        for j in range(i + 1, len(sections)):
            same_heading = bool(headings[i]) and headings[i] == headings[j]
            union = bags[i] | bags[j]
            similar = (
                min(len(bags[i]), len(bags[j])) >= MIN_SECTION_WORDS
                and len(bags[i] & bags[j]) / len(union) >= DUPLICATE_JACCARD
            )
            if same_heading or similar:
                pairs += 1
    return pairs


def _defines(sentence: str, term: str) -> bool:
    """Whether `sentence` reads as a definition of `term`."""
    escaped = re.escape(term)
    if re.search(escaped + r"(?:\([^)]*\))?\s*(?:이란|란|이라는 것은|라는 것은)", sentence):
        return True
    if re.search(
        escaped + r"(?:이?라고|이라|라)\s*(?:합니다|부릅니다|한다|부른다|해요|불러요)", sentence
    ):
        return True
    if re.search(r"^\**" + escaped + r"\**\s*[:：—]", sentence):
        return True
    return bool(
        re.search(escaped + r"(?:\([^)]*\))?(?:은|는)\s", sentence)
        and (_DEFINING_PREDICATE.search(sentence.rstrip()) or _DEFINING_CLAUSE.search(sentence))
    )


def _defined_share(terms: list[str], sentences: list[str]) -> float:
    """Of the terms used in the prose, the share defined where they are first used."""
    used = defined = 0
    for term in terms:
        first = next((s for s in sentences if term.lower() in s.lower()), None)
        if first is None:
            continue
        used += 1
        if _defines(first, term) or _defines(first.lower(), term.lower()):
            defined += 1
    return defined / used if used else 1.0


def _undefined_jargon(prose: str, terms: list[str], sentences: list[str]) -> int:
    """Occurrences of Latin-script words that no key term or first-use definition explains."""
    known: set[str] = set(_COMMON_LATIN)
    for term in terms:
        known.update(run.lower() for run in _LATIN_RUN.findall(term))
    text = _LATIN_GLOSS.sub("", _plain(prose))
    for run in {r.lower() for r in _LATIN_RUN.findall(text)} - known:
        first = next((s for s in sentences if run in s.lower()), None)
        if first is not None and _defines(first.lower(), run):
            known.add(run)
    count = 0
    for token in text.split():
        runs = [r.lower() for r in _LATIN_RUN.findall(token) if len(r) >= 2]
        if any(run not in known for run in runs):
            count += 1
    return count
