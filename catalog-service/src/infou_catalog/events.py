"""What catalog-service publishes and consumes."""

from __future__ import annotations

CATALOG_CHANGED = "events.catalog.changed"
