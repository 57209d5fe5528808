"""The fake LLM server: OpenAI Chat Completions and Anthropic Messages, as the SDKs expect them.

Answers are schema-valid JSON: what the offline composer writes for the <task_context> in the
prompt when the composer is installed (a learner's personal section, schema
infou_article_adaptation, included), otherwise a minimal instance of the requested schema.

Faults and speed are knobs, per request through headers or for the next N requests through
POST /_control (the SDKs send our headers only through default/extra headers):

    x-fake-scenario: rate_limit | server_error | timeout | malformed_json | invalid_schema |
                     truncated_stream | reject_json_schema (a server without schema-constrained
                     output: 400 for response_format json_schema) | short_answer (a valid
                     article cut to its first section: the quality gate's "too short") |
                     wrong_level (the content written for expert, or for absolute_beginner
                     when expert was asked: the gate's level mismatch) |
                     judge_unfit (the LLM judge, schema infou_quality_judge, answers
                     fits_level false with a low score; other answers are unchanged) — add
                     `_once` to fire once per x-fake-scope value
    x-fake-ttft-ms, x-fake-tps, x-fake-retry-after, x-fake-status, x-fake-cached-tokens,
    x-fake-cache-write-tokens (Anthropic: input written to the prompt cache)

POST /_control {"scenario": …, "task": "quality_judge"} arms a fault for the requests of one
task only (its schema `infou_<task>`); the others pass it by. The judge's answer is fits_level
true with a score of 0.9 unless `judge_unfit` fires.

POST /v1/moderations answers like OpenAI's moderation endpoint: an input is flagged (as
violence) when it contains one of the moderation terms (`FakeState.moderation_terms`, set through
POST /_control {"moderation_terms": [...], "moderation_flags": N}: only the next N inputs that
hold a term are flagged, e.g. 1 to flag an answer once and pass its regeneration), or every
input with `x-fake-moderation: flag`; `x-fake-moderation: server_error` answers 500.

GET /_stats counts requests per API and faults per scenario, and keeps the last requests;
its `total` counts the LLM calls (chat completions and messages), not moderation requests.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import time
import uuid
from collections import Counter, deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from infou_generation.llm import jsonschema
from infou_generation.llm.providers.offline import load_composer
from infou_generation.llm.tokens import estimate_tokens
from infou_generation.llm.types import TASK_KINDS

Api = Literal["openai", "anthropic"]
SCENARIOS = frozenset(
    {
        "rate_limit",
        "server_error",
        "timeout",
        "malformed_json",
        "invalid_schema",
        "truncated_stream",
        "reject_json_schema",
        "short_answer",
        "wrong_level",
        "judge_unfit",
    }
)
_TASK_CONTEXT = re.compile(r"<task_context>(.*?)</task_context>", re.DOTALL)
_OUTPUT_SCHEMA = re.compile(r"<output_schema>(.*?)</output_schema>", re.DOTALL)
JUDGE_SCHEMA = "infou_quality_judge"
# Inputs with one of these are flagged by /v1/moderations until /_control sets others.
MODERATION_TERMS = ("fake-flagged",)
# Streamed answers go out in pieces of this many characters.
_PIECE = 12


@dataclass
class Armed:
    """A fault set through /_control: fires on the next `remaining` matching requests."""

    scenario: str
    remaining: int
    api: Api | None = None
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class FakeState:
    """Everything the server remembers; reset by POST /_control/reset."""

    armed: list[Armed] = field(default_factory=list)
    once_fired: set[tuple[str, str]] = field(default_factory=set)
    config: dict[str, float] = field(default_factory=dict)
    # Speed knobs given at start-up (command line); reset goes back to them.
    base_config: dict[str, float] = field(default_factory=dict)
    requests: Counter[str] = field(default_factory=Counter)
    scenarios: Counter[str] = field(default_factory=Counter)
    recent: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=100))
    ids: itertools.count[int] = field(default_factory=itertools.count)
    moderation_terms: list[str] = field(default_factory=lambda: list(MODERATION_TERMS))
    # How many more inputs holding a term are flagged (None: every one).
    moderation_flags: int | None = None

    def reset(self) -> None:
        self.armed.clear()
        self.once_fired.clear()
        self.config = dict(self.base_config)
        self.requests.clear()
        self.scenarios.clear()
        self.recent.clear()
        self.moderation_terms = list(MODERATION_TERMS)
        self.moderation_flags = None


@dataclass(frozen=True)
class Fault:
    scenario: str
    options: dict[str, Any]


@dataclass(frozen=True)
class Knobs:
    ttft_s: float
    tps: float
    cached_tokens: int
    cache_write_tokens: int = 0


def create_app(state: FakeState | None = None) -> Starlette:
    """The ASGI app; pass a state to share it with the code that runs the server."""
    state = state or FakeState()

    async def chat_completions(request: Request) -> Response:
        return await _handle(state, "openai", request)

    async def messages(request: Request) -> Response:
        return await _handle(state, "anthropic", request)

    async def models(_request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [{"id": "fake-model", "object": "model"}]})

    async def control(request: Request) -> Response:
        body = await request.json()
        if not isinstance(body, dict):
            return JSONResponse({"error": "expected a JSON object"}, status_code=400)
        if "moderation_terms" in body:
            state.moderation_terms = [str(term) for term in body["moderation_terms"]]
            flags = body.get("moderation_flags")
            state.moderation_flags = None if flags is None else int(flags)
        if "config" in body:
            state.config.update({k: float(v) for k, v in dict(body["config"]).items()})
        if "scenario" in body:
            scenario = str(body["scenario"])
            if scenario not in SCENARIOS:
                return JSONResponse({"error": f"unknown scenario {scenario!r}"}, status_code=400)
            options = {k: v for k, v in body.items() if k not in ("scenario", "times", "api")}
            state.armed.append(Armed(scenario, int(body.get("times", 1)), body.get("api"), options))
        return JSONResponse({"armed": len(state.armed), "config": state.config})

    async def moderations(request: Request) -> Response:
        return await _moderate(state, request)

    async def reset(_request: Request) -> Response:
        state.reset()
        return JSONResponse({"reset": True})

    async def stats(_request: Request) -> Response:
        return JSONResponse(
            {
                # LLM calls only: moderation requests are counted apart (requests.moderation).
                "total": sum(n for api, n in state.requests.items() if api != "moderation"),
                "requests": dict(state.requests),
                "scenarios": dict(state.scenarios),
                "armed": [a.__dict__ for a in state.armed],
                "recent": list(state.recent),
            }
        )

    return Starlette(
        routes=[
            Route("/v1/chat/completions", chat_completions, methods=["POST"]),
            Route("/v1/messages", messages, methods=["POST"]),
            Route("/v1/models", models, methods=["GET"]),
            Route("/v1/moderations", moderations, methods=["POST"]),
            Route("/_control", control, methods=["POST"]),
            Route("/_control/reset", reset, methods=["POST"]),
            Route("/_stats", stats, methods=["GET"]),
        ]
    )


async def _handle(state: FakeState, api: Api, request: Request) -> Response:
    body = await request.json()
    state.requests[api] += 1
    schema_name, schema = (_openai_schema if api == "openai" else _anthropic_schema)(body)
    fault = _fault(state, api, request, schema_name)
    knobs = _knobs(state, request)
    state.recent.append(
        {
            "api": api,
            "model": body.get("model"),
            "stream": bool(body.get("stream")),
            "schema_name": schema_name,
            "response_format": (body.get("response_format") or {}).get("type"),
            "tool_choice": body.get("tool_choice"),
            "messages": len(body.get("messages", [])),
            "max_tokens": body.get("max_tokens") or body.get("max_completion_tokens"),
            "scenario": fault.scenario if fault else None,
        }
    )
    if fault is not None:
        state.scenarios[fault.scenario] += 1
        early = await _early_fault(api, fault, request)
        if early is not None:
            return early
    prompt = _prompt_text(body)
    wrong_level = fault is not None and fault.scenario == "wrong_level"
    answer = _answer(schema_name, schema, _prompt_text(body, roles=("user",)), wrong_level)
    if schema_name == JUDGE_SCHEMA:
        answer = _verdict(unfit=fault is not None and fault.scenario == "judge_unfit")
    text = json.dumps(answer, ensure_ascii=False)
    if fault is not None and fault.scenario == "malformed_json":
        text = text[: max(len(text) // 2, 1)] + ' "unterminated'
    elif fault is not None and fault.scenario == "invalid_schema":
        text = json.dumps({"unexpected": True})
    elif fault is not None and fault.scenario == "short_answer" and "sections" in answer:
        text = json.dumps({**answer, "sections": answer["sections"][:1]}, ensure_ascii=False)
    truncated = fault is not None and fault.scenario == "truncated_stream"
    reply = _Reply(
        id=f"{next(state.ids)}{uuid.uuid4().hex[:8]}",
        model=str(body.get("model") or "fake-model"),
        text=text,
        tool=schema_name if api == "anthropic" and body.get("tools") else None,
        input_tokens=estimate_tokens(prompt),
        knobs=knobs,
        truncated=truncated,
    )
    if body.get("stream"):
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        events = (
            _openai_events(reply, include_usage) if api == "openai" else _anthropic_events(reply)
        )
        return _SSEResponse(events, abort=truncated)
    await asyncio.sleep(knobs.ttft_s + (estimate_tokens(text) / knobs.tps if knobs.tps else 0))
    return JSONResponse(_openai_body(reply) if api == "openai" else _anthropic_body(reply))


_MODERATION_CATEGORIES = (
    "harassment",
    "harassment/threatening",
    "hate",
    "hate/threatening",
    "illicit",
    "illicit/violent",
    "self-harm",
    "self-harm/instructions",
    "self-harm/intent",
    "sexual",
    "sexual/minors",
    "violence",
    "violence/graphic",
)


async def _moderate(state: FakeState, request: Request) -> Response:
    body = await request.json()
    state.requests["moderation"] += 1
    raw = body.get("input", "")
    inputs = [raw] if isinstance(raw, str) else [str(item) for item in raw]
    knob = request.headers.get("x-fake-moderation", "")
    if knob == "server_error":
        state.scenarios["moderation_server_error"] += 1
        return JSONResponse(
            {"error": {"message": "fake moderation outage", "type": "server_error"}},
            status_code=500,
        )
    results = []
    for text in inputs:
        flagged = knob == "flag" or _holds_term(state, text)
        results.append(
            {
                "flagged": flagged,
                "categories": {c: flagged and c == "violence" for c in _MODERATION_CATEGORIES},
                "category_scores": {
                    c: 0.97 if flagged and c == "violence" else 0.001
                    for c in _MODERATION_CATEGORIES
                },
                "category_applied_input_types": {c: ["text"] for c in _MODERATION_CATEGORIES},
            }
        )
    model = str(body.get("model") or "omni-moderation-latest")
    return JSONResponse({"id": f"modr-{uuid.uuid4().hex[:12]}", "model": model, "results": results})


def _holds_term(state: FakeState, text: str) -> bool:
    """Whether `text` holds a moderation term and may still be flagged (counts the flag)."""
    if not any(term.lower() in text.lower() for term in state.moderation_terms):
        return False
    if state.moderation_flags is None:
        return True
    if state.moderation_flags <= 0:
        return False
    state.moderation_flags -= 1
    return True


def _fault(state: FakeState, api: Api, request: Request, schema_name: str) -> Fault | None:
    header = request.headers.get("x-fake-scenario", "").strip()
    if header:
        name = header.removesuffix("_once")
        options = {
            key: request.headers[f"x-fake-{key.replace('_', '-')}"]
            for key in ("retry_after", "status", "hang_s")
            if f"x-fake-{key.replace('_', '-')}" in request.headers
        }
        if name in SCENARIOS:
            if header == name:
                return Fault(name, options)
            key = (header, request.headers.get("x-fake-scope", ""))
            if key not in state.once_fired:
                state.once_fired.add(key)
                return Fault(name, options)
    for armed in state.armed:
        task = armed.options.get("task")
        if task and schema_name != f"infou_{task}":
            continue  # armed for another task's requests
        if armed.remaining != 0 and armed.api in (None, api):
            armed.remaining -= 1
            if armed.remaining == 0:
                state.armed.remove(armed)
            return Fault(armed.scenario, armed.options)
    return None


def _knobs(state: FakeState, request: Request) -> Knobs:
    def knob(name: str, default: float = 0.0) -> float:
        raw = request.headers.get(f"x-fake-{name.replace('_', '-')}")
        return float(raw) if raw is not None else float(state.config.get(name, default))

    return Knobs(
        knob("ttft_ms") / 1000,
        knob("tps"),
        int(knob("cached_tokens")),
        int(knob("cache_write_tokens")),
    )


async def _early_fault(api: Api, fault: Fault, request: Request) -> Response | None:
    """Faults answered before any content: 429, 5xx, and a hang past the client's timeout."""
    if fault.scenario == "rate_limit":
        retry_after = float(fault.options.get("retry_after", 1.0))
        headers = {
            "retry-after": f"{retry_after:g}",
            "retry-after-ms": str(int(retry_after * 1000)),
        }
        return _error(api, 429, "rate_limit_error", "Rate limit reached (fake)", headers)
    if fault.scenario == "server_error":
        status = int(fault.options.get("status", 500))
        kind = "overloaded_error" if status == 529 else "api_error"
        return _error(api, status, kind, "The server had an error (fake)", {})
    if fault.scenario == "reject_json_schema":
        body = await request.json()
        if api == "openai" and (body.get("response_format") or {}).get("type") == "json_schema":
            message = "response_format of type json_schema is not supported by this server"
            return _error(api, 400, "invalid_request_error", message, {})
        return None
    if fault.scenario == "timeout":
        deadline = time.monotonic() + float(fault.options.get("hang_s", 30.0))
        while time.monotonic() < deadline:
            if await request.is_disconnected():
                break
            await asyncio.sleep(0.05)
        return _error(api, 504, "timeout_error", "Timed out (fake)", {})
    return None


def _error(api: Api, status: int, kind: str, message: str, headers: dict[str, str]) -> Response:
    if api == "anthropic":
        body: dict[str, Any] = {"type": "error", "error": {"type": kind, "message": message}}
    else:
        code = "rate_limit_exceeded" if status == 429 else None
        body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    return JSONResponse(body, status_code=status, headers=headers)


def _openai_schema(body: dict[str, Any]) -> tuple[str, dict[str, Any] | None]:
    fmt = body.get("response_format") or {}
    if fmt.get("type") == "json_schema":
        spec = fmt.get("json_schema") or {}
        return str(spec.get("name", "")), spec.get("schema")
    # JSON mode: the schema, if any, is spelled out in the prompt.
    found = _OUTPUT_SCHEMA.search(_prompt_text(body))
    return "", json.loads(found.group(1)) if found else None


def _anthropic_schema(body: dict[str, Any]) -> tuple[str, dict[str, Any] | None]:
    tools = body.get("tools") or []
    wanted = (body.get("tool_choice") or {}).get("name")
    for tool in tools:
        if wanted in (None, tool.get("name")):
            return str(tool.get("name", "")), tool.get("input_schema")
    fmt = (body.get("output_config") or {}).get("format") or {}
    if fmt.get("type") == "json_schema":
        return "", fmt.get("schema")
    return "", None


def _prompt_text(
    body: dict[str, Any], roles: tuple[str, ...] = ("system", "user", "assistant")
) -> str:
    parts: list[str] = []
    system = body.get("system") if "system" in roles else None
    if isinstance(system, str):
        parts.append(system)
    elif isinstance(system, list):
        parts.extend(str(block.get("text", "")) for block in system if isinstance(block, dict))
    for message in body.get("messages", []):
        if message.get("role") not in roles:
            continue
        content = message.get("content")
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts.extend(str(b.get("text", "")) for b in content if isinstance(b, dict))
    return "\n".join(parts)


def _answer(
    schema_name: str, schema: dict[str, Any] | None, user_text: str, wrong_level: bool = False
) -> Any:
    task = schema_name.removeprefix("infou_")
    context = _task_context(user_text)
    if wrong_level and context is not None and "level" in context:
        context["level"] = "absolute_beginner" if context["level"] == "expert" else "expert"
    composer = load_composer() if task in TASK_KINDS else None
    if context is not None and composer is not None:
        try:
            return composer.compose(task, context)
        except Exception:  # noqa: S110 (a context the composer cannot use: fall back below)
            pass
    return jsonschema.minimal_instance(schema) if schema else {}


def _verdict(*, unfit: bool) -> dict[str, Any]:
    """The LLM judge's answer: the article fits its level, unless `unfit`."""
    if unfit:
        return {
            "fits_level": False,
            "factual_issues": ["설명 없이 전문 용어가 이어집니다."],
            "score": 0.3,
        }
    return {"fits_level": True, "factual_issues": [], "score": 0.9}


def _task_context(text: str) -> dict[str, Any] | None:
    """The last <task_context> block that holds a JSON object (instructions may name the tag)."""
    for found in reversed(list(_TASK_CONTEXT.finditer(text))):
        try:
            value = json.loads(found.group(1))
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            return value
    return None


@dataclass(frozen=True)
class _Reply:
    id: str
    model: str
    text: str
    tool: str | None
    input_tokens: int
    knobs: Knobs
    truncated: bool

    @property
    def output_tokens(self) -> int:
        return estimate_tokens(self.text)

    @property
    def cut_text(self) -> str:
        return self.text[: max(len(self.text) // 2, 1)]


def _openai_usage(reply: _Reply, output_tokens: int) -> dict[str, Any]:
    return {
        "prompt_tokens": reply.input_tokens,
        "completion_tokens": output_tokens,
        "total_tokens": reply.input_tokens + output_tokens,
        "prompt_tokens_details": {
            "cached_tokens": min(reply.knobs.cached_tokens, reply.input_tokens)
        },
    }


def _openai_body(reply: _Reply) -> dict[str, Any]:
    text = reply.cut_text if reply.truncated else reply.text
    return {
        "id": f"chatcmpl-{reply.id}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": reply.model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text, "refusal": None},
                "finish_reason": "length" if reply.truncated else "stop",
                "logprobs": None,
            }
        ],
        "usage": _openai_usage(reply, estimate_tokens(text)),
    }


def _pieces(text: str) -> list[str]:
    return [text[i : i + _PIECE] for i in range(0, len(text), _PIECE)] or [""]


async def _paced(reply: _Reply, pieces: list[str]) -> AsyncIterator[str]:
    """The pieces at the configured time to first token and tokens per second."""
    if reply.knobs.ttft_s:
        await asyncio.sleep(reply.knobs.ttft_s)
    for piece in pieces:
        yield piece
        if reply.knobs.tps:
            await asyncio.sleep(estimate_tokens(piece) / reply.knobs.tps)


async def _openai_events(reply: _Reply, include_usage: bool) -> AsyncIterator[str]:
    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
        payload = {
            "id": f"chatcmpl-{reply.id}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": reply.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
            **extra,
        }
        return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"

    yield chunk({"role": "assistant", "content": ""})
    pieces = _pieces(reply.text)
    if reply.truncated:
        pieces = pieces[: max(len(pieces) // 2, 1)]
    async for piece in _paced(reply, pieces):
        yield chunk({"content": piece})
    if reply.truncated:
        return
    yield chunk({}, "stop")
    if include_usage:
        usage = _openai_usage(reply, reply.output_tokens)
        payload = {
            "id": f"chatcmpl-{reply.id}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": reply.model,
            "choices": [],
            "usage": usage,
        }
        yield f"data: {json.dumps(payload)}\n\n"
    yield "data: [DONE]\n\n"


def _anthropic_usage(reply: _Reply, output_tokens: int) -> dict[str, Any]:
    cached = min(reply.knobs.cached_tokens, reply.input_tokens)
    written = min(reply.knobs.cache_write_tokens, reply.input_tokens - cached)
    return {
        "input_tokens": reply.input_tokens - cached - written,
        "output_tokens": output_tokens,
        "cache_read_input_tokens": cached,
        "cache_creation_input_tokens": written,
    }


def _anthropic_body(reply: _Reply) -> dict[str, Any]:
    content: list[dict[str, Any]]
    if reply.truncated:
        # Out of tokens mid-answer: the partial JSON comes back as text.
        content = [{"type": "text", "text": reply.cut_text}]
        stop = "max_tokens"
    elif reply.tool is not None and _is_object(reply.text):
        content = [
            {
                "type": "tool_use",
                "id": f"toolu_{reply.id}",
                "name": reply.tool,
                "input": json.loads(reply.text),
            }
        ]
        stop = "tool_use"
    else:
        content = [{"type": "text", "text": reply.text}]
        stop = "end_turn"
    return {
        "id": f"msg_{reply.id}",
        "type": "message",
        "role": "assistant",
        "model": reply.model,
        "content": content,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": _anthropic_usage(reply, estimate_tokens(reply.text)),
    }


def _is_object(text: str) -> bool:
    try:
        return isinstance(json.loads(text), dict)
    except json.JSONDecodeError:
        return False


async def _anthropic_events(reply: _Reply) -> AsyncIterator[str]:
    def event(kind: str, payload: dict[str, Any]) -> str:
        return (
            f"event: {kind}\ndata: {json.dumps({'type': kind, **payload}, ensure_ascii=False)}\n\n"
        )

    start_usage = _anthropic_usage(reply, 1)
    yield event(
        "message_start",
        {
            "message": {
                "id": f"msg_{reply.id}",
                "type": "message",
                "role": "assistant",
                "model": reply.model,
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": start_usage,
            }
        },
    )
    if reply.tool is not None:
        block = {"type": "tool_use", "id": f"toolu_{reply.id}", "name": reply.tool, "input": {}}
    else:
        block = {"type": "text", "text": ""}
    yield event("content_block_start", {"index": 0, "content_block": block})
    yield event("ping", {})
    pieces = _pieces(reply.text)
    if reply.truncated:
        pieces = pieces[: max(len(pieces) // 2, 1)]
    async for piece in _paced(reply, pieces):
        if reply.tool is not None:
            delta = {"type": "input_json_delta", "partial_json": piece}
        else:
            delta = {"type": "text_delta", "text": piece}
        yield event("content_block_delta", {"index": 0, "delta": delta})
    if reply.truncated:
        return
    yield event("content_block_stop", {"index": 0})
    yield event(
        "message_delta",
        {
            "delta": {
                "stop_reason": "tool_use" if reply.tool else "end_turn",
                "stop_sequence": None,
            },
            "usage": {"output_tokens": reply.output_tokens},
        },
    )
    yield event("message_stop", {})


class _SSEResponse(Response):
    """Server-sent events; with `abort`, the connection is dropped mid-stream (no final chunk)."""

    media_type = "text/event-stream"

    def __init__(self, events: AsyncIterator[str], *, abort: bool = False) -> None:
        # No Response.__init__: it would announce a content-length of 0.
        self.status_code = 200
        self.background = None
        self._events = events
        self._abort = abort

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:  # noqa: ARG002 — ASGI
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"text/event-stream; charset=utf-8"),
                    (b"cache-control", b"no-cache"),
                ],
            }
        )
        async for chunk in self._events:
            await send({"type": "http.response.body", "body": chunk.encode(), "more_body": True})
        if self._abort:
            # Returning without the last body message makes the server close the connection.
            return
        await send({"type": "http.response.body", "body": b"", "more_body": False})
