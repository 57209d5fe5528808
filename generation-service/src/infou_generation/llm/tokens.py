"""Token estimates made before a call: for the budget reservation and the rate limiter."""

from __future__ import annotations

import json
import math

from infou_generation.llm.types import LLMRequest

# Per-message framing the chat formats add around the text.
_MESSAGE_OVERHEAD = 8


def estimate_tokens(text: str) -> int:
    """An upper-leaning token count: Hangul and other CJK at one token each, the rest at four
    characters a token (tokenizers of the providers we use do no worse than that)."""
    wide = sum(1 for ch in text if ord(ch) >= 0x1100)
    return wide + math.ceil((len(text) - wide) / 4)


def estimate_input_tokens(request: LLMRequest) -> int:
    """What the prompt will count as input, including the output schema the provider is sent."""
    schema = json.dumps(request.json_schema, ensure_ascii=False, separators=(",", ":"))
    return (
        estimate_tokens(request.system)
        + estimate_tokens(request.user)
        + estimate_tokens(schema)
        + 2 * _MESSAGE_OVERHEAD
    )


def offline_tokens(text: str) -> int:
    """The offline composer's nominal count (two characters a token); it costs nothing."""
    return math.ceil(len(text) / 2)
