"""A model's curriculum plan becomes the stored articles: filtered, capped, ordered, linked."""

from infou_session.curriculum import PlannedItem, article_id, lay_out, normalise


def item(title: str, ref: str = "curated_1", *prereqs: str) -> PlannedItem:
    return PlannedItem(
        title=title, summary=f"{title} 요약", sub_topic_ref=ref, prerequisite_titles=prereqs
    )


def titles(items: list[PlannedItem]) -> list[str]:
    return [i.title for i in items]


def test_unknown_sub_topics_are_dropped() -> None:
    kept = normalise(
        [item("A"), item("B", "curated_99"), item("C", "generated_7")],
        ["curated_1", "generated_7"],
        5,
    )
    assert titles(kept) == ["A", "C"]


def test_titles_are_unique_ignoring_case_and_spaces() -> None:
    kept = normalise([item("API 기초"), item("api   기초 "), item("다른 글")], ["curated_1"], 5)
    assert titles(kept) == ["API 기초", "다른 글"]


def test_at_most_max_per_sub_topic_the_first_ones() -> None:
    plan = [item(f"a{i}") for i in range(5)] + [item(f"b{i}", "curated_2") for i in range(2)]
    kept = normalise(plan, ["curated_1", "curated_2"], 3)
    assert titles(kept) == ["a0", "a1", "a2", "b0", "b1"]


def test_prerequisites_come_first_and_order_is_otherwise_kept() -> None:
    plan = [
        item("심화", "curated_1", "기초"),
        item("별개"),
        item("기초"),
        item("응용", "curated_1", "심화"),
    ]
    assert titles(normalise(plan, ["curated_1"], 10)) == ["기초", "심화", "별개", "응용"]


def test_a_cycle_is_broken_by_the_models_order() -> None:
    plan = [item("A", "curated_1", "B"), item("B", "curated_1", "A"), item("C")]
    kept = titles(normalise(plan, ["curated_1"], 10))
    assert sorted(kept) == ["A", "B", "C"]
    assert kept.index("C") == 2


def test_prerequisites_that_were_dropped_do_not_count() -> None:
    plan = [item("A", "curated_1", "없는 글"), item("B")]
    assert titles(normalise(plan, ["curated_1"], 10)) == ["A", "B"]


def test_lay_out_links_and_positions() -> None:
    plans = lay_out(
        "sess_x",
        [item("a"), item("b", "curated_2"), item("c"), item("d", "curated_1", "a", "nope")],
    )
    assert [p.id for p in plans] == ["sess_x_001", "sess_x_002", "sess_x_003", "sess_x_004"]
    assert [p.order for p in plans] == [1, 2, 3, 4]
    assert plans[0].previous_id is None
    assert plans[0].next_id == "sess_x_002"
    assert plans[3].previous_id == "sess_x_003"
    assert plans[3].next_id is None
    assert [(p.order_in_sub_topic, p.total_in_sub_topic) for p in plans] == [
        (1, 3),
        (1, 1),
        (2, 3),
        (3, 3),
    ]
    assert plans[3].prerequisites == ("a",)


def test_article_ids_follow_the_prd() -> None:
    assert article_id("sess_abc", 7) == "sess_abc_007"
