"""The fake LLM server on the wire: knobs by header and by control endpoint, counters, answers."""

import asyncio
import json
import os
import subprocess
import sys
import time
from typing import Any

import httpx
import pytest

from infou_devtools.engines import free_port
from infou_devtools.fakellm import FakeLLMControl, FakeLLMServer
from infou_generation.llm.jsonschema import validate
from infou_generation.llm.providers.offline import load_composer

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 3},
        "tags": {"type": "array", "items": {"type": "string"}, "minItems": 2},
    },
    "required": ["name", "tags"],
    "additionalProperties": False,
}


def chat_body(**extra: Any) -> dict[str, Any]:
    return {
        "model": "gpt-test",
        "messages": [{"role": "user", "content": "hello"}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": SCHEMA}},
        **extra,
    }


@pytest.mark.usefixtures("fake_llm")
async def test_a_plain_answer_is_a_minimal_valid_instance(fake_llm_server: FakeLLMServer) -> None:
    async with httpx.AsyncClient(base_url=fake_llm_server.url) as client:
        reply = (await client.post("/v1/chat/completions", json=chat_body())).json()
    answer = json.loads(reply["choices"][0]["message"]["content"])
    assert validate(answer, SCHEMA) == []
    assert reply["usage"]["completion_tokens"] > 0


async def test_once_scenarios_by_header_fire_once_per_scope(
    fake_llm_server: FakeLLMServer, fake_llm: FakeLLMControl
) -> None:
    async def status(scope: str) -> int:
        headers = {
            "x-fake-scenario": "rate_limit_once",
            "x-fake-scope": scope,
            "x-fake-retry-after": "2",
        }
        async with httpx.AsyncClient(base_url=fake_llm_server.url) as client:
            response = await client.post("/v1/chat/completions", json=chat_body(), headers=headers)
        if response.status_code == 429:
            assert response.headers["retry-after"] == "2"
        return response.status_code

    assert [await status("a"), await status("a"), await status("b")] == [429, 200, 429]
    stats = await fake_llm.stats()
    assert stats["requests"] == {"openai": 3}
    assert stats["scenarios"] == {"rate_limit": 2}


async def test_armed_faults_count_down_and_match_their_api(
    fake_llm_server: FakeLLMServer, fake_llm: FakeLLMControl
) -> None:
    await fake_llm.arm("server_error", times=2, api="anthropic", status=529)
    body = {
        "model": "claude-test",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "hi"}],
        "tools": [{"name": "infou_x", "input_schema": SCHEMA}],
        "tool_choice": {"type": "tool", "name": "infou_x"},
    }
    async with httpx.AsyncClient(base_url=fake_llm_server.url) as client:
        openai_status = (await client.post("/v1/chat/completions", json=chat_body())).status_code
        codes = [(await client.post("/v1/messages", json=body)).status_code for _ in range(3)]
        last = (await client.post("/v1/messages", json=body)).json()
    assert openai_status == 200
    assert codes == [529, 529, 200]
    assert last["content"][0]["type"] == "tool_use"
    assert validate(last["content"][0]["input"], SCHEMA) == []


@pytest.mark.usefixtures("fake_llm")
async def test_speed_knobs_delay_the_first_token(fake_llm_server: FakeLLMServer) -> None:
    async with httpx.AsyncClient(base_url=fake_llm_server.url) as client:
        started = time.monotonic()
        await client.post(
            "/v1/chat/completions", json=chat_body(), headers={"x-fake-ttft-ms": "300"}
        )
        slow = time.monotonic() - started
        started = time.monotonic()
        await client.post("/v1/chat/completions", json=chat_body())
        fast = time.monotonic() - started
    assert slow >= 0.3 > fast


@pytest.mark.usefixtures("fake_llm")
async def test_unknown_scenarios_are_refused(fake_llm_server: FakeLLMServer) -> None:
    async with httpx.AsyncClient(base_url=fake_llm_server.url) as client:
        response = await client.post("/_control", json={"scenario": "meteor_strike"})
    assert response.status_code == 400


@pytest.mark.usefixtures("fake_llm")
async def test_task_context_is_answered_by_the_offline_composer(
    fake_llm_server: FakeLLMServer,
) -> None:
    composer = load_composer()
    if composer is None:
        pytest.skip("the offline content composer (content/offline.py, part B) is not there yet")
    from infou_generation.content import prompts

    context = {
        "main_topic": {
            "id": 7,
            "slug": "data",
            "name": "데이터 분석",
            "description": "데이터로 답을 찾는 법",
            "category": "data",
        },
        "curated_sub_topics": [],
        "personalization": {},
        "options": {
            "max_subtopics": 2,
            "include_prerequisites": False,
            "difficulty_progression": True,
        },
    }
    rendered = prompts.render("subtopics", context)
    body = chat_body(
        messages=[
            {"role": "system", "content": rendered.system},
            {"role": "user", "content": rendered.user},
        ],
        response_format={
            "type": "json_schema",
            "json_schema": {"name": rendered.schema_name, "schema": rendered.json_schema},
        },
    )
    async with httpx.AsyncClient(base_url=fake_llm_server.url) as client:
        reply = (await client.post("/v1/chat/completions", json=body)).json()
    answer = json.loads(reply["choices"][0]["message"]["content"])
    assert answer == composer.compose("subtopics", context)
    assert validate(answer, rendered.json_schema) == []


@pytest.mark.usefixtures("fake_llm")
async def test_the_command_line_entry_serves() -> None:
    port = free_port()
    process = subprocess.Popen(  # noqa: ASYNC220 (a short-lived child, stopped below)
        [sys.executable, "-m", "infou_devtools.fakellm", "--port", str(port)],
        env={**os.environ},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            for _ in range(600):  # up to a minute on a loaded machine
                try:
                    response = await client.get("/v1/models")
                    break
                except httpx.ConnectError:
                    await asyncio.sleep(0.1)
            else:
                pytest.fail("the fake LLM server did not start")
            assert response.status_code == 200
            assert (await client.get("/_stats")).json()["total"] == 0
    finally:
        process.terminate()
        process.wait(timeout=10)
