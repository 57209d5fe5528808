"""OpenAI Chat Completions through the official SDK: OpenAI itself and OpenAI-compatible servers.

`openai` asks for schema-constrained output (response_format json_schema, strict). `local`
(vLLM, Ollama, llama.cpp server) does the same where the server supports it; a server that
rejects json_schema is switched to JSON mode with the schema in the prompt, and the router
validates the answer and asks once for a repair.
"""

from __future__ import annotations

from typing import Literal

import httpx2
import openai
from openai import AsyncOpenAI
from openai.types.chat import ChatCompletionMessageParam
from openai.types.chat.completion_create_params import ResponseFormat
from openai.types.completion_usage import CompletionUsage

from infou_generation.llm.providers.base import (
    Repair,
    echoed_output,
    repair_instruction,
    retry_after_seconds,
    schema_instruction,
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
from infou_libs.logging import get_logger

log = get_logger(__name__)

OutputMode = Literal["json_schema", "json_object"]


class OpenAICompatibleProvider:
    """One model on an OpenAI-compatible Chat Completions endpoint."""

    repairable = True

    def __init__(
        self,
        name: ProviderName,
        client: AsyncOpenAI,
        model: str,
        *,
        stream: bool = True,
        output_mode: OutputMode = "json_schema",
        send_temperature: bool = True,
        # Servers that predate `max_completion_tokens` only know `max_tokens`.
        legacy_max_tokens: bool = False,
    ) -> None:
        self.name = name
        self.client = client
        self.model = model
        self.stream = stream
        self.output_mode: OutputMode = output_mode
        self._send_temperature = send_temperature
        self._legacy_max_tokens = legacy_max_tokens

    async def aclose(self) -> None:
        await self.client.close()

    async def complete(self, request: LLMRequest, repair: Repair | None = None) -> Completion:
        try:
            try:
                return await self._complete(request, repair)
            except openai.BadRequestError as exc:
                if not (self.name == "local" and self.output_mode == "json_schema"):
                    raise
                if not _about_format(exc):
                    raise
                # The server has no schema-constrained decoding: JSON mode from now on.
                log.warning("llm_local_json_schema_unsupported", provider=self.name)
                self.output_mode = "json_object"
            return await self._complete(request, repair)
        except openai.APIError as exc:
            raise _error(self.name, exc) from exc
        except httpx2.HTTPError as exc:
            raise ProviderUnavailableError(
                f"{self.name}: connection failed ({type(exc).__name__})", provider=self.name
            ) from exc

    async def _complete(self, request: LLMRequest, repair: Repair | None) -> Completion:
        messages = self._messages(request, repair)
        max_tokens = request.max_output_tokens
        temperature = request.temperature if self._send_temperature else openai.omit
        if self.stream:
            return await self._streamed(request, messages, temperature, max_tokens)
        response = await self.client.chat.completions.create(
            model=self.model,
            messages=messages,
            response_format=self._response_format(request),
            temperature=temperature,
            max_completion_tokens=openai.omit if self._legacy_max_tokens else max_tokens,
            max_tokens=max_tokens if self._legacy_max_tokens else openai.omit,
            stream=False,
        )
        text = ""
        finish: str | None = None
        if response.choices:
            choice = response.choices[0]
            text = choice.message.content or choice.message.refusal or ""
            finish = choice.finish_reason
        return Completion(
            text=text,
            usage=_usage(response.usage, request, text),
            model=response.model or self.model,
            finish_reason=finish,
        )

    async def _streamed(
        self,
        request: LLMRequest,
        messages: list[ChatCompletionMessageParam],
        temperature: float | openai.Omit,
        max_tokens: int,
    ) -> Completion:
        parts: list[str] = []
        finish: str | None = None
        usage: CompletionUsage | None = None
        model = self.model
        try:
            stream = await self.client.chat.completions.create(
                model=self.model,
                messages=messages,
                response_format=self._response_format(request),
                temperature=temperature,
                max_completion_tokens=openai.omit if self._legacy_max_tokens else max_tokens,
                max_tokens=max_tokens if self._legacy_max_tokens else openai.omit,
                stream=True,
                stream_options={"include_usage": True},
            )
            async with stream:
                async for chunk in stream:
                    model = chunk.model or model
                    if chunk.usage is not None:
                        usage = chunk.usage
                    for choice in chunk.choices:
                        if choice.delta.content:
                            parts.append(choice.delta.content)
                        elif choice.delta.refusal:
                            parts.append(choice.delta.refusal)
                        if choice.finish_reason:
                            finish = choice.finish_reason
        except (openai.APIConnectionError, httpx2.HTTPError) as exc:
            if not parts:
                raise
            raise _cut_stream(self.name, request, "".join(parts), exc) from exc
        text = "".join(parts)
        if finish is None:
            raise _cut_stream(self.name, request, text, None)
        return Completion(
            text=text, usage=_usage(usage, request, text), model=model, finish_reason=finish
        )

    def _messages(
        self, request: LLMRequest, repair: Repair | None
    ) -> list[ChatCompletionMessageParam]:
        system = request.system
        if self.output_mode == "json_object":
            system += schema_instruction(request)
        messages: list[ChatCompletionMessageParam] = [
            {"role": "system", "content": system},
            {"role": "user", "content": request.user},
        ]
        if repair is not None:
            messages.append({"role": "assistant", "content": echoed_output(repair)})
            messages.append({"role": "user", "content": repair_instruction(request, repair)})
        return messages

    def _response_format(self, request: LLMRequest) -> ResponseFormat:
        if self.output_mode == "json_object":
            return {"type": "json_object"}
        return {
            "type": "json_schema",
            "json_schema": {
                "name": request.schema_name,
                "schema": request.json_schema,
                "strict": True,
            },
        }


def _about_format(exc: openai.BadRequestError) -> bool:
    text = str(exc).lower()
    return "response_format" in text or "json_schema" in text


def _usage(usage: CompletionUsage | None, request: LLMRequest, text: str) -> TokenUsage:
    if usage is None:
        # Some compatible servers send no usage: bill our estimate rather than nothing.
        return TokenUsage(estimate_input_tokens(request), estimate_tokens(text), 0)
    details = usage.prompt_tokens_details
    cached = details.cached_tokens if details is not None and details.cached_tokens else 0
    return TokenUsage(usage.prompt_tokens, usage.completion_tokens, cached)


def _cut_stream(
    name: str, request: LLMRequest, text: str, cause: BaseException | None
) -> ProviderUnavailableError:
    reason = type(cause).__name__ if cause is not None else "no finish_reason"
    return ProviderUnavailableError(
        f"{name}: stream ended before the answer was complete ({reason})",
        provider=name,
        # The provider bills what it generated before the cut; we only know our estimate.
        billed=TokenUsage(estimate_input_tokens(request), estimate_tokens(text), 0),
    )


def _error(name: str, exc: openai.APIError) -> LLMError:
    if isinstance(exc, openai.RateLimitError):
        if exc.code == "insufficient_quota":
            return ProviderRejectedError(f"{name}: quota exhausted (429)", provider=name)
        return RateLimitedError(
            f"{name}: rate limited (429)",
            retry_after=retry_after_seconds(exc.response.headers),
            provider=name,
        )
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        message = f"{name}: HTTP {status}: {_short(exc.message)}"
        if status >= 500 or status in (408, 409):
            return ProviderUnavailableError(message, provider=name)
        return ProviderRejectedError(message, provider=name)
    if isinstance(exc, openai.APITimeoutError):
        return ProviderUnavailableError(f"{name}: request timed out", provider=name)
    if isinstance(exc, openai.APIConnectionError):
        return ProviderUnavailableError(f"{name}: connection failed", provider=name)
    return ProviderUnavailableError(f"{name}: {_short(str(exc))}", provider=name)


def _short(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[:limit] + "…"
