"""admission as one statement: no counter on the day's budget row, no lock across a round trip

`generation.admit_budget` admits (or finds, or refuses) in one call run in autocommit: the
day's admissions serialise on an advisory lock of their own, held inside the function only,
and sum what open admissions may still spend (`budget_admitted`) and what the client's hold or
spent (`budget_client_usage`), so charges and releases no longer lock the day's budget row to
keep a counter, and no admission waits on a lock held across a client round trip.

Revision ID: f2b6d8a1c4e7
Revises: f1b2c3d4e5a6
Create Date: 2026-12-03 13:50:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "f2b6d8a1c4e7"
down_revision: str | None = "f1b2c3d4e5a6"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "generation"

# What the day's open admissions may still spend: their estimates less what they spent.
BUDGET_ADMITTED = """
CREATE FUNCTION generation.budget_admitted(p_day date) RETURNS numeric
LANGUAGE sql STABLE AS $$
    SELECT coalesce(sum(greatest(a.estimated_usd - a.spent_usd, 0)), 0)
    FROM generation.budget_admissions AS a
    WHERE a.day = p_day AND a.status = 'open'
$$
"""

# What one client's admissions of the day hold (open: the larger of estimate and spend) or
# spent (closed).
BUDGET_CLIENT_USAGE = """
CREATE FUNCTION generation.budget_client_usage(p_day date, p_client varchar) RETURNS numeric
LANGUAGE sql STABLE AS $$
    SELECT coalesce(sum(CASE WHEN a.status = 'open'
                             THEN greatest(a.estimated_usd, a.spent_usd)
                             ELSE a.spent_usd END), 0)
    FROM generation.budget_admissions AS a
    WHERE a.day = p_day AND a.client_id = p_client
$$
"""

# One admission (admission.py), called in autocommit: the admission of this reference if there
# is one (a retried create); else, under the day's advisory lock (taken inside, released at the
# call's commit), a new open admission when it fits beside the day's spend, holds and open
# admissions and within the client's allowance; else a refusal (admitted = false). The day's
# budget row is read, never locked: a settle moves a call's cost from its hold and its
# admission to the spend in one commit, so either side of it adds up to no less than the truth. Each
# statement of a VOLATILE plpgsql function takes a new snapshot, so the check after the lock
# sees every admission committed before it. The lock's keys: a constant of its own, the day's
# ordinal.
ADMIT_BUDGET = """
CREATE FUNCTION generation.admit_budget(
    p_id varchar, p_reference_id varchar, p_kind varchar, p_day date, p_client varchar,
    p_estimated numeric, p_expires_at timestamptz, p_limit numeric, p_allowance numeric
) RETURNS TABLE (granted_id varchar, granted_usd numeric, admitted boolean)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    RETURN QUERY SELECT a.id, a.estimated_usd, true
        FROM generation.budget_admissions AS a WHERE a.reference_id = p_reference_id;
    IF FOUND THEN
        RETURN;
    END IF;
    PERFORM pg_advisory_xact_lock(520803351, p_day - date '0001-01-01' + 1);
    INSERT INTO generation.budget_admissions
        (id, reference_id, kind, day, client_id, estimated_usd, spent_usd, status, expires_at)
    SELECT p_id, p_reference_id, p_kind, p_day, p_client, p_estimated, 0, 'open', p_expires_at
    WHERE coalesce((SELECT d.spent_usd + d.reserved_usd FROM generation.llm_budget_days AS d
                    WHERE d.day = p_day), 0)
          + generation.budget_admitted(p_day) + p_estimated <= p_limit
      AND generation.budget_client_usage(p_day, p_client) + p_estimated <= p_allowance
    ON CONFLICT (reference_id) DO NOTHING;
    IF FOUND THEN
        RETURN QUERY SELECT p_id, p_estimated, true;
        RETURN;
    END IF;
    -- A concurrent call for the same reference won, or it did not fit.
    RETURN QUERY SELECT a.id, a.estimated_usd, true
        FROM generation.budget_admissions AS a WHERE a.reference_id = p_reference_id;
    IF FOUND THEN
        RETURN;
    END IF;
    RETURN QUERY SELECT NULL::varchar, p_estimated, false;
END
$$
"""


def upgrade() -> None:
    op.create_index(
        "ix_budget_admissions_open_day",
        "budget_admissions",
        ["day"],
        schema=SCHEMA,
        postgresql_where=sa.text("status = 'open'"),
    )
    op.drop_column("llm_budget_days", "admitted_usd", schema=SCHEMA)
    op.execute(BUDGET_ADMITTED)
    op.execute(BUDGET_CLIENT_USAGE)
    op.execute(ADMIT_BUDGET)


def downgrade() -> None:
    op.execute("DROP FUNCTION generation.admit_budget")
    op.execute("DROP FUNCTION generation.budget_client_usage")
    op.execute("DROP FUNCTION generation.budget_admitted")
    op.add_column(
        "llm_budget_days",
        sa.Column(
            "admitted_usd",
            sa.Numeric(precision=14, scale=6),
            server_default=sa.text("0"),
            nullable=False,
        ),
        schema=SCHEMA,
    )
    # The counter again, from the open admissions it stands for.
    op.execute(
        """
        UPDATE generation.llm_budget_days AS d SET admitted_usd = o.total
        FROM (
            SELECT day, sum(greatest(estimated_usd - spent_usd, 0)) AS total
            FROM generation.budget_admissions WHERE status = 'open' GROUP BY day
        ) AS o
        WHERE d.day = o.day
        """
    )
    op.drop_index(
        "ix_budget_admissions_open_day",
        table_name="budget_admissions",
        schema=SCHEMA,
        postgresql_where=sa.text("status = 'open'"),
    )
