"""The session state machine: status from facts, which events apply, what is announced."""

import pytest

from infou_session.workflow import (
    ArticleStatus,
    Change,
    Event,
    Facts,
    Status,
    accepts,
    article_accepts,
    article_after,
    derive_status,
    learner_status,
    stage,
)


@pytest.mark.parametrize(
    ("facts", "status"),
    [
        (Facts(curriculum_ready=False), Status.INITIALIZING),
        (Facts(curriculum_ready=False, curriculum_failed=True), Status.FAILED),
        (Facts(curriculum_ready=True, total=3, ready=0), Status.GENERATING),
        (Facts(curriculum_ready=True, total=3, ready=2), Status.GENERATING),
        (Facts(curriculum_ready=True, total=3, ready=3), Status.READY),
        (Facts(curriculum_ready=True, total=3, ready=1, failed=1), Status.FAILED),
        (Facts(curriculum_ready=True, total=3, ready=2, failed=1), Status.FAILED),
    ],
)
def test_status_is_derived_from_facts(facts: Facts, status: Status) -> None:
    assert derive_status(facts) is status


def test_generating_counts_what_is_neither_ready_nor_failed() -> None:
    assert Facts(curriculum_ready=True, total=5, ready=2, failed=1).generating == 2


def test_the_whole_happy_path_in_any_order_ends_ready() -> None:
    facts = Facts(curriculum_ready=False)
    assert accepts(facts, Event.CURRICULUM_GENERATED)
    facts = Facts(curriculum_ready=True, total=2)
    assert derive_status(facts) is Status.GENERATING
    # A redelivered curriculum is a duplicate once the curriculum is stored.
    assert not accepts(facts, Event.CURRICULUM_GENERATED)
    assert accepts(facts, Event.ARTICLE_GENERATED)
    assert derive_status(Facts(curriculum_ready=True, total=2, ready=2)) is Status.READY


def test_article_events_need_a_curriculum() -> None:
    facts = Facts(curriculum_ready=False)
    assert not accepts(facts, Event.ARTICLE_GENERATED)
    assert not accepts(facts, Event.ARTICLE_FAILED)


def test_curriculum_failure_is_accepted_once() -> None:
    assert accepts(Facts(curriculum_ready=False), Event.CURRICULUM_FAILED)
    assert not accepts(
        Facts(curriculum_ready=False, curriculum_failed=True), Event.CURRICULUM_FAILED
    )
    assert not accepts(Facts(curriculum_ready=True, total=1), Event.CURRICULUM_FAILED)


@pytest.mark.parametrize(
    ("facts", "retryable"),
    [
        (Facts(curriculum_ready=False), False),
        (Facts(curriculum_ready=False, curriculum_failed=True), True),
        (Facts(curriculum_ready=True, total=2, ready=1), False),
        (Facts(curriculum_ready=True, total=2, ready=1, failed=1), True),
        (Facts(curriculum_ready=True, total=2, ready=2), False),
    ],
)
def test_only_a_failed_session_is_retried(facts: Facts, retryable: bool) -> None:
    assert accepts(facts, Event.RETRY) is retryable


def test_a_failed_curriculum_can_still_arrive_late() -> None:
    # A retried curriculum job answers after the failure was recorded.
    assert accepts(
        Facts(curriculum_ready=False, curriculum_failed=True), Event.CURRICULUM_GENERATED
    )


@pytest.mark.parametrize(
    ("current", "event", "after"),
    [
        (ArticleStatus.GENERATING, Event.ARTICLE_GENERATED, ArticleStatus.READY),
        (ArticleStatus.GENERATING, Event.ARTICLE_FAILED, ArticleStatus.FAILED),
        (ArticleStatus.FAILED, Event.RETRY, ArticleStatus.GENERATING),
        # Duplicates and stragglers change nothing.
        (ArticleStatus.READY, Event.ARTICLE_GENERATED, ArticleStatus.READY),
        (ArticleStatus.READY, Event.ARTICLE_FAILED, ArticleStatus.READY),
        (ArticleStatus.FAILED, Event.ARTICLE_FAILED, ArticleStatus.FAILED),
        (ArticleStatus.READY, Event.RETRY, ArticleStatus.READY),
        (ArticleStatus.GENERATING, Event.RETRY, ArticleStatus.GENERATING),
    ],
)
def test_article_transitions(current: ArticleStatus, event: Event, after: ArticleStatus) -> None:
    assert article_after(current, event) is after
    assert article_accepts(current, event) is (after is not current)


def test_changes_announce_completion_and_failure_once() -> None:
    assert Change(Status.GENERATING, Status.READY).completed
    assert not Change(Status.READY, Status.READY).completed
    assert Change(Status.GENERATING, Status.FAILED).failed
    assert not Change(Status.FAILED, Status.FAILED).failed
    assert Change(Status.FAILED, Status.READY).completed


def test_stages_are_the_prd_progress_statuses() -> None:
    assert stage(Status.GENERATING) == "generating_articles"
    assert stage(Status.INITIALIZING) == "generating_curriculum"


def test_learner_status_moves_a_ready_session_on_and_leaves_generation_states_alone() -> None:
    assert learner_status(Status.READY, 0, 3, started=False) == "ready"
    assert learner_status(Status.READY, 0, 3, started=True) == "active"
    assert learner_status(Status.READY, 1, 3, started=False) == "active"
    assert learner_status(Status.READY, 3, 3, started=True) == "completed"
    assert learner_status(Status.GENERATING, 1, 3, started=True) == "generating"
    assert learner_status(Status.FAILED, 3, 3, started=True) == "failed"
    assert learner_status(Status.READY, 0, 0, started=False) == "ready"
