"""catalog-service settings (prefix INFOU_)."""

from __future__ import annotations

from pathlib import Path

from infou_libs.settings import CommonSettings


class CatalogSettings(CommonSettings):
    service_name: str = "catalog"
    catalog_seed_dir: Path | None = None  # default: the data files shipped in the package
