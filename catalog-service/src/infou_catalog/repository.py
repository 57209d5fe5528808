"""Every SQL query of catalog-service."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from infou_catalog.models import CuratedSubTopic, Level, MainTopic


async def list_levels(session: AsyncSession) -> Sequence[Level]:
    return (await session.scalars(select(Level).order_by(Level.order_num))).all()


async def levels_by_code(session: AsyncSession) -> dict[str, Level]:
    return {level.code: level for level in await list_levels(session)}


async def topics_by_slug(session: AsyncSession) -> dict[str, MainTopic]:
    return {t.slug: t for t in (await session.scalars(select(MainTopic))).all()}


async def sub_topics_by_slug(session: AsyncSession) -> dict[str, CuratedSubTopic]:
    return {s.slug: s for s in (await session.scalars(select(CuratedSubTopic))).all()}
