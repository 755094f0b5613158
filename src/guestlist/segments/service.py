"""What the API and the CLI both do with segments: preview an unsaved rule, page and
export members, explain a rule (its SQL, and for one profile which parts held), and
the jobs that evaluate segments and run due rechecks."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy import Connection, Engine, Select, func, select

from guestlist.age.policy import default_policy
from guestlist.guard import guard, load_facts
from guestlist.jobs.queue import enqueue
from guestlist.jobs.registry import job_handler
from guestlist.jobs.schedule import recurring
from guestlist.segments.catalog import Segment, SegmentError, list_segments
from guestlist.segments.evaluate import explain
from guestlist.segments.facts import load_state
from guestlist.segments.membership import (
    compute_everyone,
    evaluate_segment,
    members_query,
    run_due_rechecks,
)
from guestlist.segments.profile_view import load_profile_views
from guestlist.store.tables import (
    identifiers,
    segment_changes,
    segment_memberships,
)
from guestlist.store.types import utcnow

EVALUATE: Final = "segments.evaluate"
RECHECK: Final = "segments.recheck"
COMPUTE: Final = "segments.compute_traits"
SAMPLE: Final = 20


def schedule_evaluation(conn: Connection, segment: Segment) -> int | None:
    """Queue a full evaluation of `segment` at its current version."""
    return enqueue(
        conn,
        EVALUATE,
        {"slug": segment.slug, "version": segment.version},
        unique_key=f"{EVALUATE}:{segment.slug}:{segment.version}",
    )


@job_handler(EVALUATE)
def _evaluate_job(engine: Engine, args: dict[str, Any]) -> None:
    with engine.begin() as conn:
        try:
            evaluate_segment(conn, str(args["slug"]))
        except KeyError:
            return  # deleted since it was queued: nothing to evaluate


def schedule_computation(conn: Connection) -> int | None:
    """Queue a recomputation of every computed trait for every profile."""
    return enqueue(conn, COMPUTE, {}, unique_key=COMPUTE)


@job_handler(COMPUTE)
def _compute_job(engine: Engine, args: dict[str, Any]) -> None:
    with engine.begin() as conn:
        compute_everyone(conn)


@recurring(RECHECK, every=timedelta(minutes=1))  # the worker asks about once a minute
@job_handler(RECHECK)
def _recheck_job(engine: Engine, args: dict[str, Any]) -> None:
    while True:
        with engine.begin() as conn:
            if not run_due_rechecks(conn).checked:
                return


@dataclass(frozen=True)
class Preview:
    count: int
    sample: list[int]  # the first member ids

    def as_json(self) -> dict[str, Any]:
        return {"count": self.count, "sample": self.sample}


def preview(conn: Connection, segment: Segment, *, now: datetime | None = None) -> Preview:
    """Count and a sample of who `segment` (saved or not) selects now, in the database;
    a restricted segment's candidates then pass the guard."""
    now = now or utcnow()
    by_slug = {s.slug: s for s in list_segments(conn)}
    by_slug[segment.slug] = segment
    query = members_query(segment, by_slug, now, facts=load_state(conn).for_compiler())
    restriction = segment.restriction
    if restriction is None:
        return Preview(*count_and_first(conn, query, SAMPLE))
    candidates = sorted(int(p) for p in conn.scalars(query))
    facts = load_facts(conn, candidates)
    admitted = [p for p in candidates if guard(facts[p], restriction, now).admitted]
    return Preview(len(admitted), admitted[:SAMPLE])


def count_and_first(conn: Connection, query: Select[Any], n: int) -> tuple[int, list[int]]:
    """How many ids `query` selects and the first `n` of them, in one run of it (a
    window count beside the ordered ids: the rule is not evaluated twice)."""
    matched = query.subquery()
    rows = conn.execute(
        select(matched.c.id, func.count().over()).order_by(matched.c.id).limit(n)
    ).all()
    return (int(rows[0][1]) if rows else 0), [int(pid) for pid, _ in rows]


def member_page(
    conn: Connection, segment: Segment, *, after: int | None, limit: int
) -> list[dict[str, Any]]:
    """Current members by membership id (a stable cursor), with when they entered."""
    query = (
        select(
            segment_memberships.c.id,
            segment_memberships.c.profile_id,
            segment_memberships.c.entered_at,
        )
        .where(
            segment_memberships.c.segment_id == segment.id,
            segment_memberships.c.exited_at.is_(None),
        )
        .order_by(segment_memberships.c.id)
        .limit(limit)
    )
    if after is not None:
        query = query.where(segment_memberships.c.id > after)
    return [
        {"id": int(r.id), "profile_id": int(r.profile_id), "entered_at": r.entered_at.isoformat()}
        for r in conn.execute(query)
    ]


def change_page(
    conn: Connection, segment: Segment, *, after: int | None, limit: int
) -> list[dict[str, Any]]:
    """The change log (entered/exited), oldest first: what sync reads with a cursor."""
    query = (
        select(segment_changes)
        .where(segment_changes.c.segment_id == segment.id)
        .order_by(segment_changes.c.id)
        .limit(limit)
    )
    if after is not None:
        query = query.where(segment_changes.c.id > after)
    return [
        {
            "id": int(r.id),
            "profile_id": int(r.profile_id),
            "change": r.change,
            "reason": r.reason,
            "at": r.at.isoformat(),
        }
        for r in conn.execute(query)
    ]


CSV_COLUMNS: Final = ("profile_id", "email", "phone", "user_id", "entered_at")


def members_csv(conn: Connection, segment: Segment, *, chunk: int = 5000) -> Iterator[str]:
    """Current members as CSV, one chunk of rows per string (for streaming)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    after: int | None = None
    while True:
        page = member_page(conn, segment, after=after, limit=chunk)
        held = _first_identifiers(conn, [row["profile_id"] for row in page])
        for row in page:
            mine = held.get(row["profile_id"], {})
            writer.writerow(
                (
                    row["profile_id"],
                    mine.get("email", ""),
                    mine.get("phone", ""),
                    mine.get("user_id", ""),
                    row["entered_at"],
                )
            )
        yield out.getvalue()
        out.seek(0)
        out.truncate()
        if len(page) < chunk:
            return
        after = page[-1]["id"]


def _first_identifiers(conn: Connection, ids: list[int]) -> dict[int, dict[str, str]]:
    found: dict[int, dict[str, str]] = {}
    if not ids:
        return found
    rows = conn.execute(
        select(identifiers.c.profile_id, identifiers.c.kind, identifiers.c.value)
        .where(
            identifiers.c.profile_id.in_(ids),
            identifiers.c.kind.in_(("email", "phone", "user_id")),
        )
        .order_by(identifiers.c.profile_id, identifiers.c.id)
    )
    for pid, kind, value in rows:
        found.setdefault(int(pid), {}).setdefault(kind, value)
    return found


def explain_sql(conn: Connection, segment: Segment, *, now: datetime | None = None) -> str:
    """The statement that selects `segment`'s members, with its values inlined."""
    now = now or utcnow()
    by_slug: Mapping[str, Segment] = {s.slug: s for s in list_segments(conn)} | {
        segment.slug: segment
    }
    query = members_query(segment, by_slug, now, facts=load_state(conn).for_compiler())
    compiled = query.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True})
    return str(compiled)


def explain_profile(
    conn: Connection, segment: Segment, profile_id: int, *, now: datetime | None = None
) -> dict[str, Any]:
    """For one profile: every part of the rule with whether it held, whether the
    profile is a member now, and (restricted segments) the guard's decision."""
    now = now or utcnow()
    views = load_profile_views(conn, [profile_id], now=now, policy=default_policy())
    if profile_id not in views:
        raise SegmentError("profile_id", f"no live profile {profile_id}", status=404)
    current = set(
        conn.scalars(
            select(segment_memberships.c.segment_id).where(
                segment_memberships.c.profile_id == profile_id,
                segment_memberships.c.exited_at.is_(None),
            )
        )
    )
    slugs = {s.id: s.slug for s in list_segments(conn)}
    member_of = {slugs[s] for s in current if s in slugs}
    steps = explain(segment.rule, views[profile_id], now, member_of.__contains__)
    out: dict[str, Any] = {
        "profile_id": profile_id,
        "at": now.isoformat(),
        "holds": steps[0].held,
        "conditions": [
            {"path": step.path or "/", "condition": step.condition, "held": step.held}
            for step in steps
        ],
    }
    restriction = segment.restriction
    if restriction is not None:
        decision = guard(load_facts(conn, [profile_id])[profile_id], restriction, now)
        out["guard"] = {"admitted": decision.admitted, "reasons": decision.reasons}
        out["holds"] = out["holds"] and decision.admitted
    return out
