"""catalog use cases."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from infou_catalog import repository
from infou_catalog.models import Level


async def list_levels(session: AsyncSession) -> Sequence[Level]:
    return await repository.list_levels(session)
