"""The quality gate on good and bad samples for every level."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from content_examples import SUB_TOPICS, article_context

from infou_generation.content.levels import ARTICLE_LENGTHS
from infou_generation.content.offline import compose
from infou_generation.content.quality import (
    LEVEL_BANDS,
    PENALTIES,
    QUALITY_THRESHOLD,
    WORD_BOUNDS,
    QualityReport,
    article_markdown,
    evaluate,
    expects_code,
    read_time,
    word_count,
)
from infou_libs.levels import LEVELS

# Written by hand for someone who has never heard of a cache: short sentences, every term
# defined where it first appears, everyday analogies, no unexplained English.
BEGINNER_ARTICLE: dict[str, Any] = {
    "title": "캐시, 웹을 빠르게 만드는 작은 창고",
    "summary": "웹 브라우저가 캐시로 페이지를 빨리 보여 주는 원리를 쉽게 알아봅니다.",
    "sections": [
        {
            "heading": "캐시란 무엇일까요",
            "body": (
                "캐시란 자주 쓰는 자료를 가까운 곳에 잠시 보관해 두는 방법을 말합니다. "
                "비유하자면 캐시는 집에 있는 냉장고와 같습니다. 마트에 매번 가지 않아도 "
                "냉장고에서 바로 꺼내 먹을 수 있습니다. 캐시도 필요한 자료를 빨리 꺼내 줍니다. "
                "덕분에 기다리는 시간이 줄어듭니다."
            ),
        },
        {
            "heading": "웹 브라우저와 캐시",
            "body": (
                "웹 브라우저란 인터넷 페이지를 보여 주는 프로그램을 말합니다. 웹 브라우저는 "
                "한 번 받은 그림과 글을 캐시에 넣어 둡니다. 같은 페이지를 다시 열면 저장해 둔 "
                "자료를 먼저 씁니다. 그래서 두 번째 방문은 훨씬 빠르게 느껴집니다.\n\n"
                "예를 들어 자주 가는 쇼핑 사이트의 로고는 매번 새로 받지 않습니다. 마치 책상 "
                "위에 자주 보는 책을 올려 두는 것과 같습니다."
            ),
        },
        {
            "heading": "새로 고침은 언제 필요할까요",
            "body": (
                "새로 고침이란 페이지를 처음부터 다시 불러오는 일을 말합니다. 캐시에 오래된 "
                "자료가 남아 있으면 바뀐 내용이 바로 보이지 않을 수 있습니다. 이럴 때 새로 "
                "고침을 누르면 최신 자료를 다시 받아 옵니다. 냉장고 속 음식도 오래되면 새로 "
                "사야 하는 것처럼요. 너무 자주 누를 필요는 없습니다. 이상할 때만 한 번 눌러 "
                "보세요."
            ),
        },
        {
            "heading": "정리하며",
            "body": (
                "오늘은 캐시와 웹 브라우저, 새로 고침을 알아보았습니다. 캐시는 자료를 가까이 "
                "두어 시간을 아껴 줍니다. 오래된 자료가 보이면 새로 고침으로 해결할 수 "
                "있습니다. 다음 글에서는 캐시가 어디에 저장되는지 살펴보겠습니다."
            ),
        },
    ],
    "key_terms": [
        {"term": "캐시", "definition": "자주 쓰는 자료를 가까운 곳에 잠시 보관해 두는 방법입니다."},
        {"term": "웹 브라우저", "definition": "인터넷 페이지를 보여 주는 프로그램입니다."},
        {"term": "새로 고침", "definition": "페이지를 처음부터 다시 불러오는 일입니다."},
    ],
    "code_examples": [],
    "practical_tips": [
        "페이지가 이상하게 보이면 먼저 새로 고침을 해 보세요.",
        "공용 컴퓨터를 쓴 뒤에는 방문 기록을 지우는 습관을 들이세요.",
    ],
    "related_concepts": ["인터넷 주소", "쿠키"],
    "practice_problems": [],
}

# Written for specialists: long sentences, dense English jargon used without definitions,
# trade-offs and edge cases. Right for an expert, wrong for an absolute beginner.
EXPERT_ARTICLE: dict[str, Any] = {
    "title": "HTTP 캐싱 정책의 트레이드오프",
    "summary": "신선도, 비용, 지연 사이에서 캐싱 정책을 설계하는 기준과 엣지 케이스를 다룹니다.",
    "sections": [
        {
            "heading": "캐시 무효화의 설계 공간",
            "body": (
                "Cache-Control 헤더와 ETag 검증을 어떻게 조합하느냐에 따라 원본 서버 부하와 "
                "응답 지연, 데이터 신선도 사이의 트레이드오프가 결정됩니다. 긴 max-age는 CDN "
                "적중률을 높이지만, 배포 직후 오래된 자산이 노출되는 시간을 늘리는 대가가 "
                "따릅니다. 반면 no-cache에 가까운 정책은 신선도를 보장하는 대신 매 요청마다 "
                "조건부 요청의 왕복 지연을 부담시킵니다. 실무에서는 콘텐츠 해시를 파일 이름에 "
                "넣어 불변 자산은 긴 TTL로, 문서는 짧은 TTL과 재검증으로 분리하는 전략이 "
                "일반적입니다. 이 분리는 빌드 과정이 해시를 일관되게 붙인다는 가정에 기대므로, "
                "빌드 도구를 바꿀 때 가장 먼저 깨지는 지점이기도 합니다."
            ),
        },
        {
            "heading": "stale-while-revalidate의 비용",
            "body": (
                "stale-while-revalidate는 만료된 응답을 즉시 돌려주고 백그라운드에서 갱신하므로 "
                "꼬리 지연을 크게 줄이지만, 일관성 모델을 최종적 일관성으로 낮춘다는 점을 "
                "명시해야 합니다. 예를 들어 가격이나 재고처럼 강한 일관성이 요구되는 리소스에 "
                "이 지시어를 적용하면 사용자마다 서로 다른 값을 보는 문제가 생깁니다. 따라서 "
                "리소스 유형별로 허용 가능한 불일치 시간을 SLO로 정의하고, 그 범위 안에서만 이 "
                "지시어를 쓰는 편이 안전합니다."
            ),
        },
        {
            "heading": "엣지 케이스와 한계",
            "body": (
                "엣지 케이스로는 Vary 헤더 남용에 따른 캐시 키 폭발이 대표적입니다. User-Agent "
                "전체를 Vary에 넣으면 사실상 모든 요청이 서로 다른 캐시 항목이 되어 적중률이 "
                "급락합니다. 또한 쿠키가 붙은 응답을 공유 캐시에 저장하면 개인화된 데이터가 다른 "
                "사용자에게 노출될 위험이 있으므로 private 지시어로 경계를 분명히 해야 합니다. "
                "부하가 몰리는 순간 여러 요청이 동시에 원본으로 향하는 현상도 요청 병합으로 "
                "완화해야 하는 한계입니다."
            ),
        },
        {
            "heading": "정리",
            "body": (
                "결국 캐싱 정책은 신선도, 비용, 지연이라는 세 축 사이의 절충이며, 정답은 "
                "리소스의 변경 빈도와 일관성 요구에 따라 달라집니다. 정책을 바꿀 때는 적중률, "
                "원본 요청 수, 오래된 응답 비율을 함께 관측해 가정이 맞는지 검증하십시오. "
                "특히 정책을 바꾼 직후 며칠은 오래된 응답 비율이 튀는지 "
                "따로 지켜보는 것이 좋습니다."
            ),
        },
    ],
    "key_terms": [
        {
            "term": "Cache-Control",
            "definition": "응답을 누가, 얼마나 오래 캐시할지 정하는 HTTP 헤더입니다.",
        },
        {
            "term": "ETag",
            "definition": "응답 내용의 버전을 나타내는 식별자로, 조건부 요청의 재검증에 쓰입니다.",
        },
        {
            "term": "stale-while-revalidate",
            "definition": "만료된 응답을 먼저 내주고 뒤에서 갱신하도록 허용하는 지시어입니다.",
        },
        {
            "term": "Vary",
            "definition": "어떤 요청 헤더에 따라 캐시 항목을 나눌지 알리는 헤더입니다.",
        },
    ],
    "code_examples": [],
    "practical_tips": [
        "정책을 바꾸기 전후로 적중률과 원본 요청 수를 같은 대시보드에서 비교하세요.",
        "개인화된 응답에는 공유 캐시 저장을 막는 지시어를 기본값으로 두세요.",
    ],
    "related_concepts": ["CDN 아키텍처", "최종적 일관성"],
    "practice_problems": [],
}


def _composed(level: str, *, code: bool = True, problems: bool = False) -> dict[str, Any]:
    sub_topic = "supervised" if code else "economics-basics"
    return compose(
        "article",
        article_context(sub_topic, level, length="short", include_practice_problems=problems),
    )


def _evaluate(article: dict[str, Any], level: str, **options: Any) -> QualityReport:
    # The learner chose the composed samples' topic, so its names count as known words.
    context = article_context("supervised", level)
    names = (context["main_topic"]["name"], context["sub_topic"]["name"])
    options.setdefault("topic_names", names)
    return evaluate(article, level, preferred_article_length="short", **options)


# --- good samples ----------------------------------------------------------------------------


def test_hand_written_beginner_article_passes_at_absolute_beginner() -> None:
    report = _evaluate(BEGINNER_ARTICLE, "absolute_beginner")
    assert report.passed, report
    assert report.warnings == []
    assert report.metrics["defined_term_share"] == 1.0
    assert report.metrics["avg_sentence_words"] <= LEVEL_BANDS["absolute_beginner"].max_avg_sentence


def test_hand_written_expert_article_passes_at_expert() -> None:
    report = _evaluate(EXPERT_ARTICLE, "expert")
    assert report.passed, report
    assert report.warnings == []
    assert report.metrics["tradeoff_count"] >= 2
    assert report.metrics["edge_case_count"] >= 1


@pytest.mark.parametrize("level", LEVELS)
def test_good_article_passes_cleanly_at_each_level(level: str) -> None:
    report = _evaluate(
        _composed(level, problems=True), level, include_practice_problems=True, expects_code=True
    )
    assert report.passed, report
    assert report.warnings == []
    assert report.score == 1.0


# --- bad samples, for every level ------------------------------------------------------------


@pytest.mark.parametrize("level", LEVELS)
def test_too_short_fails(level: str) -> None:
    article = _composed(level)
    first = article["sections"][0]
    article["sections"] = [
        {"heading": first["heading"], "body": first["body"].split(". ")[0] + "."}
    ]
    report = _evaluate(article, level, expects_code=True)
    assert "too_short" in report.warnings
    assert report.word_count < WORD_BOUNDS[level]["short"][0]
    assert not report.passed


@pytest.mark.parametrize("level", LEVELS)
def test_english_only_fails(level: str) -> None:
    article = _composed(level)
    sentence = "This section explains the idea in plain English words for the reader. "
    for section in article["sections"]:
        section["heading"] = "An English heading"
        section["body"] = sentence * max(3, len(section["body"].split()) // 10)
    for term in article["key_terms"]:
        term["definition"] = "An English definition of the term."
    article["practical_tips"] = ["Practice a little every day."]
    article["related_concepts"] = ["Further reading"]
    report = _evaluate(article, level, expects_code=True)
    assert "low_korean_ratio" in report.warnings
    assert report.metrics["korean_ratio"] < 0.6
    assert not report.passed


@pytest.mark.parametrize("level", LEVELS)
def test_missing_key_terms_fails(level: str) -> None:
    article = _composed(level)
    article["key_terms"] = article["key_terms"][:1]
    report = _evaluate(article, level, expects_code=True)
    assert "missing_key_terms" in report.warnings
    assert not report.passed

    undefined = _composed(level)
    undefined["key_terms"][1]["definition"] = " "
    assert "missing_key_terms" in _evaluate(undefined, level, expects_code=True).warnings


@pytest.mark.parametrize("level", LEVELS)
def test_duplicated_sections_fail(level: str) -> None:
    article = _composed(level)
    article["sections"][2] = copy.deepcopy(article["sections"][1])
    report = _evaluate(article, level, expects_code=True)
    assert "duplicate_sections" in report.warnings
    assert report.metrics["duplicate_section_pairs"] >= 1
    assert not report.passed

    same_heading = _composed(level)
    same_heading["sections"][2]["heading"] = same_heading["sections"][1]["heading"] + "!"
    assert "duplicate_sections" in _evaluate(same_heading, level, expects_code=True).warnings


@pytest.mark.parametrize("level", LEVELS)
def test_empty_section_fails(level: str) -> None:
    article = _composed(level)
    article["sections"].insert(2, {"heading": "곧 채울 섹션", "body": "준비 중입니다."})
    report = _evaluate(article, level, expects_code=True)
    assert "empty_section" in report.warnings
    assert not report.passed


@pytest.mark.parametrize("level", LEVELS)
def test_missing_code_fails_only_when_code_is_expected(level: str) -> None:
    article = _composed(level)
    article["code_examples"] = []
    expected = _evaluate(article, level, expects_code=True)
    assert "missing_code_examples" in expected.warnings
    assert not expected.passed
    assert "missing_code_examples" not in _evaluate(article, level, expects_code=False).warnings
    no_examples_wanted = _evaluate(article, level, expects_code=True, include_examples=False)
    assert "missing_code_examples" not in no_examples_wanted.warnings


@pytest.mark.parametrize("level", LEVELS)
def test_missing_practice_problems_fail_only_when_asked(level: str) -> None:
    article = _composed(level, problems=True)
    assert len(article["practice_problems"]) >= 2
    article["practice_problems"] = article["practice_problems"][:1]
    asked = _evaluate(article, level, expects_code=True, include_practice_problems=True)
    assert "missing_practice_problems" in asked.warnings
    assert not asked.passed
    assert "missing_practice_problems" not in _evaluate(article, level, expects_code=True).warnings


def test_expert_text_is_flagged_at_absolute_beginner() -> None:
    report = _evaluate(EXPERT_ARTICLE, "absolute_beginner")
    assert {
        "sentences_too_long_for_level",
        "undefined_jargon",
        "terms_not_defined_before_use",
        "missing_analogies",
    } <= set(report.warnings)
    assert not report.passed
    assert report.metrics["avg_sentence_words"] > LEVEL_BANDS["absolute_beginner"].max_avg_sentence
    assert report.metrics["jargon_density"] > LEVEL_BANDS["absolute_beginner"].max_jargon_density


def test_beginner_text_lacks_depth_at_expert() -> None:
    report = _evaluate(BEGINNER_ARTICLE, "expert")
    assert {"missing_tradeoffs", "missing_edge_cases", "too_short"} <= set(report.warnings)
    assert not report.passed


def test_length_follows_preferred_article_length() -> None:
    long_article = compose("article", article_context("supervised", "intermediate", length="long"))
    assert evaluate(long_article, "intermediate", preferred_article_length="long").passed
    as_short = evaluate(long_article, "intermediate", preferred_article_length="short")
    assert "too_long" in as_short.warnings
    assert as_short.score < 1.0


def test_score_falls_with_each_warning_and_passed_follows_the_threshold() -> None:
    article = _composed("intermediate")
    clean = _evaluate(article, "intermediate", expects_code=True)
    article["practical_tips"] = []
    one = _evaluate(article, "intermediate", expects_code=True)
    article["key_terms"] = []
    two = _evaluate(article, "intermediate", expects_code=True)
    assert clean.score > one.score > two.score
    assert one.score == pytest.approx(1.0 - PENALTIES["missing_practical_tips"])
    assert one.passed
    assert not two.passed
    assert all(r.passed == (r.score >= QUALITY_THRESHOLD) for r in (clean, one, two))
    assert 0.0 <= two.score <= 1.0


def test_unknown_level_or_length_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="unknown level"):
        evaluate(BEGINNER_ARTICLE, "guru")
    with pytest.raises(ValueError, match="preferred_article_length"):
        evaluate(BEGINNER_ARTICLE, "beginner", preferred_article_length="huge")


def test_every_level_and_length_has_bands() -> None:
    for level in LEVELS:
        band = LEVEL_BANDS[level]
        assert band.min_avg_sentence < band.max_avg_sentence
        for length in ARTICLE_LENGTHS:
            low, high = WORD_BOUNDS[level][length]
            assert 0 < low < high
    # Deeper levels read longer articles and longer sentences.
    assert WORD_BOUNDS["absolute_beginner"]["medium"][0] < WORD_BOUNDS["expert"]["medium"][0]
    assert (
        LEVEL_BANDS["absolute_beginner"].max_avg_sentence < LEVEL_BANDS["expert"].max_avg_sentence
    )


# --- helpers of the contract -----------------------------------------------------------------


def test_word_count_counts_eojeol_and_excludes_code() -> None:
    text = (
        "## 제목\n\n첫 문장입니다. 둘째\n\n```python\nprint('not counted')\n```\n\n1. 항목 - 하나"
    )
    assert word_count(text) == 6  # 제목, 첫, 문장입니다., 둘째, 항목, 하나


def test_read_time_is_slower_for_beginners() -> None:
    assert read_time(487, "intermediate") == "3-4분"
    assert read_time(0, "expert") == "1-2분"
    beginner = int(read_time(1200, "absolute_beginner").split("-")[0])
    expert = int(read_time(1200, "expert").split("-")[0])
    assert beginner > expert


def test_expects_code_for_tech_and_code_named_sub_topics() -> None:
    assert expects_code("tech", SUB_TOPICS["transformers"])
    assert not expects_code(
        "tech", {"name": "AI·머신러닝·딥러닝 개념 지도", "description": "개념 관계"}
    )
    assert not expects_code("humanities", SUB_TOPICS["economics-basics"])
    assert expects_code(
        "business", {"name": "마케팅 데이터 분석", "description": "SQL로 퍼널을 분석합니다."}
    )


def test_article_markdown_renders_every_part() -> None:
    article = _composed("intermediate", problems=True)
    markdown = article_markdown(article)
    for section in article["sections"]:
        assert f"## {section['heading']}" in markdown
    assert f"- **{article['key_terms'][0]['term']}**:" in markdown
    assert f"```{article['code_examples'][0]['language']}\n" in markdown
    assert "## 실무 팁" in markdown
    assert "## 연습 문제" in markdown
    assert "   - 힌트: " in markdown
