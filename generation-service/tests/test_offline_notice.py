"""No silent filler: what the offline provider wrote says so in its body and its metadata."""

from __future__ import annotations

import json
from decimal import Decimal

from content_examples import article_context

from infou_generation.content.offline import OFFLINE_MODEL, compose
from infou_generation.content.prompts import render
from infou_generation.content.quality import evaluate, expects_code
from infou_generation.engine import Generated
from infou_generation.jobs.session_tasks import OFFLINE_NOTICE, quality_report, written_of


def _generated(provider: str, model: str) -> Generated:
    context = render("article", article_context("transformers", "beginner")).context
    data = compose("article", context)
    quality = evaluate(
        data,
        "beginner",
        expects_code=expects_code(context["main_topic"]["category"], context["sub_topic"]),
    )
    return Generated(
        data=data,
        model=model,
        provider=provider,
        input_tokens=0,
        output_tokens=0,
        cost_usd=Decimal(0),
        cache_hit=False,
        prompt_version="v",
        prompt_excerpt="",
        quality=quality,
        attempts=1,
    )


def test_offline_articles_lead_with_a_notice_and_are_not_judged() -> None:
    written = written_of(_generated("offline", OFFLINE_MODEL), "beginner")

    assert written.content.startswith(OFFLINE_NOTICE)
    assert "\n## " in written.content
    report = json.loads(written.quality_report_json)
    assert report["judged"] is False


def test_a_models_article_has_no_notice_and_a_real_verdict() -> None:
    generated = _generated("openai", "gpt-4.1")
    written = written_of(generated, "beginner")

    assert written.content.startswith("## ")
    assert OFFLINE_NOTICE not in written.content
    report = quality_report(generated)
    assert report is not None
    assert report["judged"] is True
    assert report["score"] == written.quality_score
