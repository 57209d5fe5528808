import json
import logging

import pytest

from infou_libs.logging import configure_logging, get_logger, mask_text, mask_value


def test_sensitive_keys_lose_their_content() -> None:
    assert mask_value("comments", "예제가 더 있으면 좋겠어요") == "***(14 chars)"
    assert mask_value("learning_goals", "업무 자동화") == "***(6 chars)"
    assert mask_value("personalization", {"interests": ["nlp"]}) == "***"
    assert mask_value("authorization", "Bearer abc") != "Bearer abc"


def test_free_text_loses_embedded_personal_data() -> None:
    text = "mail kim.minsu@example.co.kr or call 010-1234-5678, token st_abcdefghijklmnopqrstu"
    masked = mask_text(text)
    assert "kim.minsu" not in masked
    assert "1234-5678" not in masked
    assert "abcdefghijklmnop" not in masked
    assert "mail" in masked
    assert "call" in masked


def test_nested_structures_are_masked() -> None:
    masked = mask_value("body", {"comments": "secret words", "rating": "like"})
    assert masked == {"comments": "***(12 chars)", "rating": "like"}


def test_log_line_is_json_with_prd_fields_and_masked(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("gateway", "INFO", json=True)
    get_logger("t").info(
        "feedback_received",
        endpoint="/articles/1/feedback",
        session_id="sess_1",
        comments="제 이메일은 a@b.com 입니다",
        duration_ms=12,
    )
    line = capsys.readouterr().out.strip().splitlines()[-1]
    record = json.loads(line)
    assert record["service"] == "gateway"
    assert record["level"] == "INFO"
    assert record["endpoint"] == "/articles/1/feedback"
    assert record["session_id"] == "sess_1"
    assert "timestamp" in record
    assert "a@b.com" not in line
    assert record["comments"].startswith("***")
    logging.getLogger().handlers.clear()
