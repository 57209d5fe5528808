"""Input hardening at the edge (pure ASGI): a body size limit enforced while the body is read,
and no control characters in query parameters or JSON bodies; refusals use the error body."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Control characters a client has no business sending in text: C0 except tab and newline
# (a carriage return comes with pasted text, and is harmless once stored), DEL, and C1.
CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def _error(code: str, message: str, field: str | None) -> bytes:
    error: dict[str, Any] = {"code": code, "message": message}
    if field:
        error["field"] = field
    return json.dumps({"error": error}).encode()


async def _respond(send: Send, status: int, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _control_char_fields(value: Any, path: str = "") -> Iterator[str]:
    """Dotted paths (as the validation errors name fields) of strings holding control chars."""
    if isinstance(value, str):
        if CONTROL_CHARS.search(value):
            yield path
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _control_char_fields(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _control_char_fields(item, f"{path}.{index}" if path else str(index))


def _refused_query_field(query_string: bytes) -> str | None:
    try:
        pairs = parse_qsl(query_string.decode("latin-1"), keep_blank_values=True, encoding="utf-8")
    except ValueError:
        return "query"
    for name, value in pairs:
        if CONTROL_CHARS.search(name) or CONTROL_CHARS.search(value):
            return name if not CONTROL_CHARS.search(name) else "query"
    return None


class InputHardening:
    """Refuses oversized bodies (413) and control characters (422) before the app parses."""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        field = _refused_query_field(scope.get("query_string", b""))
        if field is not None:
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008, "reason": "invalid query"})
                return
            message = f"{field}: control characters are not allowed"
            await _respond(send, 422, _error("VALIDATION_ERROR", message, field))
            return
        if scope["type"] != "http" or scope["method"] not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        await self._with_body(scope, receive, send)

    async def _with_body(self, scope: Scope, receive: Receive, send: Send) -> None:
        too_large = _error(
            "PAYLOAD_TOO_LARGE",
            f"the request body exceeds {self.max_body_bytes} bytes",
            "body",
        )
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > self.max_body_bytes:
                    await _respond(send, 413, too_large)
                    return
        # Read (at most the limit) before anything parses it; a chunked body is counted as read.
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                await _respond(send, 413, too_large)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        field = self._refused_body_field(scope, body)
        if field is not None:
            message_text = f"{field}: control characters are not allowed"
            await _respond(send, 422, _error("VALIDATION_ERROR", message_text, field))
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    @staticmethod
    def _refused_body_field(scope: Scope, body: bytes) -> str | None:
        content_type = next((v for k, v in scope["headers"] if k == b"content-type"), b"")
        if not body or b"json" not in content_type.lower():
            return None
        try:
            document = json.loads(body)
        except ValueError:
            return None  # the app answers malformed JSON with its own 422
        field = next(_control_char_fields(document), None)
        return None if field is None else (field or "body")


# The same rule, as the OpenAPI document states it (ECMA-262 regex) for every text input.
NO_CONTROL_CHARS_PATTERN = "^[^\\u0000-\\u0008\\u000b\\u000c\\u000e-\\u001f\\u007f-\\u009f]*$"


def document_text_rule(openapi: dict[str, Any]) -> dict[str, Any]:
    """Adds the control-character rule to every free-text input of an OpenAPI document, so
    clients (and schema fuzzers) know what the edge refuses."""
    components = openapi.get("components", {}).get("schemas", {})
    seen: set[str] = set()

    def declare(schema: dict[str, Any]) -> None:
        ref = schema.get("$ref")
        if isinstance(ref, str):
            name = ref.rsplit("/", 1)[-1]
            if name not in seen and name in components:
                seen.add(name)
                declare(components[name])
            return
        if schema.get("type") == "string" and not {"pattern", "enum", "const", "format"} & set(
            schema
        ):
            schema["pattern"] = NO_CONTROL_CHARS_PATTERN
        for key in ("items", "additionalProperties"):
            if isinstance(schema.get(key), dict):
                declare(schema[key])
        for key in ("anyOf", "oneOf", "allOf"):
            for option in schema.get(key, []):
                declare(option)
        if "properties" in schema:
            # What a body may hold is what it documents (extra members are not read).
            schema.setdefault("additionalProperties", False)
        for prop in schema.get("properties", {}).values():
            declare(prop)

    for operations in openapi.get("paths", {}).values():
        for operation in operations.values():
            if not isinstance(operation, dict):
                continue
            for parameter in operation.get("parameters", []):
                declare(parameter.get("schema", {}))
            for media in operation.get("requestBody", {}).get("content", {}).values():
                declare(media.get("schema", {}))
    return openapi
