"""The level-fit check on its labelled corpus, on the offline composer, and inside the gate."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from content_examples import SUB_TOPICS, article_context

from infou_generation.content import level_fit
from infou_generation.content.levels import ARTICLE_LENGTHS
from infou_generation.content.offline import compose
from infou_generation.content.quality import PENALTIES, QUALITY_THRESHOLD, evaluate
from infou_libs.levels import LEVELS

CORPUS = Path(__file__).parent / "data" / "level_fit_corpus.yaml"


def _corpus() -> list[dict[str, Any]]:
    passages: list[dict[str, Any]] = yaml.safe_load(CORPUS.read_text(encoding="utf-8"))["passages"]
    return passages


def test_corpus_has_ten_passages_per_label_with_planted_mismatches() -> None:
    passages = _corpus()
    assert len({p["id"] for p in passages}) == len(passages)
    for level in LEVELS:
        labelled = [p for p in passages if p["label"] == level]
        assert len(labelled) >= 10, level
        assert any(p["written_for"] != level for p in labelled), level
        assert all(p["written_for"] in LEVELS for p in labelled)


def test_confusion_matrix_catches_every_planted_mismatch_with_few_false_rejections() -> None:
    result = level_fit.judge_corpus(_corpus())
    print("\nlevel-fit confusion matrix (rows: truth, columns: verdict)")
    print(result.table())
    assert result.missed == []
    assert result.matrix["planted mismatch", "off-level"] >= 10
    assert result.false_rejection_rate <= 0.05, result.rejected


def test_the_command_line_prints_the_matrix(capsys: pytest.CaptureFixture[str]) -> None:
    assert level_fit.main([str(CORPUS)]) == 0
    out = capsys.readouterr().out
    assert "planted mismatch" in out
    assert "planted mismatches missed: 0" in out


@pytest.mark.parametrize("sub_topic", sorted(SUB_TOPICS))
@pytest.mark.parametrize("level", LEVELS)
def test_offline_composer_articles_fit_their_level(sub_topic: str, level: str) -> None:
    for length in ARTICLE_LENGTHS:
        for extras in (True, False):
            context = article_context(
                sub_topic,
                level,
                length=length,
                include_examples=extras,
                include_practice_problems=extras,
            )
            article = compose("article", context)
            names = (context["main_topic"]["name"], context["sub_topic"]["name"])
            report = evaluate(article, level, preferred_article_length=length, topic_names=names)
            assert "level_mismatch" not in report.warnings, (length, extras, report.level_fit)
            assert report.passed, (length, extras, report.warnings)


@pytest.mark.parametrize("sub_topic", sorted(SUB_TOPICS))
@pytest.mark.parametrize("reader", ["absolute_beginner", "beginner"])
def test_the_composers_expert_article_fails_the_gate_for_a_beginner_on_its_own(
    sub_topic: str, reader: str
) -> None:
    """What the fake LLM server's wrong_level scenario answers: never served to a beginner."""
    for length in ARTICLE_LENGTHS:
        for goal in ("업무 자동화", "취미", "시험 준비"):
            context = article_context(sub_topic, reader, length=length)
            context["personalization"]["learning_goals"] = goal
            expert = compose("article", dict(context, level="expert"))
            names = (context["main_topic"]["name"], context["sub_topic"]["name"])
            report = evaluate(expert, reader, preferred_article_length=length, topic_names=names)
            assert "level_mismatch" in report.warnings, (length, goal, report.level_fit)
            assert not report.passed


def test_a_clear_mismatch_fails_on_its_own_a_drift_only_with_another_warning() -> None:
    assert 1.0 - PENALTIES["level_mismatch"] < QUALITY_THRESHOLD
    assert 1.0 - PENALTIES["level_drift"] >= QUALITY_THRESHOLD
    assert (
        1.0 - PENALTIES["level_drift"] - PENALTIES["missing_analogies"] < QUALITY_THRESHOLD + 0.01
    )


def test_a_few_bare_terms_drift_the_analytic_register_is_off_level() -> None:
    calm = " 손목을 가볍게 움직여요. 천천히 그어 봐요. 삐뚤어도 괜찮아요. 매일 조금씩 해 봐요." * 3
    slip = "오늘은 서버에 접속해 클래스를 만들어요." + calm
    drift = level_fit.assess(slip, "absolute_beginner")
    # Two vocabulary bands broken: one feature, a drift.
    assert drift.problems == ["too_hard:terms_used_before_defined", "too_hard:jargon_density"]
    assert not drift.off_level
    register = "이 방법은 트레이드오프가 있고 엣지 케이스와 경계 조건을 따져야 해요." + calm
    off = level_fit.assess(register, "absolute_beginner")
    assert off.features.far_terms == ("경계 조건", "엣지 케이스", "트레이드오프")
    assert off.off_level
    # The same words are the expert's own vocabulary.
    assert level_fit.assess(register, "expert").features.far_terms == ()
    # Too hard on two features at once (sentences and vocabulary) is off-level too.
    long_bare = (
        "서버와 클라이언트가 주고받는 요청을 캐시에 담아 두면 "
        "같은 요청이 다시 올 때 훨씬 빨리 답할 수 있습니다." * 3
    )
    both = level_fit.assess(long_bare, "absolute_beginner")
    assert "too_hard:sentence_length" in both.problems
    assert both.off_level


def _expert_article() -> dict[str, Any]:
    """Korean expert prose with no English jargon at all: four expert passages of the corpus."""
    texts = {p["id"]: p["text"] for p in _corpus()}
    ids = ("e-isolation", "e-stampede", "e-lsm", "e-distill")
    return {
        "title": "저장소와 캐시 설계의 트레이드오프",
        "summary": "격리 수준, 캐시 스탬피드, 컴팩션, 지식 증류의 설계 기준과 한계를 다룹니다.",
        "sections": [
            {
                "heading": f"쟁점 {i}",
                "body": texts[key].replace("stale-while-revalidate", "지연 갱신"),
            }
            for i, key in enumerate(ids, start=1)
        ],
        "key_terms": [
            {
                "term": "스냅숏 격리",
                "definition": "트랜잭션이 시작 시점의 스냅숏을 읽는 격리 수준.",
            },
            {"term": "쓰기 증폭", "definition": "한 번의 쓰기가 저장 장치에 여러 번 쓰이는 비율."},
            {
                "term": "지식 증류",
                "definition": "큰 모델의 출력을 작은 모델이 따라 배우게 하는 기법.",
            },
        ],
        "code_examples": [],
        "practical_tips": ["격리 수준을 올리기 전에 재시도 경로를 먼저 만드세요."],
        "related_concepts": ["분산 합의"],
        "practice_problems": [],
    }


def test_korean_expert_jargon_fails_the_gate_at_absolute_beginner() -> None:
    article = _expert_article()
    report = evaluate(article, "absolute_beginner", preferred_article_length="short")
    assert "level_mismatch" in report.warnings
    assert "too_hard:jargon_density" in report.level_fit
    assert not report.passed
    assert (
        report.metrics["level_fit_jargon_density"] > level_fit.BANDS["beginner"].max_jargon_density
    )
    assert report.score < QUALITY_THRESHOLD

    at_expert = evaluate(article, "expert", preferred_article_length="short")
    assert "level_mismatch" not in at_expert.warnings
    assert at_expert.level_fit == []


def test_terms_defined_at_first_use_are_not_jargon() -> None:
    defined = "트랜잭션이란 여러 작업을 하나로 묶어 모두 하거나 모두 안 하는 단위를 말합니다."
    bare = "트랜잭션을 열고 두 계좌를 함께 고친 뒤 커밋합니다."
    assert level_fit.measure(defined, "beginner").undefined_terms == ()
    assert level_fit.measure(bare, "beginner").undefined_terms == ("커밋", "트랜잭션")
    # Defined only after its first use still counts as used before it is defined.
    later = bare + " " + defined
    assert "트랜잭션" in level_fit.measure(later, "beginner").undefined_terms
    # A Korean gloss in parentheses defines it too.
    gloss = "트랜잭션(여러 작업을 한 덩어리로 처리하는 단위)을 엽니다."
    assert level_fit.measure(gloss, "beginner").undefined_terms == ()


def test_term_tiers_follow_the_reader_level() -> None:
    text = "트랜잭션을 열고 두 계좌를 함께 고칩니다. 실패하면 모두 되돌립니다."
    assert level_fit.measure(text, "intermediate").undefined_terms == ("트랜잭션",)
    assert level_fit.measure(text, "advanced").undefined_terms == ()
    assert level_fit.measure(text, "advanced").depth_density > 0


def test_longest_term_wins_and_latin_glosses_are_not_jargon() -> None:
    text = "이 저장소는 최종적 일관성을 제공합니다. 파이썬(Python)으로 접속합니다."
    features = level_fit.measure(text, "intermediate")
    assert features.undefined_terms == ("최종적 일관성",)
    unknown_latin = level_fit.measure("이 값은 FooBarClient로 보냅니다.", "beginner")
    assert unknown_latin.undefined_terms == ("foobarclient",)


def test_topic_names_count_as_known_words() -> None:
    text = "지도학습 기초를 함께 공부해 봅시다. 천천히 하나씩 배웁니다."
    assert level_fit.measure(text, "absolute_beginner").undefined_terms == ("지도학습",)
    named = level_fit.measure(text, "absolute_beginner", known=("지도학습 기초",))
    assert named.undefined_terms == ()


def test_code_share_and_too_easy() -> None:
    text = "값을 출력합니다.\n\n```python\nprint(sum(range(10)) * 2)\n```"
    share = level_fit.measure(text, "beginner").code_share
    assert 0.5 < share < 1.0
    assert "too_hard:code_share" in level_fit.assess(text, "absolute_beginner").problems
    easy = "컴퓨터를 켜요. 화면을 봐요. 버튼을 눌러요."
    assert level_fit.assess(easy, "expert").problems == ["too_easy"]
    assert level_fit.assess(easy, "absolute_beginner").fits


def test_one_undefined_term_is_a_slip_two_are_a_level() -> None:
    calm = " 손목을 가볍게 움직여요. 천천히 그어 봐요. 삐뚤어도 괜찮아요. 매일 조금씩 해 봐요." * 4
    one = "오늘은 드로잉 클래스에서 선 긋기를 배워요." + calm
    assert level_fit.measure(one, "absolute_beginner").undefined_share == 1.0
    assert level_fit.assess(one, "absolute_beginner").fits
    two = "오늘은 서버에 접속해 클래스를 만들어요." + calm
    assert (
        "too_hard:terms_used_before_defined" in level_fit.assess(two, "absolute_beginner").problems
    )


def test_unknown_level_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="unknown level"):
        level_fit.measure("텍스트입니다.", "guru")
