"""Turning a model's curriculum plan into the session's ordered articles.

The model proposes; these rules decide what is stored:

* an item naming a sub-topic that was not selected is dropped;
* titles are unique (the first wins, compared without case and surrounding space);
* at most `max_per_sub_topic` items per sub-topic, the first ones;
* prerequisites come before what needs them: a stable topological order over
  `prerequisite_titles` (only titles of kept items count; an edge that would close a cycle is
  ignored, so the model's order decides there).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace


@dataclass(frozen=True)
class PlannedItem:
    title: str
    summary: str
    sub_topic_ref: str
    estimated_read_time: str = ""
    key_concepts: tuple[str, ...] = ()
    difficulty_indicators: tuple[str, ...] = ()
    prerequisite_titles: tuple[str, ...] = ()


@dataclass(frozen=True)
class ArticlePlan:
    """One stored curriculum item with its place in the whole and within its sub-topic."""

    item: PlannedItem
    order: int
    id: str
    previous_id: str | None
    next_id: str | None
    order_in_sub_topic: int
    total_in_sub_topic: int
    prerequisites: tuple[str, ...] = field(default=())


def _key(title: str) -> str:
    return " ".join(title.split()).casefold()


def normalise(
    items: list[PlannedItem], sub_topic_refs: list[str], max_per_sub_topic: int
) -> list[PlannedItem]:
    """The items to store, in reading order (see the module docstring)."""
    allowed = set(sub_topic_refs)
    seen: set[str] = set()
    per_ref: dict[str, int] = {}
    kept: list[PlannedItem] = []
    for item in items:
        title = " ".join(item.title.split())
        key = _key(title)
        if item.sub_topic_ref not in allowed or not key or key in seen:
            continue
        if per_ref.get(item.sub_topic_ref, 0) >= max_per_sub_topic:
            continue
        seen.add(key)
        per_ref[item.sub_topic_ref] = per_ref.get(item.sub_topic_ref, 0) + 1
        kept.append(replace(item, title=title))
    return prerequisites_first(kept)


def prerequisites_first(items: list[PlannedItem]) -> list[PlannedItem]:
    """A stable topological order: each item after the kept items it names as prerequisites."""
    index = {_key(item.title): i for i, item in enumerate(items)}
    needs: list[set[int]] = []
    for i, item in enumerate(items):
        deps = {index[_key(t)] for t in item.prerequisite_titles if _key(t) in index}
        deps.discard(i)
        needs.append(deps)
    placed: list[int] = []
    done: set[int] = set()
    visiting: set[int] = set()

    def place(i: int) -> None:
        if i in done or i in visiting:
            return  # already placed, or an edge closing a cycle: ignored
        visiting.add(i)
        for dep in sorted(needs[i]):
            place(dep)
        visiting.discard(i)
        done.add(i)
        placed.append(i)

    for i in range(len(items)):
        place(i)
    return [items[i] for i in placed]


def article_id(session_id: str, order: int) -> str:
    """PRD §4.3 style: `sess_<uuid>_001`."""
    return f"{session_id}_{order:03d}"


def lay_out(session_id: str, items: list[PlannedItem]) -> list[ArticlePlan]:
    """Ids, links and per-sub-topic positions of the ordered items."""
    ids = [article_id(session_id, n) for n in range(1, len(items) + 1)]
    totals: dict[str, int] = {}
    for item in items:
        totals[item.sub_topic_ref] = totals.get(item.sub_topic_ref, 0) + 1
    positions: dict[str, int] = {}
    kept_titles = {_key(item.title) for item in items}
    plans = []
    for n, item in enumerate(items):
        positions[item.sub_topic_ref] = positions.get(item.sub_topic_ref, 0) + 1
        prerequisites = tuple(
            " ".join(t.split()) for t in item.prerequisite_titles if _key(t) in kept_titles
        )
        plans.append(
            ArticlePlan(
                item=item,
                order=n + 1,
                id=ids[n],
                previous_id=ids[n - 1] if n > 0 else None,
                next_id=ids[n + 1] if n + 1 < len(ids) else None,
                order_in_sub_topic=positions[item.sub_topic_ref],
                total_in_sub_topic=totals[item.sub_topic_ref],
                prerequisites=prerequisites,
            )
        )
    return plans
