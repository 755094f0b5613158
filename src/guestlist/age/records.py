"""Age evidence per profile: append-only records and the state derived from them.

`age_records` keeps every statement of age — a date of birth (or none, for a gate),
the verification level, how and by whom it was established — and never changes.
`age_state` holds, per profile, what the guard and segments judge by: the date of
birth that wins (A-5: the higher level, at equal level the youngest), its level, the
jurisdiction it is judged in, and whether the records disagree. It is recomputed from
the records whenever they or the profile's address change, and on merges.

The jurisdiction is the winning record's (its region, else its country), else the
profile's `address` trait, else the `default_jurisdiction` setting, else unknown
(NULL), which is never eligible. See docs/age.md.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import orjson
from sqlalchemy import Connection, delete, select

from guestlist.age.conflicts import DobClaim, resolve_dob
from guestlist.age.levels import VerificationLevel
from guestlist.age.names import parse_jurisdiction
from guestlist.age.places import AddressPlace, address_place
from guestlist.audit import SYSTEM
from guestlist.identity.merge import merge_step
from guestlist.settings import get_settings
from guestlist.store.bulk import allocate_ids, bulk_insert
from guestlist.store.tables import age_records, age_state, audit_log, traits
from guestlist.store.types import utcnow

CHUNK = 5000  # bound on IN (...) lists
ADDRESS_TRAIT = "address"


@dataclass(frozen=True)
class AgeStatement:
    """One statement of age, ready to append (rule A-3: the outcome, never an image).

    `dob` is None for a level without a date (an "I am over 21" gate), which is kept
    as evidence but never makes anyone eligible.
    """

    dob: date | None
    level: VerificationLevel
    event_time: datetime
    method: str | None = None  # e.g. id_scan, pos_scan, birthday_trait
    provider: str | None = None  # e.g. Veratad, AgeChecker.net
    reference: str | None = None  # the provider's transaction or check id
    country: str | None = None  # ISO 3166-1 alpha-2
    region: str | None = None  # ISO 3166-2, e.g. CA-QC
    source_id: int | None = None
    message_id: str | None = None
    recorded_by: str | None = None  # staff or system that recorded it
    received_at: datetime | None = None

    def __post_init__(self) -> None:
        if self.event_time.tzinfo is None or self.event_time.utcoffset() is None:
            raise ValueError("event_time must be timezone-aware")
        if self.country is not None and (
            len(self.country) != 2 or parse_jurisdiction(self.country) != self.country
        ):
            raise ValueError(f"country {self.country!r} is not an upper-case alpha-2 code")
        if self.region is not None:
            if parse_jurisdiction(self.region) != self.region or "-" not in self.region:
                raise ValueError(f"region {self.region!r} is not an ISO 3166-2 code")
            if self.country is not None and not self.region.startswith(f"{self.country}-"):
                raise ValueError(f"region {self.region} is not in country {self.country}")

    @property
    def jurisdiction(self) -> str | None:
        """Where the statement places the person: its region, else its country."""
        return self.region or self.country


@dataclass(frozen=True, slots=True)
class AgeRecord:
    """A stored statement, as the state is derived from it."""

    id: int
    dob: date | None
    level: VerificationLevel
    event_time: datetime
    country: str | None
    region: str | None

    @property
    def jurisdiction(self) -> str | None:
        return self.region or self.country


@dataclass(frozen=True)
class AgeState:
    """What a profile is judged by (one `age_state` row)."""

    profile_id: int
    dob: date | None
    level: VerificationLevel | None
    jurisdiction: str | None  # None: unknown, never eligible
    jurisdiction_from: str | None  # record | address | default | None
    conflict: bool  # the records give different dates of birth (A-5: flag it)
    record_id: int | None  # the record that decides (dob and level)
    conflicting: tuple[int, ...] = ()  # records whose date differs from the winner's

    def detail(self) -> dict[str, Any]:
        """The `detail` column; a null origin and no conflicting records are left out
        (most rows: `age_state_of` reads them back as absent)."""
        out: dict[str, Any] = {"record_id": self.record_id}
        if self.jurisdiction_from is not None:
            out["jurisdiction_from"] = self.jurisdiction_from
        if self.conflicting:
            out["conflicting_record_ids"] = list(self.conflicting)
        return out


def derive_age_state(
    profile_id: int,
    records: Iterable[AgeRecord],
    address: AddressPlace,
    default_jurisdiction: str | None,
) -> AgeState | None:
    """The state for a profile's records; None when it has none.

    Dated records compete by `resolve_dob` (level, then the youngest; full ties go to
    the later event time, then the later record). A profile with only undated records
    gets the highest of their levels and no date of birth.
    """
    records = list(records)
    if not records:
        return None
    if len(records) == 1:  # most profiles: nothing to resolve
        winner = records[0]
        return _state(profile_id, winner, (), address, default_jurisdiction)
    dated = {_claim_source(r): r for r in records if r.dob is not None}
    resolution = resolve_dob(
        DobClaim(r.dob, r.level, source, r.event_time)
        for source, r in dated.items()
        if r.dob is not None
    )
    if resolution.winner is not None:
        winner = dated[resolution.winner.source]
        conflicting = tuple(sorted(dated[c.source].id for c in resolution.conflicting))
    else:
        winner = max(records, key=lambda r: (r.level.rank, r.event_time, r.id))
        conflicting = ()
    return _state(profile_id, winner, conflicting, address, default_jurisdiction)


def _state(
    profile_id: int,
    winner: AgeRecord,
    conflicting: tuple[int, ...],
    address: AddressPlace,
    default_jurisdiction: str | None,
) -> AgeState:
    jurisdiction, origin = winner.jurisdiction, "record"
    if jurisdiction is None:
        if address.placed:
            jurisdiction, origin = address.jurisdiction, "address"
        elif default_jurisdiction is not None:
            jurisdiction, origin = default_jurisdiction, "default"
    return AgeState(
        profile_id=profile_id,
        dob=winner.dob,
        level=winner.level,
        jurisdiction=jurisdiction,
        jurisdiction_from=origin if jurisdiction is not None else None,
        conflict=bool(conflicting),
        record_id=winner.id,
        conflicting=conflicting,
    )


def _claim_source(record: AgeRecord) -> str:
    # resolve_dob breaks full ties by source name: zero-padding makes the later record win.
    return f"{record.id:020d}"


def default_jurisdiction() -> str | None:
    """The `default_jurisdiction` setting, canonical (GUESTLIST_DEFAULT_JURISDICTION)."""
    value = get_settings().default_jurisdiction
    return parse_jurisdiction(value) if value else None


# -- appending ----------------------------------------------------------------------


@dataclass
class _Pending:
    """What one call appends: statements and address changes, each with its profile."""

    statements: list[tuple[int, AgeStatement]] = field(default_factory=list)
    # Address trait values set by this batch, in order: (profile, value, event time).
    addresses: list[tuple[int, Any, datetime]] = field(default_factory=list)
    # Profiles created by this batch hold nothing stored yet.
    new_profiles: set[int] = field(default_factory=set)


def append_age_record(conn: Connection, profile_id: int, statement: AgeStatement) -> int:
    """Append one statement and recompute the profile's age state; returns the record id.

    Writes an `age.recorded` audit entry with the level and the outcome (never the
    date of birth).
    """
    return append_age_records(conn, [(profile_id, statement)])[0]


def append_age_records(
    conn: Connection,
    statements: Sequence[tuple[int, AgeStatement]],
    *,
    addresses: Sequence[tuple[int, Any, datetime]] = (),
    new_profiles: Iterable[int] = (),
) -> list[int]:
    """`append_age_record` for many statements at once (the pipeline's path).

    `addresses` are address trait values the same transaction is about to store
    (profile, value, event time), so the state is judged by the address the profile
    will hold; profiles in `new_profiles` are known to hold nothing stored yet.
    """
    pending = _Pending(list(statements), list(addresses), set(new_profiles))
    return _append(conn, pending)


def _append(conn: Connection, pending: _Pending) -> list[int]:
    now = utcnow()
    touched = {pid for pid, _ in pending.statements} | {pid for pid, _, _ in pending.addresses}
    stored = _load_records(conn, touched - pending.new_profiles)
    ids = allocate_ids(conn, age_records, len(pending.statements))
    rows: list[dict[str, Any]] = []
    for record_id, (pid, st) in zip(ids, pending.statements, strict=True):
        rows.append(
            {
                "id": record_id,
                "profile_id": pid,
                # ISO text: what SQLAlchemy writes for a Date on SQLite, and COPY reads.
                "dob": None if st.dob is None else st.dob.isoformat(),
                "level": st.level.value,
                "method": st.method,
                "provider": st.provider,
                "reference": st.reference,
                "country": st.country,
                "region": st.region,
                "source_id": st.source_id,
                "message_id": st.message_id,
                "recorded_by": st.recorded_by,
                "event_time": st.event_time,
                "received_at": st.received_at or now,
            }
        )
        stored[pid].append(
            AgeRecord(record_id, st.dob, st.level, st.event_time, st.country, st.region)
        )
    bulk_insert(conn, age_records, rows)
    # Only profiles holding records have a state; an address alone changes nothing.
    profiles = [pid for pid in touched if stored.get(pid)]
    places = _address_places(conn, profiles, pending)
    states = _write_states(
        conn,
        {pid: stored[pid] for pid in profiles},
        places,
        new_profiles=pending.new_profiles,
    )
    _audit(conn, ids, pending.statements, states, now)
    return ids


def _load_records(
    conn: Connection, profile_ids: Iterable[int]
) -> defaultdict[int, list[AgeRecord]]:
    out: defaultdict[int, list[AgeRecord]] = defaultdict(list)
    wanted = sorted(profile_ids)
    for i in range(0, len(wanted), CHUNK):
        for r in conn.execute(
            select(
                age_records.c.id,
                age_records.c.profile_id,
                age_records.c.dob,
                age_records.c.level,
                age_records.c.event_time,
                age_records.c.country,
                age_records.c.region,
            ).where(age_records.c.profile_id.in_(wanted[i : i + CHUNK]))
        ):
            out[int(r.profile_id)].append(
                AgeRecord(
                    int(r.id),
                    r.dob,
                    VerificationLevel.parse(r.level),
                    r.event_time,
                    r.country,
                    r.region,
                )
            )
    return out


def _stored_addresses(
    conn: Connection, profile_ids: Sequence[int]
) -> dict[int, tuple[Any, datetime]]:
    out: dict[int, tuple[Any, datetime]] = {}
    for i in range(0, len(profile_ids), CHUNK):
        for r in conn.execute(
            select(traits.c.profile_id, traits.c.value, traits.c.event_time).where(
                traits.c.profile_id.in_(profile_ids[i : i + CHUNK]),
                traits.c.name == ADDRESS_TRAIT,
            )
        ):
            out[int(r.profile_id)] = (r.value, r.event_time)
    return out


def _address_places(
    conn: Connection, profile_ids: Sequence[int], pending: _Pending
) -> dict[int, AddressPlace]:
    """The address each profile will hold once the batch's traits are stored: the
    latest by event time, a later arrival winning a tie (the trait rule)."""
    wanted = set(profile_ids)
    held = _stored_addresses(conn, [p for p in profile_ids if p not in pending.new_profiles])
    for pid, value, at in pending.addresses:
        if pid in wanted and (pid not in held or at >= held[pid][1]):
            held[pid] = (value, at)
    default = default_jurisdiction()
    return {
        pid: address_place(held[pid][0] if pid in held else None, default=default)
        for pid in profile_ids
    }


# An age_state row as compared and written: (dob, level, jurisdiction, conflict, detail).
_StateRow = tuple[date | None, str | None, str | None, bool, str]


def _state_row(state: AgeState) -> _StateRow:
    return (
        state.dob,
        None if state.level is None else state.level.value,
        state.jurisdiction,
        state.conflict,
        orjson.dumps(state.detail()).decode(),
    )


def _stored_states(conn: Connection, profile_ids: Sequence[int]) -> dict[int, _StateRow]:
    out: dict[int, _StateRow] = {}
    for i in range(0, len(profile_ids), CHUNK):
        for r in conn.execute(
            select(
                age_state.c.profile_id,
                age_state.c.dob,
                age_state.c.level,
                age_state.c.jurisdiction,
                age_state.c.conflict,
                age_state.c.detail,
            ).where(age_state.c.profile_id.in_(profile_ids[i : i + CHUNK]))
        ):
            out[int(r.profile_id)] = (r.dob, r.level, r.jurisdiction, bool(r.conflict), r.detail)
    return out


def _write_states(
    conn: Connection,
    records: Mapping[int, Sequence[AgeRecord]],
    places: Mapping[int, AddressPlace],
    *,
    new_profiles: Iterable[int] = (),
) -> dict[int, AgeState]:
    """Derive the state of these profiles and write the age_state rows that change.

    A state equal to the stored row (an address restated, an older statement that
    decides nothing) writes nothing, so `updated_at` is when the state last changed.
    `new_profiles`, created in this transaction, have no row to compare or replace.
    """
    default = default_jurisdiction()
    states: dict[int, AgeState] = {}
    rows: dict[int, _StateRow] = {}
    for pid, held in records.items():
        state = derive_age_state(pid, held, places[pid], default)
        if state is not None:
            states[pid] = state
            rows[pid] = _state_row(state)
    fresh = set(new_profiles)
    stored = _stored_states(conn, sorted(pid for pid in records if pid not in fresh))
    changed = [pid for pid, row in rows.items() if stored.get(pid) != row]
    stale = sorted(pid for pid in changed if pid in stored)
    for i in range(0, len(stale), CHUNK):
        conn.execute(delete(age_state).where(age_state.c.profile_id.in_(stale[i : i + CHUNK])))
    now = utcnow()
    written: list[dict[str, Any]] = []
    for pid in changed:
        dob, level, jurisdiction, conflict, detail = rows[pid]
        written.append(
            {
                "profile_id": pid,
                "dob": None if dob is None else dob.isoformat(),  # as for age_records
                "level": level,
                "jurisdiction": jurisdiction,
                "conflict": conflict,
                "detail": detail,
                "updated_at": now,
            }
        )
    bulk_insert(conn, age_state, written)
    return states


def _audit(
    conn: Connection,
    ids: Sequence[int],
    statements: Sequence[tuple[int, AgeStatement]],
    states: Mapping[int, AgeState],
    now: datetime,
) -> None:
    """One `age.recorded` entry per record (P-6), with its level and outcome; the date
    of birth stays out of the audit log."""
    rows = []
    for record_id, (pid, st) in zip(ids, statements, strict=True):
        state = states.get(pid)
        if st.dob is None:
            outcome = "undated"  # evidence only: no date of birth to judge by
        elif state is not None and state.record_id == record_id:
            outcome = "decides"  # this record's date of birth now counts
        else:
            outcome = "outranked"  # another record's date of birth counts
        rows.append(
            {
                "at": now,
                "actor": st.recorded_by or SYSTEM,
                "action": "age.recorded",
                "profile_id": pid,
                "detail": {
                    "record_id": record_id,
                    "level": st.level.value,
                    "method": st.method,
                    "provider": st.provider,
                    "jurisdiction": st.jurisdiction,
                    "outcome": outcome,
                    "conflict": bool(state and state.conflict),
                    "state_level": None if state is None or state.level is None
                    else state.level.value,
                    "state_jurisdiction": None if state is None else state.jurisdiction,
                },
                "reason": None,
            }
        )
    # The rows `audit()` writes, in one statement: a batch may hold thousands.
    bulk_insert(conn, audit_log, rows)


# -- reading and recomputing --------------------------------------------------------


def age_state_of(conn: Connection, profile_id: int) -> AgeState | None:
    """The stored state of one profile, or None when it holds no age records."""
    r = conn.execute(select(age_state).where(age_state.c.profile_id == profile_id)).first()
    if r is None:
        return None
    detail = orjson.loads(r.detail) if r.detail else {}
    return AgeState(
        profile_id=profile_id,
        dob=r.dob,
        level=None if r.level is None else VerificationLevel.parse(r.level),
        jurisdiction=r.jurisdiction,
        jurisdiction_from=detail.get("jurisdiction_from"),
        conflict=bool(r.conflict),
        record_id=detail.get("record_id"),
        conflicting=tuple(detail.get("conflicting_record_ids", ())),
    )


def recompute_age_state(conn: Connection, profile_ids: Iterable[int]) -> dict[int, AgeState]:
    """Derive the state of these profiles again from their records and stored address
    (after the `default_jurisdiction` setting changes, for instance)."""
    wanted = sorted(set(profile_ids))
    records = _load_records(conn, wanted)
    places = _address_places(conn, [p for p in wanted if records.get(p)], _Pending())
    stale = [p for p in wanted if not records.get(p)]
    for i in range(0, len(stale), CHUNK):
        conn.execute(delete(age_state).where(age_state.c.profile_id.in_(stale[i : i + CHUNK])))
    return _write_states(conn, {p: records[p] for p in wanted if records.get(p)}, places)


@merge_step("age_state")
def _merge_age_state(conn: Connection, survivor: int, merged: int) -> None:
    """Derive the survivor's state from the records of both (A-5 across sources),
    judged by the address the merged profile will keep: the later by event time, the
    survivor's on a tie (the traits merge rule)."""
    both = _load_records(conn, [survivor, merged])
    records = both.get(survivor, []) + both.get(merged, [])
    conn.execute(delete(age_state).where(age_state.c.profile_id.in_([survivor, merged])))
    if not records:
        return
    addresses = _stored_addresses(conn, [survivor, merged])
    held = addresses.get(survivor)
    theirs = addresses.get(merged)
    if theirs is not None and (held is None or theirs[1] > held[1]):
        held = theirs
    place = address_place(held[0] if held else None, default=default_jurisdiction())
    _write_states(conn, {survivor: records}, {survivor: place})
