"""learning_progress_logs by month: partitions made ahead, DEFAULT taking the rest, rows that
arrived early moved into their month's partition when it is made, and everything read back."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from infou_feedback import partitions, repository, service
from infou_feedback.service import ProgressInput
from infou_feedback.session_access import Access

Sessions = async_sessionmaker[AsyncSession]


def at(year: int, month: int, day: int, hour: int = 12, second: int = 0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, 0, second, tzinfo=dt.UTC)


async def _record(sessions: Sessions, who: Access, action: str, when: dt.datetime) -> int:
    checked = service.check_progress(
        ProgressInput(
            session_id=who.session_id, article_id=who.article_id, action=action, time_spent=30
        )
    )
    async with sessions() as db, db.begin():
        row = await service.record_progress(db, who, checked, now=when)
    return row.id


async def _homes(sessions: Sessions) -> dict[int, str]:
    """Each row's id → the partition it is stored in."""
    async with sessions() as db:
        rows = await db.execute(
            text(
                "SELECT id, tableoid::regclass::text FROM feedback.learning_progress_logs "
                "ORDER BY id"
            )
        )
        return {int(r[0]): str(r[1]).rsplit(".", 1)[-1] for r in rows}


async def test_month_arithmetic() -> None:
    assert partitions.month_start(at(2031, 12, 31, 23)) == at(2031, 12, 1, 0)
    assert partitions.next_month(at(2031, 12, 1, 0)) == at(2032, 1, 1, 0)
    assert partitions.partition_name(at(2031, 3, 1, 0)) == "learning_progress_logs_203103"
    # Partition bounds are UTC: 00:30 on the 1st in Seoul is still the previous month.
    seoul = dt.timezone(dt.timedelta(hours=9))
    assert partitions.month_start(dt.datetime(2031, 4, 1, 0, 30, tzinfo=seoul)) == at(2031, 3, 1, 0)


async def test_partitions_are_made_ahead_once(sessions: Sessions) -> None:
    async with sessions() as db:
        assert await partitions.partitions(db) == ["learning_progress_logs_default"]
    created = await partitions.ensure_ahead(sessions, 2, now=at(2031, 1, 15))
    assert created == [
        "learning_progress_logs_203101",
        "learning_progress_logs_203102",
        "learning_progress_logs_203103",
    ]
    # Idempotent: the daily run finds them there.
    assert await partitions.ensure_ahead(sessions, 2, now=at(2031, 1, 20)) == []
    assert await partitions.ensure_ahead(sessions, 2, now=at(2031, 2, 1)) == [
        "learning_progress_logs_203104"
    ]
    async with sessions() as db:
        assert await partitions.partitions(db) == [
            "learning_progress_logs_203101",
            "learning_progress_logs_203102",
            "learning_progress_logs_203103",
            "learning_progress_logs_203104",
            "learning_progress_logs_default",
        ]


async def test_rows_across_months_land_in_their_partition_and_read_back(
    sessions: Sessions, access: Callable[..., Access]
) -> None:
    await partitions.ensure_ahead(sessions, 2, now=at(2031, 1, 15))
    who = access("sess_months", "sess_months_001")
    moments = {
        "before any partition": at(2030, 12, 20),
        "january": at(2031, 1, 15),
        "first instant of february": dt.datetime(2031, 2, 1, tzinfo=dt.UTC),
        "last second of march": dt.datetime(2031, 3, 31, 23, 59, 59, tzinfo=dt.UTC),
        "june, not made yet": at(2031, 6, 10),
    }
    ids = {name: await _record(sessions, who, "started", when) for name, when in moments.items()}

    homes = await _homes(sessions)
    assert homes[ids["before any partition"]] == "learning_progress_logs_default"
    assert homes[ids["january"]] == "learning_progress_logs_203101"
    assert homes[ids["first instant of february"]] == "learning_progress_logs_203102"
    assert homes[ids["last second of march"]] == "learning_progress_logs_203103"
    assert homes[ids["june, not made yet"]] == "learning_progress_logs_default"

    async with sessions() as db:
        rows = await repository.logs_of(db, "sess_months")
        assert [r.timestamp for r in rows] == sorted(moments.values())
        assert [r.id for r in rows] == [ids[name] for name in moments]
        # Partition pruning still answers a range read.
        spring = await repository.logs_of(db, "sess_months", since=at(2031, 3, 1, 0))
        assert [r.id for r in spring] == [ids["last second of march"], ids["june, not made yet"]]


async def test_a_month_whose_rows_sit_in_default_is_made_by_moving_them(
    sessions: Sessions, access: Callable[..., Access]
) -> None:
    who = access("sess_early", "sess_early_001")
    early = [at(2031, 6, 3), at(2031, 6, 29), at(2031, 7, 2)]
    ids = [await _record(sessions, who, "started", when) for when in early]
    assert set((await _homes(sessions)).values()) == {"learning_progress_logs_default"}

    # Postgres alone refuses a partition whose range DEFAULT holds rows of.
    async with sessions() as db:
        refused = False
        try:
            async with db.begin():
                await db.execute(
                    text(
                        "CREATE TABLE feedback_partitions.learning_progress_logs_203106 "
                        "PARTITION OF feedback.learning_progress_logs "
                        "FOR VALUES FROM ('2031-06-01 00:00:00+00') TO ('2031-07-01 00:00:00+00')"
                    )
                )
        except Exception as exc:
            refused = "default partition" in str(exc)
        assert refused

    async with sessions() as db, db.begin():
        moved = await partitions.ensure_month(db, at(2031, 6, 15))
    assert moved == 2
    async with sessions() as db, db.begin():
        assert await partitions.ensure_month(db, at(2031, 6, 1)) is None

    homes = await _homes(sessions)
    assert homes == {
        ids[0]: "learning_progress_logs_203106",
        ids[1]: "learning_progress_logs_203106",
        ids[2]: "learning_progress_logs_default",
    }
    async with sessions() as db:
        rows = await repository.logs_of(db, "sess_early")
    assert [(r.id, r.timestamp, r.action) for r in rows] == [
        (i, when, "started") for i, when in zip(ids, early, strict=True)
    ]
    # New rows of that month go straight to its partition; ids keep counting.
    later = await _record(sessions, who, "completed", at(2031, 6, 30))
    assert later > max(ids)
    assert (await _homes(sessions))[later] == "learning_progress_logs_203106"
