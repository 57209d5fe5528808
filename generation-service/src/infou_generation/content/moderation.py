"""Moderation of learner text and generated output.

With OpenAI configured, texts go to OpenAI's moderation endpoint through the official SDK (one
request for a batch of fields); otherwise, and whenever that request fails, a local check of
keyword patterns (Korean and English) decides. A verdict names each flagged field and its
categories (OpenAI's category names), so that flagged learner input can be refused naming the
field. The text itself is never logged.

Two stages use it: `input` (learner text, checked by admission before anything is held or
stored: `refuse_flagged` raises CONTENT_FLAGGED naming the field) and `output` (generated
content, checked by the engine before it is stored or used: see `engine.py`). Every verdict is
counted in `infou_moderation_verdicts_total{stage,source,result}`; a verdict the local check
gave because OpenAI's endpoint failed has source `local_fallback` and a `moderation_openai_failed`
warning.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal

import httpx2
from openai import AsyncOpenAI, OpenAIError
from prometheus_client import Counter

from infou_generation.settings import GenerationSettings
from infou_libs.errors import InvalidArgument
from infou_libs.logging import get_logger

log = get_logger(__name__)

Source = Literal["openai", "local"]
Stage = Literal["input", "output"]

CONTENT_FLAGGED: Final = "CONTENT_FLAGGED"

MODERATION_VERDICTS = Counter(
    "infou_moderation_verdicts_total",
    "Moderation verdicts on learner input and generated output, by stage, source (openai, "
    "local, local_fallback: OpenAI's endpoint failed) and result (clean, flagged)",
    ["stage", "source", "result"],
)

# Narrow phrases rather than single words: learning text says "kill a process" and "자살률".
_LOCAL_PATTERNS: Final[dict[str, tuple[str, ...]]] = {
    "self-harm": (
        r"자살\s*(?:하고\s*싶|할\s*거|하는\s*방법|방법)",
        r"죽고\s*싶",
        r"자해\s*(?:하는\s*방법|하고\s*싶)",
        r"\bkill\s+myself\b",
        r"\bhow\s+to\s+commit\s+suicide\b",
    ),
    "violence": (
        r"죽여\s*버리",
        r"죽이겠",
        r"살해\s*(?:하는\s*방법|하겠|할\s*거)",
        r"\bi\s+will\s+kill\s+you\b",
    ),
    "illicit/violent": (
        r"폭탄\s*(?:만드는|제조)",
        r"총기\s*(?:제작|만드는)",
        r"\bhow\s+to\s+(?:make|build)\s+a\s+bomb\b",
    ),
    "illicit": (
        r"(?:마약|필로폰|메스암페타민)\s*(?:만드는|제조|구매|구입)",
        r"\bhow\s+to\s+(?:make|cook)\s+meth\b",
    ),
    "sexual/minors": (
        r"(?:아동|미성년자?)\s*(?:성착취|음란물|성\s*영상)",
        r"\bchild\s+(?:porn|sexual\s+abuse\s+material)\b",
    ),
    "hate": (
        r"인종\s*청소",
        r"열등한\s*(?:민족|인종)",
        r"\bethnic\s+cleansing\s+is\s+good\b",
    ),
}
_COMPILED: Final = {
    category: tuple(re.compile(p, re.I) for p in patterns)
    for category, patterns in _LOCAL_PATTERNS.items()
}
_INVISIBLE = re.compile(r"[\u200b-\u200f\u2060\ufeff\u00ad]")


@dataclass(frozen=True)
class Finding:
    """One flagged field and why."""

    field: str
    categories: tuple[str, ...]


@dataclass(frozen=True)
class ModerationVerdict:
    source: Source
    findings: tuple[Finding, ...] = ()
    # The local check decided because OpenAI's endpoint failed.
    fallback: bool = False

    @property
    def flagged(self) -> bool:
        return bool(self.findings)

    @property
    def fields(self) -> list[str]:
        return [finding.field for finding in self.findings]

    @property
    def categories(self) -> list[str]:
        return sorted({c for finding in self.findings for c in finding.categories})


class FlaggedOutputError(Exception):
    """Both answers for a task failed moderation (code CONTENT_FLAGGED): not worth retrying."""

    code = CONTENT_FLAGGED

    def __init__(self, task: str, categories: list[str]) -> None:
        super().__init__(f"{task}: both answers failed moderation ({', '.join(categories)})")
        self.task = task
        self.categories = categories


def local_categories(text: str) -> tuple[str, ...]:
    """The categories the local patterns find in `text` (empty: nothing found)."""
    normal = _INVISIBLE.sub("", unicodedata.normalize("NFKC", text)).lower()
    return tuple(
        category
        for category, patterns in _COMPILED.items()
        if any(pattern.search(normal) for pattern in patterns)
    )


class ContentModeration:
    """Checks named texts: OpenAI's moderation endpoint with a client, the local check without."""

    def __init__(
        self, client: AsyncOpenAI | None = None, model: str = "omni-moderation-latest"
    ) -> None:
        self.client = client
        self.model = model

    async def check(self, texts: Mapping[str, str], *, stage: Stage = "input") -> ModerationVerdict:
        """The verdict on `texts` (field name → text); empty texts are not sent."""
        named = {name: text for name, text in texts.items() if text.strip()}
        if not named:
            return ModerationVerdict("openai" if self.client else "local")
        verdict = None
        if self.client is not None:
            try:
                verdict = await self._openai(named)
            except (OpenAIError, httpx2.HTTPError) as exc:
                # Learner text never reaches a log; the error's type says what failed.
                log.warning("moderation_openai_failed", stage=stage, error=type(exc).__name__)
        if verdict is None:
            verdict = ModerationVerdict(
                "local",
                tuple(
                    Finding(name, categories)
                    for name, text in named.items()
                    if (categories := local_categories(text))
                ),
                fallback=self.client is not None,
            )
        source = "local_fallback" if verdict.fallback else verdict.source
        MODERATION_VERDICTS.labels(stage, source, "flagged" if verdict.flagged else "clean").inc()
        if verdict.flagged:
            log.warning(
                "moderation_flagged",
                stage=stage,
                source=source,
                fields=verdict.fields,
                categories=verdict.categories,
            )
        return verdict

    async def _openai(self, named: dict[str, str]) -> ModerationVerdict:
        assert self.client is not None
        # The raw response: the same request, retries, timeouts and errors as `create`, without
        # building the SDK's response model (every category's score and applied input types),
        # which took about a third of the call's CPU; only `flagged` and `categories` are read.
        response = await self.client.moderations.with_raw_response.create(
            model=self.model, input=list(named.values())
        )
        return ModerationVerdict("openai", _findings(list(named), response.http_response.content))

    async def aclose(self) -> None:
        if self.client is not None:
            await self.client.close()


def _findings(names: list[str], body: bytes) -> tuple[Finding, ...]:
    """The flagged fields named by a moderation response body (a result per name, in order);
    OpenAIError when the body is not such an answer."""
    try:
        results = json.loads(body)["results"]
        if len(results) != len(names):
            raise OpenAIError(f"moderation answered {len(results)} results for {len(names)} inputs")
        return tuple(
            Finding(name, tuple(sorted(c for c, on in result["categories"].items() if on)))
            for name, result in zip(names, results, strict=True)
            if result["flagged"]
        )
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise OpenAIError(f"moderation answered an unreadable body ({type(exc).__name__})") from exc


def refuse_flagged(verdict: ModerationVerdict) -> None:
    """Raises INVALID_ARGUMENT (HTTP 422, code CONTENT_FLAGGED) naming the first flagged field."""
    if not verdict.flagged:
        return
    first = verdict.findings[0]
    raise InvalidArgument(
        "입력한 내용이 콘텐츠 안전 기준에 맞지 않아 요청을 받을 수 없습니다 "
        f"({', '.join(first.categories)}). 내용을 바꿔 다시 시도해 주세요.",
        field=first.field,
        code=CONTENT_FLAGGED,
    )


def build_moderation(settings: GenerationSettings) -> ContentModeration:
    """OpenAI's moderation when an OpenAI key is configured, the local check otherwise."""
    key = settings.openai_api_key.get_secret_value()
    if not key:
        return ContentModeration(None, settings.moderation_model)
    client = AsyncOpenAI(
        api_key=key,
        base_url=settings.openai_base_url or None,
        timeout=httpx2.Timeout(
            settings.moderation_timeout_s, connect=settings.llm_connect_timeout_s
        ),
        max_retries=1,
        default_headers=dict(settings.llm_extra_headers) or None,
    )
    return ContentModeration(client, settings.moderation_model)
