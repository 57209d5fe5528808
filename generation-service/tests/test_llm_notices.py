"""The rate-limit notice watchers see, in PRD §3.6's shape."""

import pytest

from infou_generation.llm.notices import korean_duration, rate_limit_notice


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.05, "1초"), (29.2, "30초"), (60, "1분"), (90, "1분 30초"), (125.5, "2분 6초")],
)
def test_durations_read_as_in_the_prd(seconds: float, text: str) -> None:
    assert korean_duration(seconds) == text


def test_the_notice_says_it_retries_by_itself() -> None:
    assert rate_limit_notice(30) == {
        "error_code": "LLM_RATE_LIMIT",
        "message": "LLM API 요청 한도 초과. 잠시 후 다시 시도됩니다.",
        "retry_after": "30초",
        "auto_retry": True,
    }
