"""The offline provider: no network, no model. The content composer writes the answer.

Used only when no provider is configured, so that the whole product works without keys. Every
answer says model "offline-<version>" so that nobody takes it for an LLM's.
"""

from __future__ import annotations

import importlib
import json
from types import ModuleType

from infou_generation.llm.providers.base import Repair
from infou_generation.llm.tokens import offline_tokens
from infou_generation.llm.types import (
    Completion,
    LLMRequest,
    ProviderName,
    ProviderUnavailableError,
    TokenUsage,
)

COMPOSER_MODULE = "infou_generation.content.offline"


def load_composer() -> ModuleType | None:
    """The content composer module, or None while it is not installed."""
    try:
        return importlib.import_module(COMPOSER_MODULE)
    except ModuleNotFoundError as exc:
        if exc.name is not None and COMPOSER_MODULE.startswith(exc.name):
            return None
        raise


def offline_model() -> str:
    """What the composer calls itself ("offline-<version>")."""
    composer = load_composer()
    model = getattr(composer, "OFFLINE_MODEL", None)
    return str(model) if model else "offline-unversioned"


class OfflineProvider:
    """Composes the answer from the request's structured context, deterministically."""

    name: ProviderName = "offline"
    # Asking again gives the same answer: no repair turn.
    repairable = False

    def __init__(self) -> None:
        self.model = offline_model()

    async def aclose(self) -> None:
        return None

    async def complete(self, request: LLMRequest, repair: Repair | None = None) -> Completion:  # noqa: ARG002 — Provider protocol; the composer needs no repair
        composer = load_composer()
        if composer is None:
            raise ProviderUnavailableError(
                "offline: the content composer is not installed", provider=self.name
            )
        data = composer.compose(request.task, request.context)
        text = json.dumps(data, ensure_ascii=False)
        return Completion(
            text=text,
            usage=TokenUsage(offline_tokens(request.system + request.user), offline_tokens(text)),
            model=self.model,
            finish_reason="stop",
        )
