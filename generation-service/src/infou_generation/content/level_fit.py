"""Level fit, measured: whether a Korean text reads at the level it is meant for.

`measure` reads four features off the text; `assess` holds them against the level's band
(`BANDS`) and names every band the text breaks. The features:

* sentence length — mean eojeol (whitespace-separated words) per sentence, code excluded;
* undefined share — of the distinct terms above the reader's level (the per-level vocabulary
  in `level_vocabulary.yaml`, plus unknown Latin-script words, which count as intermediate),
  the share whose first use is not a definition ("X란 …", "X는 …을 말합니다", "…을 X라고
  부릅니다", "X(쉬운 풀이)", "X, 즉 …"), held against the band from two such terms on;
* jargon density — occurrences of those undefined above-level terms per word;
* code share — characters inside code (fenced or inline) among all non-blank characters.

Too hard: any of them above the level's maximum. Too easy (intermediate and up): sentences
shorter than the level's floor *and* almost no advanced or expert terms (`depth_density`), so a
topic outside the vocabulary (drawing, economics) written in long sentences is not called easy.

A broken band may be a slip (a few bare terms of the sub-topic in a beginner's text); `off_level`
says the text is clearly written for another level, and the quality gate fails it on its own:

* too easy (short sentences and no depth, two features at once);
* too hard on two independent features — sentences, vocabulary (undefined share or jargon
  density), code;
* too hard with at least `MIN_FAR_TERMS` distinct undefined terms of the advanced or expert
  vocabulary two levels or more above the reader (`far_terms`): the register of a design review
  ("트레이드오프", "엣지 케이스", "격리 수준") in a text for a beginner.

The bands were calibrated on the labelled corpus in
`generation-service/tests/data/level_fit_corpus.yaml` (every passage judged for a label; planted
mismatches are text written for another level) and on what the offline composer (the fake LLM
server's writer) produces; `tests/test_level_fit.py` reports the confusion matrix and holds the
targets: every planted mismatch clearly off-level, at most 5 % of fitting passages rejected.
`python -m infou_generation.content.level_fit CORPUS.yaml` prints the matrix.
"""

from __future__ import annotations

import argparse
import functools
import re
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Final

import yaml

from infou_libs.levels import LEVELS

_FENCED_CODE = re.compile(r"```.*?(?:```|\Z)", re.S)
_INLINE_CODE = re.compile(r"`[^`\n]*`")
_LIST_MARKER = re.compile(r"^\s*(?:[-*+>#]+|\d+[.)])\s+")
_SENTENCE_END = re.compile(r"(?<=[.!?。])\s+")
_LATIN_RUN = re.compile(r"[A-Za-z][A-Za-z0-9+#]*(?:[-_/.][A-Za-z0-9+#]+)*")
# "파이썬(Python)": a Latin gloss after a Korean word explains nothing new.
_LATIN_GLOSS = re.compile(r"(?<=[\uac00-\ud7a3])\([A-Za-z0-9 \-_/.,+#'’]+\)")
_COMMON_LATIN: Final = frozenset(
    {"ok", "vs", "pc", "tv", "it", "ai", "sns", "app", "etc", "e", "usb", "wi-fi", "id"}
)
_DEFINING_END = re.compile(
    r"(말합니다|말한다|말해요|뜻합니다|뜻한다|뜻해요|의미합니다|의미한다|가리킵니다|가리킨다|"
    r"부릅니다|부른다|불러요|일컫습니다|정의합니다|정의됩니다|입니다|이다|예요|이에요|"
    r"있어요|있습니다|해요|합니다)[.!?]?$"
)
# The level of unknown Latin-script words: like a term a beginner has not met yet.
_LATIN_TIER: Final = LEVELS.index("intermediate")
_DEPTH_TIER: Final = LEVELS.index("advanced")
# One undefined term is a slip ("클래스" may be a drawing class), not a level: the share counts
# from two on.
MIN_UNDEFINED_TERMS: Final = 2
# Distinct undefined advanced or expert terms, two levels or more above the reader, that make
# a text clearly too hard (the composer's beginner texts carry at most two such slips).
MIN_FAR_TERMS: Final = 3
# Broken bands grouped by the feature they measure: two groups at once is clearly off-level.
_FEATURE_OF: Final = {
    "too_hard:sentence_length": "sentences",
    "too_hard:terms_used_before_defined": "vocabulary",
    "too_hard:jargon_density": "vocabulary",
    "too_hard:code_share": "code",
}


@dataclass(frozen=True)
class LevelFitBand:
    """What text for one level may be; a `min_*` of 0 means no floor."""

    max_avg_sentence: float
    max_undefined_share: float
    max_jargon_density: float
    max_code_share: float
    # Too easy when both are under their floor.
    min_avg_sentence: float = 0.0
    min_depth_density: float = 0.0


# Calibrated on tests/data/level_fit_corpus.yaml (see the module docstring).
BANDS: Final[dict[str, LevelFitBand]] = {
    "absolute_beginner": LevelFitBand(11.5, 0.5, 0.03, 0.3),
    "beginner": LevelFitBand(13.0, 0.5, 0.04, 0.4),
    "intermediate": LevelFitBand(
        16.0, 0.5, 0.04, 0.6, min_avg_sentence=6.5, min_depth_density=0.01
    ),
    "advanced": LevelFitBand(22.0, 1.0, 0.12, 0.8, min_avg_sentence=9.0, min_depth_density=0.02),
    "expert": LevelFitBand(40.0, 1.0, 1.0, 0.9, min_avg_sentence=11.0, min_depth_density=0.008),
}


@dataclass(frozen=True)
class LevelFeatures:
    """The measured features of one text, for one reader level."""

    words: int
    sentences: int
    avg_sentence: float
    undefined_share: float
    jargon_density: float
    code_share: float
    depth_density: float
    undefined_terms: tuple[str, ...] = ()
    # Undefined terms of the advanced or expert vocabulary two levels or more above the reader.
    far_terms: tuple[str, ...] = ()

    def as_metrics(self) -> dict[str, float]:
        return {
            "avg_sentence_words": round(self.avg_sentence, 2),
            "undefined_term_share": round(self.undefined_share, 3),
            "jargon_density": round(self.jargon_density, 4),
            "code_share": round(self.code_share, 3),
            "depth_density": round(self.depth_density, 4),
            "far_terms": float(len(self.far_terms)),
        }


@dataclass(frozen=True)
class LevelFit:
    """The verdict: `fits`, or the broken bands (`too_hard:…`, `too_easy`) and `off_level`."""

    level: str
    features: LevelFeatures
    problems: list[str] = field(default_factory=list)

    @property
    def fits(self) -> bool:
        return not self.problems

    @property
    def off_level(self) -> bool:
        """Clearly written for another level (see the module docstring), not a slip."""
        if "too_easy" in self.problems:
            return True
        if not self.problems:
            return False
        features = {_FEATURE_OF[p] for p in self.problems if p in _FEATURE_OF}
        return len(features) >= 2 or len(self.features.far_terms) >= MIN_FAR_TERMS


@functools.cache
def vocabulary() -> dict[str, int]:
    """Term (lower case) → index of the first level that knows it without a definition."""
    text = (
        resources.files("infou_generation.content")
        .joinpath("level_vocabulary.yaml")
        .read_text(encoding="utf-8")
    )
    tiers: dict[str, list[str]] = yaml.safe_load(text)
    return {
        str(term).lower(): LEVELS.index(level) for level, terms in tiers.items() for term in terms
    }


def measure(text: str, level: str, known: Iterable[str] = ()) -> LevelFeatures:
    """The features of markdown `text` as read by someone at `level`.

    Terms inside `known` (the names of the topic and sub-topic the learner chose) count as known.
    """
    reader = _level_index(level)
    named = {term for name in known for term, _ in _terms_in(name)}
    prose = _INLINE_CODE.sub(" ", _FENCED_CODE.sub(" ", text))
    code_chars = _visible(text) - _visible(prose)
    total_chars = _visible(text)
    sentences = _sentences(prose)
    lengths = [len(s.split()) for s in sentences]
    words = sum(lengths)

    first_use: dict[str, str] = {}
    tier_of: dict[str, int] = {}
    occurrences: dict[str, int] = {}
    for sentence in sentences:
        for term, tier in _terms_in(sentence):
            first_use.setdefault(term, sentence)
            tier_of[term] = tier
            occurrences[term] = occurrences.get(term, 0) + 1
    above = [t for t in first_use if tier_of[t] > reader and t not in named]
    undefined = sorted(t for t in above if not _defines(first_use[t], t))
    far_tier = max(reader + 2, _DEPTH_TIER)
    far = tuple(t for t in undefined if tier_of[t] >= far_tier)
    jargon = sum(occurrences[t] for t in undefined)
    depth = sum(n for t, n in occurrences.items() if tier_of[t] >= _DEPTH_TIER)
    return LevelFeatures(
        words=words,
        sentences=len(lengths),
        avg_sentence=words / len(lengths) if lengths else 0.0,
        undefined_share=len(undefined) / len(above) if above else 0.0,
        jargon_density=jargon / words if words else 0.0,
        code_share=code_chars / total_chars if total_chars else 0.0,
        depth_density=depth / words if words else 0.0,
        undefined_terms=tuple(undefined),
        far_terms=far,
    )


def assess(text: str, level: str, known: Iterable[str] = ()) -> LevelFit:
    """Whether `text` fits `level`: every band of the level it breaks, by name."""
    features = measure(text, level, known)
    band = BANDS[level]
    problems = []
    if features.avg_sentence > band.max_avg_sentence:
        problems.append("too_hard:sentence_length")
    if (
        len(features.undefined_terms) >= MIN_UNDEFINED_TERMS
        and features.undefined_share > band.max_undefined_share
    ):
        problems.append("too_hard:terms_used_before_defined")
    if features.jargon_density > band.max_jargon_density:
        problems.append("too_hard:jargon_density")
    if features.code_share > band.max_code_share:
        problems.append("too_hard:code_share")
    if (
        features.sentences
        and features.avg_sentence < band.min_avg_sentence
        and features.depth_density < band.min_depth_density
    ):
        problems.append("too_easy")
    return LevelFit(level, features, problems)


# The verdicts of the confusion matrix: fits, a band broken (`level_drift`, a warning), clearly
# off-level (`level_mismatch`, the gate fails it).
VERDICTS: Final = ("accepted", "drift", "off-level")
TRUTHS: Final = ("fits its label", "planted mismatch")


@dataclass(frozen=True)
class CorpusResult:
    """The check over a labelled corpus: (truth, verdict) counts, the passages it got wrong."""

    matrix: Counter[tuple[str, str]]
    # Planted mismatches not found off-level; fitting passages flagged (drift or off-level).
    missed: list[str]
    rejected: list[str]

    @property
    def false_rejection_rate(self) -> float:
        fitting = sum(self.matrix[TRUTHS[0], v] for v in VERDICTS)
        return len(self.rejected) / fitting if fitting else 0.0

    def table(self) -> str:
        """The matrix as text (rows: truth, columns: verdict), for a closing note."""
        lines = [f"{'':18}" + "".join(f"{v:>11}" for v in VERDICTS)]
        lines.extend(
            f"{truth:18}" + "".join(f"{self.matrix[truth, v]:>11}" for v in VERDICTS)
            for truth in TRUTHS
        )
        lines.append(
            f"planted mismatches missed: {len(self.missed)}; fitting passages flagged: "
            f"{len(self.rejected)} ({self.false_rejection_rate:.1%})"
        )
        return "\n".join(lines)


def judge_corpus(passages: Sequence[dict[str, str]]) -> CorpusResult:
    """Each passage (`id`, `text`, `label`, `written_for`) judged for its `label`."""
    matrix: Counter[tuple[str, str]] = Counter()
    missed: list[str] = []
    rejected: list[str] = []
    for passage in passages:
        fit = assess(passage["text"], passage["label"])
        verdict = "off-level" if fit.off_level else "drift" if not fit.fits else "accepted"
        planted = passage["label"] != passage["written_for"]
        matrix[TRUTHS[planted], verdict] += 1
        if planted and verdict != "off-level":
            missed.append(f"{passage['id']}: {verdict} {fit.problems}")
        if not planted and verdict != "accepted":
            rejected.append(f"{passage['id']}: {verdict} {fit.problems}")
    return CorpusResult(matrix, missed, rejected)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m infou_generation.content.level_fit CORPUS.yaml`: print the confusion matrix."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("corpus", type=Path, help="a labelled corpus (tests/data/…yaml)")
    args = parser.parse_args(argv)
    passages = yaml.safe_load(args.corpus.read_text(encoding="utf-8"))["passages"]
    result = judge_corpus(passages)
    sys.stdout.write(result.table() + "\n")
    for line in result.missed + result.rejected:
        sys.stdout.write(f"  {line}\n")
    return 1 if result.missed else 0


def _level_index(level: str) -> int:
    try:
        return LEVELS.index(level)
    except ValueError:
        raise ValueError(f"unknown level {level!r}; expected one of {', '.join(LEVELS)}") from None


def _visible(text: str) -> int:
    return sum(1 for ch in text if not ch.isspace() and ch != "`")


def _sentences(prose: str) -> list[str]:
    """Sentences of at least two words; headings, list items and lines end a sentence."""
    result: list[str] = []
    for line in prose.splitlines():
        line = _LIST_MARKER.sub("", line).strip()
        result.extend(
            sentence.strip() for sentence in _SENTENCE_END.split(line) if len(sentence.split()) >= 2
        )
    return result


@functools.cache
def _term_patterns() -> list[tuple[str, int, re.Pattern[str]]]:
    """Longest terms first, so that "최종적 일관성" is read before "일관성"."""
    patterns = []
    for term, tier in sorted(vocabulary().items(), key=lambda item: -len(item[0])):
        escaped = re.escape(term)
        if re.fullmatch(r"[a-z0-9+#.\-_/ ]+", term):
            pattern = re.compile(rf"(?<![A-Za-z0-9]){escaped}(?![A-Za-z0-9])", re.I)
        else:
            pattern = re.compile(escaped, re.I)
        patterns.append((term, tier, pattern))
    return patterns


def _terms_in(sentence: str) -> list[tuple[str, int]]:
    """Each occurrence of a vocabulary term or an unknown Latin-script word in `sentence`."""
    found: list[tuple[str, int]] = []
    rest = _LATIN_GLOSS.sub(" ", sentence)
    for term, tier, pattern in _term_patterns():
        if pattern.search(rest):
            found.extend((term, tier) for _ in pattern.findall(rest))
            rest = pattern.sub(" ", rest)
    for run in _LATIN_RUN.findall(rest):
        word = run.lower()
        if len(word) >= 2 and word not in _COMMON_LATIN:
            found.append((word, _LATIN_TIER))
    return found


def _defines(sentence: str, term: str) -> bool:
    """Whether `sentence`, where `term` first appears, reads as a definition of it."""
    escaped = re.escape(term)
    gloss = r"(?:\s*\([^)]*\))?"
    if re.search(
        escaped + gloss + r"\s*(?:이란|란|이라는 것은|라는 것은|이라는 말은|라는 말은)",
        sentence,
        re.I,
    ):
        return True
    if re.search(escaped + r"\s*\([^)]*[\uac00-\ud7a3][^)]*\)", sentence, re.I):
        return True  # "캐시(자주 쓰는 자료를 모아 두는 곳)"
    if re.search(escaped + r"\s*(?:,\s*즉|, 다시 말해)", sentence, re.I):
        return True
    if re.search(
        escaped + r"(?:이?라고|이라|라)\s*(?:합니다|부릅니다|한다|부른다|해요|불러요)",
        sentence,
        re.I,
    ):
        return True
    return bool(
        re.search(r"(?:^|\s)[^\s]*" + escaped + gloss + r"(?:은|는|이란|란)\s", sentence, re.I)
        and _DEFINING_END.search(sentence.rstrip())
    )


if __name__ == "__main__":
    sys.exit(main())
