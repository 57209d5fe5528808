"""catalog-service settings (prefix INFOU_)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from infou_libs.settings import CommonSettings


class CatalogSettings(CommonSettings):
    service_name: str = "catalog"
    grpc_port: int = Field(default=50051, ge=0, le=65535)  # the gateway's default address
    catalog_seed_dir: Path | None = None  # default: the data files shipped in the package
    # Statistic-driven CatalogChanged (learner counts, ratings, ...): at most one per topic per
    # this many seconds, the latest counts announced by a periodic sweep; 0 = every event.
    catalog_stats_announce_seconds: float = Field(default=5.0, ge=0, le=3600)
    # SessionCreated events (one per create) are counted in batches: the first to arrive and
    # those within this many seconds after it (at most 64), in one transaction. Statistics lag
    # creates by up to this much; the cost is per batch, hardly per event.
    catalog_stats_batch_seconds: float = Field(default=0.5, gt=0, le=10)
