"""Who is in each segment, kept current, with history and a change log for sync.

Three ways membership changes, one writer (`_apply`):

- **Real time** — `refresh_profiles` re-evaluates every segment for the profiles a
  processed batch touched (events, traits, consent, age), with the in-memory evaluator
  (`segments.evaluate`), in the batch's transaction.
- **A rule changes** — `evaluate_segment` runs the rule in the database
  (`segments.compile`) and applies the difference to the stored members, then does the
  same for the segments that use it.
- **Time passes** — an order ages out of a 90-day window, a birthday comes, consent
  expires. Each profile gets the next instant at which time alone could change one of
  its memberships (`segment_rechecks.due_at`); `run_due_rechecks` re-evaluates only
  the profiles that are due, so a scheduled pass touches the profiles that can change
  and no others.

Every entry and exit is a `segment_memberships` row (entered_at / exited_at: the
history) and a `segment_changes` row (the log sync reads with a cursor). A restricted
segment's members also pass the guard (compliance A-6).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Final

from sqlalchemy import ColumnElement, Connection, Select, delete, func, select, update

from guestlist.age.policy import AgePolicy, UnknownJurisdictionError, default_policy
from guestlist.guard import guard, load_facts
from guestlist.identity.merge import merge_step
from guestlist.segments.catalog import Segment, evaluation_order, list_computed, list_segments
from guestlist.segments.compile import Facts, compile_rule
from guestlist.segments.computed import ComputedTrait
from guestlist.segments.evaluate import ProfileView, evaluate
from guestlist.segments.facts import (
    FactsState,
    ensure_facts,
    load_state,
    mark_unbuilt,
    refresh_facts,
    set_fresh_until,
)
from guestlist.segments.profile_view import load_profile_views
from guestlist.segments.rules import (
    AgeCondition,
    ConsentCondition,
    EventCondition,
    OfAgeFor,
    Rule,
    dependencies,
    walk,
)
from guestlist.store.bulk import bulk_upsert_newer
from guestlist.store.tables import (
    age_state,
    computed_traits,
    consent_state,
    events,
    profiles,
    segment_changes,
    segment_memberships,
    segment_rechecks,
    segments,
    traits,
)
from guestlist.store.types import utcnow

CHUNK: Final = 2000  # profiles per evaluation round (and per IN list)
EPSILON: Final = timedelta(microseconds=1)


@dataclass(frozen=True)
class Catalog:
    """The stored segments in evaluation order, and what in them depends on time."""

    ordered: list[Segment]
    event_names: frozenset[str]
    windows: frozenset[tuple[str, int]]  # (event, within_days) pairs rules and traits use
    uses_age: bool
    uses_consent: bool
    computed: tuple[ComputedTrait, ...] = ()
    facts: FactsState = field(default_factory=FactsState)

    @property
    def empty(self) -> bool:
        return not self.ordered and not self.computed

    @classmethod
    def of(
        cls,
        stored: Sequence[Segment],
        computed: Sequence[ComputedTrait] = (),
        facts: FactsState | None = None,
    ) -> Catalog:
        ordered = evaluation_order(stored)
        facts = facts or FactsState()
        names: set[str] = {c.event for c in computed}
        # The facts' windows too: a row is fresh until its next recheck.
        windows: set[tuple[str, int]] = {
            (c.event, c.within_days) for c in computed if c.within_days is not None
        } | set(facts.windows)
        uses_age = facts.holds_ages  # such a row is fresh until the next birthday
        uses_consent = False
        for segment in ordered:
            if segment.restriction is not None:
                uses_age = uses_consent = True
            for _, node in walk(segment.rule):
                if isinstance(node, EventCondition):
                    names.add(node.event)
                    if node.within_days is not None:
                        windows.add((node.event, node.within_days))
                uses_age = uses_age or isinstance(node, AgeCondition | OfAgeFor)
                uses_consent = uses_consent or isinstance(node, ConsentCondition)
        return cls(
            ordered,
            frozenset(names),
            frozenset(windows),
            uses_age,
            uses_consent,
            tuple(computed),
            facts,
        )

    def with_facts(self, facts: FactsState) -> Catalog:
        return Catalog.of(self.ordered, self.computed, facts)

    @property
    def rules(self) -> list[Rule]:
        return [s.effective_rule for s in self.ordered]


def load_catalog(conn: Connection) -> Catalog:
    return Catalog.of(list_segments(conn), list_computed(conn), load_state(conn))


@dataclass
class Changes:
    """What one pass changed: (segment id, profile id) pairs."""

    entered: list[tuple[int, int]] = field(default_factory=list)
    exited: list[tuple[int, int]] = field(default_factory=list)
    checked: int = 0  # profiles evaluated

    def __len__(self) -> int:
        return len(self.entered) + len(self.exited)


# -- real time and rechecks ---------------------------------------------------------------


def refresh_profiles(
    conn: Connection,
    profile_ids: Iterable[int],
    *,
    now: datetime | None = None,
    reason: str = "event",
    catalog: Catalog | None = None,
    policy: AgePolicy | None = None,
) -> Changes:
    """Re-evaluate every segment for `profile_ids` and store what changed; merged,
    erased and unknown profiles leave every segment. Also sets each profile's next
    recheck."""
    catalog = catalog or load_catalog(conn)
    out = Changes()
    if catalog.empty:
        if catalog.facts.built:
            mark_unbuilt(conn)  # nothing keeps the facts rows from here on
        return out
    now = now or utcnow()
    policy = policy or default_policy()
    wanted = sorted(set(profile_ids))
    for i in range(0, len(wanted), CHUNK):
        ids = wanted[i : i + CHUNK]
        decided = _decide(conn, catalog, ids, now, policy)
        current = _current(conn, ids)
        changes = Changes(
            entered=sorted(decided - current),
            exited=sorted(current - decided),
        )
        _apply(conn, changes, now, reason)
        refresh_facts(conn, catalog.facts, ids, now)  # after computed traits are stored
        schedule_rechecks(conn, catalog, now, ids, policy=policy)
        out.entered += changes.entered
        out.exited += changes.exited
        out.checked += len(ids)
    return out


def _decide(
    conn: Connection, catalog: Catalog, ids: Sequence[int], now: datetime, policy: AgePolicy
) -> set[tuple[int, int]]:
    """(segment id, profile id) for every segment each live profile in `ids` is in."""
    views = load_profile_views(conn, ids, now=now, policy=policy, event_names=catalog.event_names)
    if catalog.computed:
        views = _with_computed(conn, catalog.computed, views, now)
    restricted = any(s.restriction is not None for s in catalog.ordered)
    facts = load_facts(conn, views) if restricted and views else {}
    decided: set[tuple[int, int]] = set()
    for pid, view in views.items():
        member: set[str] = set()
        for segment in catalog.ordered:
            held = evaluate(segment.rule, view, now, member.__contains__)
            restriction = segment.restriction
            if held and restriction is not None:
                held = guard(facts[pid], restriction, now).admitted
            if held:
                member.add(segment.slug)
                decided.add((segment.id, pid))
    return decided


def _with_computed(
    conn: Connection,
    computed: Sequence[ComputedTrait],
    views: dict[int, ProfileView],
    now: datetime,
) -> dict[int, ProfileView]:
    """Recompute the computed traits of `views`, store those that changed, and return
    the views with the new values (rules then see them)."""
    changed: list[dict[str, Any]] = []
    cleared: list[tuple[int, str]] = []
    out: dict[int, ProfileView] = {}
    for pid, view in views.items():
        values = dict(view.traits)
        for trait in computed:
            value = trait.compute(view.events, now)
            if value == values.get(trait.name) and (value is None) == (trait.name not in values):
                continue
            if value is None:
                values.pop(trait.name, None)
                cleared.append((pid, trait.name))
            else:
                values[trait.name] = value
                changed.append(
                    {
                        "profile_id": pid,
                        "name": trait.name,
                        "value": value,
                        "source_id": None,
                        "event_time": now,
                        "updated_at": now,
                    }
                )
        out[pid] = replace(view, traits=values) if values != view.traits else view
    if changed:
        bulk_upsert_newer(
            conn, traits, changed, key=("profile_id", "name"), time_column="event_time"
        )
    for pid, name in cleared:
        conn.execute(delete(traits).where(traits.c.profile_id == pid, traits.c.name == name))
    return out


def compute_everyone(conn: Connection, *, now: datetime | None = None) -> int:
    """Recompute every computed trait (and so every membership) for all live profiles
    (after a definition changes); returns how many profiles were evaluated."""
    now = now or utcnow()
    catalog = load_catalog(conn)
    catalog = catalog.with_facts(
        ensure_facts(conn, catalog.rules, has_catalog=not catalog.empty, now=now)
    )
    ids = [
        int(p)
        for p in conn.scalars(
            select(profiles.c.id).where(
                profiles.c.merged_into.is_(None), profiles.c.erased_at.is_(None)
            )
        )
    ]
    refresh_profiles(conn, ids, now=now, reason="rule", catalog=catalog)
    conn.execute(update(computed_traits).values(computed_at=now))
    return len(ids)


def _current(conn: Connection, ids: Sequence[int]) -> set[tuple[int, int]]:
    rows = conn.execute(
        select(segment_memberships.c.segment_id, segment_memberships.c.profile_id).where(
            segment_memberships.c.profile_id.in_(ids), segment_memberships.c.exited_at.is_(None)
        )
    )
    return {(int(s), int(p)) for s, p in rows}


def run_due_rechecks(
    conn: Connection, *, now: datetime | None = None, limit: int = 10_000
) -> Changes:
    """Re-evaluate the profiles whose time-based recheck is due (at most `limit`)."""
    now = now or utcnow()
    due = list(
        conn.scalars(
            select(segment_rechecks.c.profile_id)
            .where(segment_rechecks.c.due_at <= now)
            .order_by(segment_rechecks.c.due_at)
            .limit(limit)
        )
    )
    if not due:
        return Changes()
    conn.execute(delete(segment_rechecks).where(segment_rechecks.c.profile_id.in_(due)))
    done = refresh_profiles(conn, due, now=now, reason="schedule")
    done.checked = len(due)  # also when there are no segments left to evaluate
    return done


# -- full evaluation in the database --------------------------------------------------------


def evaluate_segment(
    conn: Connection,
    slug: str,
    *,
    now: datetime | None = None,
    reason: str = "rule",
    policy: AgePolicy | None = None,
) -> Changes:
    """Run `slug`'s rule in the database and make the stored members match, then do the
    same for every segment that uses it (their rules inline this one's)."""
    now = now or utcnow()
    policy = policy or default_policy()
    catalog = load_catalog(conn)
    by_slug = {s.slug: s for s in catalog.ordered}
    if slug not in by_slug:
        raise KeyError(slug)
    catalog = catalog.with_facts(ensure_facts(conn, catalog.rules, has_catalog=True, now=now))
    rows = catalog.facts.for_compiler()
    affected = _users_closure(catalog, slug)
    out = Changes()
    for segment in catalog.ordered:  # dependencies first
        if segment.slug not in affected:
            continue
        query = members_query(segment, by_slug, now, policy, facts=rows)
        selected: set[int] = set(conn.scalars(query))
        restriction = segment.restriction
        if restriction is not None and selected:
            facts = load_facts(conn, selected)
            selected = {p for p in selected if guard(facts[p], restriction, now).admitted}
        current = set(
            conn.scalars(
                select(segment_memberships.c.profile_id).where(
                    segment_memberships.c.segment_id == segment.id,
                    segment_memberships.c.exited_at.is_(None),
                )
            )
        )
        changes = Changes(
            entered=[(segment.id, p) for p in sorted(selected - current)],
            exited=[(segment.id, p) for p in sorted(current - selected)],
        )
        _apply(conn, changes, now, reason)
        conn.execute(update(segments).where(segments.c.id == segment.id).values(evaluated_at=now))
        out.entered += changes.entered
        out.exited += changes.exited
    schedule_rechecks(conn, catalog, now, None, policy=policy)
    return out


def members_query(
    segment: Segment,
    by_slug: Mapping[str, Segment],
    now: datetime,
    policy: AgePolicy | None = None,
    *,
    facts: Facts | None = None,
) -> Select[Any]:
    """SELECT the ids of the profiles `segment`'s rule (with the guard's conditions
    when restricted) selects at `now`; the guard's last word is not in it."""
    return compile_rule(
        segment.effective_rule,
        now=now,
        resolve_segment=lambda s: by_slug[s].effective_rule,
        policy=policy,
        facts=facts,
    )


def _users_closure(catalog: Catalog, slug: str) -> set[str]:
    affected = {slug}
    changed = True
    while changed:
        changed = False
        for segment in catalog.ordered:
            if segment.slug not in affected and dependencies(segment.rule) & affected:
                affected.add(segment.slug)
                changed = True
    return affected


# -- writing --------------------------------------------------------------------------------


def _apply(conn: Connection, changes: Changes, now: datetime, reason: str) -> None:
    if changes.entered:
        conn.execute(
            segment_memberships.insert(),
            [{"segment_id": s, "profile_id": p, "entered_at": now} for s, p in changes.entered],
        )
    if changes.exited:
        by_segment: dict[int, list[int]] = defaultdict(list)
        for s, p in changes.exited:
            by_segment[s].append(p)
        for s, pids in by_segment.items():
            for i in range(0, len(pids), CHUNK):
                conn.execute(
                    update(segment_memberships)
                    .where(
                        segment_memberships.c.segment_id == s,
                        segment_memberships.c.profile_id.in_(pids[i : i + CHUNK]),
                        segment_memberships.c.exited_at.is_(None),
                    )
                    .values(exited_at=now)
                )
    log = [
        {"segment_id": s, "profile_id": p, "change": "entered", "reason": reason, "at": now}
        for s, p in changes.entered
    ] + [
        {"segment_id": s, "profile_id": p, "change": "exited", "reason": reason, "at": now}
        for s, p in changes.exited
    ]
    if log:
        conn.execute(segment_changes.insert(), log)


# -- when time alone can change a membership ------------------------------------------------


def schedule_rechecks(
    conn: Connection,
    catalog: Catalog,
    now: datetime,
    profile_ids: Sequence[int] | None,
    *,
    policy: AgePolicy | None = None,
) -> None:
    """Set `segment_rechecks.due_at` for `profile_ids` (None: every profile) to the
    next instant after `now` at which an event leaves a window the rules use, a
    birthday (or 1 January, for calendar-year rules) changes an age, or granted
    consent expires; profiles with no such instant get no row."""
    policy = policy or default_policy()
    due: dict[int, datetime] = {}

    def sooner(pid: int, at: datetime) -> None:
        if at > now and (pid not in due or at < due[pid]):
            due[pid] = at

    def scoped(query: Select[Any], column: ColumnElement[Any]) -> Select[Any]:
        return query if profile_ids is None else query.where(column.in_(profile_ids))

    for name, days in sorted(catalog.windows):
        window = timedelta(days=days)
        query = (
            select(events.c.profile_id, func.min(events.c.timestamp))
            .where(
                events.c.name == name, events.c.type == "track", events.c.timestamp >= now - window
            )
            .group_by(events.c.profile_id)
        )
        for pid, oldest in conn.execute(scoped(query, events.c.profile_id)):
            if oldest is not None:
                sooner(int(pid), _aware(oldest) + window + EPSILON)
    if catalog.uses_age:
        dobs = select(age_state.c.profile_id, age_state.c.dob, age_state.c.jurisdiction).where(
            age_state.c.dob.is_not(None)
        )
        for pid, dob, jurisdiction in conn.execute(scoped(dobs, age_state.c.profile_id)):
            sooner(int(pid), next_age_change(dob, jurisdiction, now, policy))
    if catalog.uses_consent:
        expiries = (
            select(consent_state.c.profile_id, func.min(consent_state.c.expires_at))
            .where(consent_state.c.status == "granted", consent_state.c.expires_at > now)
            .group_by(consent_state.c.profile_id)
        )
        for pid, expires in conn.execute(scoped(expiries, consent_state.c.profile_id)):
            if expires is not None:
                sooner(int(pid), _aware(expires))

    if profile_ids is None:
        # A recheck already due (a consent click marked it) stays: only its profile's
        # re-evaluation clears it.
        conn.execute(delete(segment_rechecks).where(segment_rechecks.c.due_at > now))
        pending = set(conn.scalars(select(segment_rechecks.c.profile_id)))
        due = {pid: at for pid, at in due.items() if pid not in pending}
    else:
        for i in range(0, len(profile_ids), CHUNK):
            chunk = profile_ids[i : i + CHUNK]
            conn.execute(delete(segment_rechecks).where(segment_rechecks.c.profile_id.in_(chunk)))
    rows = [{"profile_id": pid, "due_at": at} for pid, at in sorted(due.items())]
    for i in range(0, len(rows), 10_000):
        conn.execute(segment_rechecks.insert(), rows[i : i + 10_000])
    set_fresh_until(conn, profile_ids, now)


def next_age_change(
    dob: date, jurisdiction: str | None, now: datetime, policy: AgePolicy
) -> datetime:
    """The first instant after `now` at which an age worked out from `dob` can change:
    midnight of a birthday (29 February also on 28 February and 1 March, the two
    readings jurisdictions use) or of 1 January (calendar-year rows), both in UTC
    (`age` conditions) and in the jurisdiction's zone (`of_age_for`)."""
    zones = [UTC]
    if jurisdiction:
        with suppress(UnknownJurisdictionError, ValueError):
            zones.append(policy.zone(jurisdiction))  # type: ignore[arg-type]
    best: datetime | None = None
    for year in range(now.year - 1, now.year + 2):
        days = [date(year, 1, 1)]
        if dob.month == 2 and dob.day == 29:
            days += [date(year, 2, 28), date(year, 3, 1)]
            if year % 4 == 0 and (year % 100 != 0 or year % 400 == 0):
                days.append(date(year, 2, 29))
        else:
            days.append(dob.replace(year=year))
        for day in days:
            for zone in zones:
                at = datetime.combine(day, time(), zone).astimezone(UTC)
                if at > now and (best is None or at < best):
                    best = at
    assert best is not None  # 1 January of next year is always ahead
    return best


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


# -- merges ------------------------------------------------------------------------------


@merge_step("segment_memberships")
def _merge_memberships(conn: Connection, survivor: int, merged: int) -> None:
    """The merged profile leaves its segments (logged, so sync removes it); its history
    moves to the survivor, whose memberships the batch then re-evaluates (a recheck
    is set due now in case nothing else does)."""
    now = utcnow()
    open_ids = [
        int(s)
        for s in conn.scalars(
            select(segment_memberships.c.segment_id).where(
                segment_memberships.c.profile_id == merged,
                segment_memberships.c.exited_at.is_(None),
            )
        )
    ]
    _apply(conn, Changes(exited=[(s, merged) for s in open_ids]), now, "merge")
    conn.execute(
        update(segment_memberships)
        .where(segment_memberships.c.profile_id == merged)
        .values(profile_id=survivor)
    )


@merge_step("segment_changes")
def _keep_change_log(conn: Connection, survivor: int, merged: int) -> None:
    """The log says who entered and exited as they were then: it does not move."""


@merge_step("segment_rechecks")
def _merge_rechecks(conn: Connection, survivor: int, merged: int) -> None:
    now = utcnow()
    conn.execute(
        delete(segment_rechecks).where(segment_rechecks.c.profile_id.in_([survivor, merged]))
    )
    conn.execute(segment_rechecks.insert().values(profile_id=survivor, due_at=now))


# -- reading ------------------------------------------------------------------------------


def member_count(conn: Connection, segment_id: int) -> int:
    return int(
        conn.scalar(
            select(func.count())
            .select_from(segment_memberships)
            .where(
                segment_memberships.c.segment_id == segment_id,
                segment_memberships.c.exited_at.is_(None),
            )
        )
        or 0
    )


def size_history(conn: Connection, segment_id: int) -> list[tuple[date, int]]:
    """Members at the end of each day on which the segment changed, oldest first."""
    delta: dict[date, int] = defaultdict(int)
    for entered, exited in conn.execute(
        select(segment_memberships.c.entered_at, segment_memberships.c.exited_at).where(
            segment_memberships.c.segment_id == segment_id
        )
    ):
        delta[_aware(entered).date()] += 1
        if exited is not None:
            delta[_aware(exited).date()] -= 1
    size = 0
    out: list[tuple[date, int]] = []
    for day in sorted(delta):
        size += delta[day]
        out.append((day, size))
    return out
