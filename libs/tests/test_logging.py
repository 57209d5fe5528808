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


def test_database_errors_lose_the_values_they_quote(
    capsys: pytest.CaptureFixture[str], pg_server_url: str
) -> None:
    """A failing statement with learner text logs neither its parameters nor the quoted value."""
    import asyncio

    from sqlalchemy import text

    from infou_libs.db import create_engine

    marker = "PLANTED-7f3a-목표"

    async def fail() -> None:
        engine = create_engine(pg_server_url, "public", pool_size=1)
        try:
            for sql, params in (
                ("SELECT CAST(:v AS integer)", {"v": marker}),  # the server quotes the value
                ("SELECT :v::int", {"v": [marker]}),  # the driver quotes the value
                ("SELECT length(:v) FROM no_such_table", {"v": marker}),
            ):
                try:
                    async with engine.connect() as conn:
                        await conn.execute(text(sql), params)
                except Exception as exc:
                    get_logger("t").exception("query_failed", error=str(exc), cause=exc)
        finally:
            await engine.dispose()

    configure_logging("session", "INFO", json=True)
    try:
        asyncio.run(fail())
        lines = capsys.readouterr().out.strip().splitlines()
    finally:
        logging.getLogger().handlers.clear()
    failures = [json.loads(line) for line in lines if "query_failed" in line]
    assert len(failures) == 3
    assert all("Traceback" in f["exception"] for f in failures)
    assert marker not in "\n".join(lines)
    assert "PLANTED" not in "\n".join(lines)


def test_objects_and_nested_values_are_masked() -> None:
    from infou_protos.feedback.v1 import feedback_pb2

    request = feedback_pb2.SubmitFeedbackRequest(article_id="a1", comments="secret words")
    assert mask_value("request", request) == {"article_id": "a1", "comments": "***(12 chars)"}
    assert mask_value("error", ValueError("Key (email)=(kim@example.com) already exists")) == (
        "Key (email)=(***) already exists"
    )
    nested = mask_value("payload", {"a": [{"b": {"referrer_url": "https://x.test/?q=me"}}]})
    assert nested == {"a": [{"b": {"referrer_url": "***(20 chars)"}}]}


def test_the_llm_sdks_http_client_logs_no_line_per_request() -> None:
    """openai/anthropic send through httpx2: its INFO "HTTP Request: POST …" per call is quiet."""
    configure_logging("test", "INFO", json=True)
    for name in ("httpx2", "httpcore2", "httpx"):
        assert not logging.getLogger(name).isEnabledFor(logging.INFO), name
    assert logging.getLogger("infou").isEnabledFor(logging.INFO)
