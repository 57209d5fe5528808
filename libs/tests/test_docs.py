"""README.md stays true: every setting of every process is in its configuration table."""

import importlib
import re

from infou_devtools.testing import repo_root

SETTINGS = [
    ("infou_libs.settings", "CommonSettings"),
    ("infou_gateway.settings", "GatewaySettings"),
    ("infou_catalog.settings", "CatalogSettings"),
    ("infou_session.settings", "SessionSettings"),
    ("infou_generation.settings", "GenerationSettings"),
    ("infou_feedback.settings", "FeedbackSettings"),
    ("infou_realtime.settings", "RealtimeSettings"),
]


def test_every_setting_is_documented() -> None:
    readme = (repo_root() / "README.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"INFOU_[A-Z0-9_]+", readme))
    # "INFOU_CATALOG_ADDR … INFOU_REALTIME_ADDR" documents the five service addresses at once.
    if "INFOU_CATALOG_ADDR` … `INFOU_REALTIME_ADDR" in readme:
        documented |= {f"INFOU_{s}_ADDR" for s in ("SESSION", "GENERATION", "FEEDBACK")}
    missing = []
    for module, name in SETTINGS:
        cls = getattr(importlib.import_module(module), name)
        missing += [
            f"INFOU_{f.upper()}" for f in cls.model_fields if f"INFOU_{f.upper()}" not in documented
        ]
    assert missing == [], f"settings missing from README.md: {sorted(set(missing))}"


def test_ci_runs_exactly_the_readme_test_command() -> None:
    ci = (repo_root() / ".ci" / "run").read_text(encoding="utf-8")
    readme = (repo_root() / "README.md").read_text(encoding="utf-8")
    assert "make test" in readme
    assert ci.strip().splitlines()[-1] == "make test"
