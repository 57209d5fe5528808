"""Anthropic Messages through the official SDK; structured output is a forced, strict tool call."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import httpx2
from anthropic import AsyncAnthropic
from anthropic.types import Message, MessageParam, ToolParam

from infou_generation.llm.providers.base import (
    Repair,
    echoed_output,
    repair_instruction,
    retry_after_seconds,
)
from infou_generation.llm.tokens import estimate_input_tokens, estimate_tokens
from infou_generation.llm.types import (
    Completion,
    LLMError,
    LLMRequest,
    ProviderName,
    ProviderRejectedError,
    ProviderUnavailableError,
    RateLimitedError,
    TokenUsage,
)


class AnthropicProvider:
    """One Claude model; the answer is the input of a tool the model is made to call."""

    name: ProviderName = "anthropic"
    repairable = True

    def __init__(self, client: AsyncAnthropic, model: str, *, stream: bool = True) -> None:
        self.client = client
        self.model = model
        self.stream = stream

    async def aclose(self) -> None:
        await self.client.close()

    async def complete(self, request: LLMRequest, repair: Repair | None = None) -> Completion:
        try:
            if self.stream:
                return await self._streamed(request, repair)
            message = await self.client.messages.create(
                model=self.model,
                max_tokens=request.max_output_tokens,
                system=request.system,
                messages=_messages(request, repair),
                tools=[_tool(request)],
                tool_choice={"type": "tool", "name": request.schema_name},
                stream=False,
            )
        except anthropic.APIError as exc:
            raise _error(exc) from exc
        except httpx2.HTTPError as exc:
            raise ProviderUnavailableError(
                f"anthropic: connection failed ({type(exc).__name__})", provider=self.name
            ) from exc
        return Completion(
            text=_answer_text(message, request.schema_name),
            usage=_usage(
                message.usage.input_tokens,
                message.usage.output_tokens,
                message.usage.cache_read_input_tokens,
                message.usage.cache_creation_input_tokens,
            ),
            model=message.model or self.model,
            finish_reason=message.stop_reason,
        )

    async def _streamed(self, request: LLMRequest, repair: Repair | None) -> Completion:
        tool_json: list[str] = []
        text: list[str] = []
        tool_index: int | None = None
        model = self.model
        input_tokens = output_tokens = 0
        cache_read: int | None = None
        cache_write: int | None = None
        stop_reason: str | None = None
        finished = False
        stream = await self.client.messages.create(
            model=self.model,
            max_tokens=request.max_output_tokens,
            system=request.system,
            messages=_messages(request, repair),
            tools=[_tool(request)],
            tool_choice={"type": "tool", "name": request.schema_name},
            stream=True,
        )
        try:
            async with stream:
                async for event in stream:
                    if event.type == "message_start":
                        model = event.message.model or model
                        usage = event.message.usage
                        input_tokens, output_tokens = usage.input_tokens, usage.output_tokens
                        cache_read = usage.cache_read_input_tokens
                        cache_write = usage.cache_creation_input_tokens
                    elif event.type == "content_block_start":
                        block = event.content_block
                        if block.type == "tool_use" and block.name == request.schema_name:
                            tool_index = event.index
                    elif event.type == "content_block_delta":
                        delta = event.delta
                        if delta.type == "input_json_delta" and event.index == tool_index:
                            tool_json.append(delta.partial_json)
                        elif delta.type == "text_delta":
                            text.append(delta.text)
                    elif event.type == "message_delta":
                        # Usage on message_delta is cumulative: it replaces, never adds.
                        output_tokens = event.usage.output_tokens
                        if event.usage.input_tokens is not None:
                            input_tokens = event.usage.input_tokens
                        if event.usage.cache_read_input_tokens is not None:
                            cache_read = event.usage.cache_read_input_tokens
                        stop_reason = event.delta.stop_reason or stop_reason
                    elif event.type == "message_stop":
                        finished = True
        except (anthropic.APIConnectionError, httpx2.HTTPError) as exc:
            raise _cut_stream(request, "".join(tool_json or text), exc) from exc
        if not finished:
            raise _cut_stream(request, "".join(tool_json or text), None)
        answer = "".join(tool_json) if tool_index is not None else "".join(text)
        return Completion(
            text=answer,
            usage=_usage(input_tokens, output_tokens, cache_read, cache_write),
            model=model,
            finish_reason=stop_reason,
        )


def _tool(request: LLMRequest) -> ToolParam:
    return {
        "name": request.schema_name,
        "description": "Return the answer as this tool's input; it is the only way to answer.",
        "input_schema": request.json_schema,
        "strict": True,
    }


def _messages(request: LLMRequest, repair: Repair | None) -> list[MessageParam]:
    messages: list[MessageParam] = [{"role": "user", "content": request.user}]
    if repair is not None:
        messages.append({"role": "assistant", "content": echoed_output(repair)})
        messages.append({"role": "user", "content": repair_instruction(request, repair)})
    return messages


def _answer_text(message: Message, tool_name: str) -> str:
    """The forced tool's input as JSON text; plain text when the model answered without it."""
    texts: list[str] = []
    for block in message.content:
        if block.type == "tool_use" and block.name == tool_name:
            return json.dumps(block.input, ensure_ascii=False)
        if block.type == "text":
            texts.append(block.text)
    return "".join(texts)


def _usage(
    input_tokens: int, output_tokens: int, cache_read: int | None, cache_write: int | None
) -> TokenUsage:
    # Anthropic counts cache reads and writes apart from input_tokens; the ledger's input is all.
    cached, written = cache_read or 0, cache_write or 0
    return TokenUsage(input_tokens + cached + written, output_tokens, cached, written)


def _cut_stream(
    request: LLMRequest, partial: str, cause: BaseException | None
) -> ProviderUnavailableError:
    reason = type(cause).__name__ if cause is not None else "no message_stop"
    return ProviderUnavailableError(
        f"anthropic: stream ended before the answer was complete ({reason})",
        provider="anthropic",
        billed=TokenUsage(estimate_input_tokens(request), estimate_tokens(partial), 0),
    )


def _error(exc: anthropic.APIError) -> LLMError:
    if isinstance(exc, anthropic.RateLimitError):
        return RateLimitedError(
            "anthropic: rate limited (429)",
            retry_after=retry_after_seconds(exc.response.headers),
            provider="anthropic",
        )
    if isinstance(exc, anthropic.APIStatusError):
        status = exc.status_code
        kind = _error_type(exc.body)
        message = f"anthropic: HTTP {status} {kind or ''}".rstrip()
        if kind == "rate_limit_error":
            return RateLimitedError(message, provider="anthropic")
        # Status 200 is an error event inside a stream (overloaded_error, api_error).
        if status >= 500 or status in (200, 408, 409):
            return ProviderUnavailableError(message, provider="anthropic")
        return ProviderRejectedError(message, provider="anthropic")
    if isinstance(exc, anthropic.APITimeoutError):
        return ProviderUnavailableError("anthropic: request timed out", provider="anthropic")
    return ProviderUnavailableError(
        f"anthropic: connection failed ({type(exc).__name__})", provider="anthropic"
    )


def _error_type(body: Any) -> str | None:
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and isinstance(error.get("type"), str):
            return str(error["type"])
    return None
