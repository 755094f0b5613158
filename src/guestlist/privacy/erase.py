"""Erasure (compliance P-2, P-3, P-3a): remove a person's data, keep only what must stay.

`erase_profile` runs in the caller's transaction and, for the profile an id stands for
now (merges followed) and every profile merged into it:

- queues one `privacy.erase_at_connection` job per destination that holds the person
  (`profile_links`), so the erasure reaches them too;
- suppresses every email address and phone number the person held (HMAC only);
- deletes their rows from every profile-scoped table (`profile_scoped_tables()`, so a
  table added later is covered without being named here), and the merge records that
  name them;
- reduces their consent records to the hashed identifier and the proof (P-3a): the
  address, IP, user agent and free-form proof are blanked, and the hash chain still
  verifies;
- strips their messages from the raw inbox envelopes they arrived in;
- keeps the profile rows as tombstones (`erased_at` set), so old ids answer "erased"
  rather than "unknown", and writes one `profile.erased` audit entry without the
  erased data.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
import structlog
from sqlalchemy import Connection, Engine, Table, delete, or_, select, text, update

from guestlist.audit import SYSTEM, audit
from guestlist.consent.ledger import IDENTIFIER_KIND
from guestlist.jobs.registry import job_handler
from guestlist.pipeline import PIPELINE_LOCK
from guestlist.privacy.suppression import SUPPRESSED_CHANNELS, suppress_address
from guestlist.store.tables import (
    consent_records,
    events,
    identifiers,
    inbox,
    profile_links,
    profile_merges,
    profile_scoped_tables,
    profiles,
)
from guestlist.store.types import utcnow

log = structlog.get_logger(__name__)

ERASE_AT_CONNECTION = "privacy.erase_at_connection"
SUPPRESSION_REASON = "erasure"
# The personal columns of a consent record that erasure blanks (see consent.ledger).
CONSENT_PERSONAL_COLUMNS = ("identifier", "ip", "user_agent", "proof")
_CHUNK = 5000
# Envelope headers that say nothing about who sent it (kept when an envelope is edited).
_NEUTRAL_HEADERS = frozenset({"content-type", "content-encoding"})


class ProfileNotFound(LookupError):
    """No profile has this id."""

    def __init__(self, profile_id: int) -> None:
        super().__init__(f"no profile {profile_id}")
        self.profile_id = profile_id


class ProfileAlreadyErased(ValueError):
    """The profile (or the one it was merged into) was erased before."""

    def __init__(self, profile_id: int, erased_at: datetime) -> None:
        super().__init__(f"profile {profile_id} was already erased at {erased_at.isoformat()}")
        self.profile_id = profile_id
        self.erased_at = erased_at


@dataclass(frozen=True)
class DestinationJob:
    job_id: int | None  # None: a job for this link was already queued
    connection: str


@dataclass
class ErasureReport:
    """What an erasure did, without the erased data."""

    requested_id: int
    profile_id: int  # the live profile the requested id stood for
    erased_profile_ids: list[int]  # it and every profile merged into it
    erased_at: datetime
    rows_deleted: dict[str, int] = field(default_factory=dict)
    consent_records_reduced: int = 0
    addresses_suppressed: int = 0
    suppressions_added: int = 0
    inbox_envelopes_redacted: int = 0
    destination_jobs: list[DestinationJob] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "requested_id": self.requested_id,
            "profile_id": self.profile_id,
            "erased_profile_ids": self.erased_profile_ids,
            "erased_at": self.erased_at.isoformat(),
            "rows_deleted": self.rows_deleted,
            "consent_records_reduced": self.consent_records_reduced,
            "addresses_suppressed": self.addresses_suppressed,
            "suppressions_added": self.suppressions_added,
            "inbox_envelopes_redacted": self.inbox_envelopes_redacted,
            "destination_jobs": [
                {"job_id": j.job_id, "connection": j.connection} for j in self.destination_jobs
            ],
        }


@dataclass(frozen=True)
class ProfileGroup:
    """A live profile and the profiles merged into it: one person."""

    requested_id: int
    profile_id: int
    ids: list[int]
    erased_at: datetime | None


def profile_group(conn: Connection, profile_id: int) -> ProfileGroup:
    """The person an id stands for now (merges followed); raises ProfileNotFound."""
    row = conn.execute(
        select(profiles.c.id, profiles.c.merged_into).where(profiles.c.id == profile_id)
    ).first()
    if row is None:
        raise ProfileNotFound(profile_id)
    live = int(row.merged_into) if row.merged_into is not None else int(row.id)
    erased_at = conn.scalar(select(profiles.c.erased_at).where(profiles.c.id == live))
    merged = conn.scalars(
        select(profiles.c.id).where(profiles.c.merged_into == live).order_by(profiles.c.id)
    )
    return ProfileGroup(profile_id, live, [live, *(int(i) for i in merged)], erased_at)


def erase_profile(
    conn: Connection, profile_id: int, *, actor: str, reason: str | None
) -> ErasureReport:
    """Erase the person `profile_id` stands for (see the module docstring).

    Raises ProfileNotFound for an unknown id and ProfileAlreadyErased when it was
    erased before. Runs in the caller's transaction: commit to make it happen.
    """
    if conn.dialect.name == "postgresql":
        # The pipeline holds this lock while it resolves and applies a batch, so no
        # batch attaches anything to the person half-way through the erasure.
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PIPELINE_LOCK})
    group = profile_group(conn, profile_id)
    if group.erased_at is not None:
        raise ProfileAlreadyErased(group.profile_id, group.erased_at)
    now = utcnow()
    report = ErasureReport(
        requested_id=profile_id,
        profile_id=group.profile_id,
        erased_profile_ids=group.ids,
        erased_at=now,
    )
    ids = group.ids
    report.destination_jobs = _queue_destination_jobs(conn, group, now)
    addresses = _addresses(conn, ids)
    report.addresses_suppressed = len(addresses)
    for kind, identifier_key in sorted(addresses):
        report.suppressions_added += suppress_address(
            conn, kind, identifier_key, reason=SUPPRESSION_REASON, actor=actor
        )
    report.inbox_envelopes_redacted = _redact_inbox(conn, ids)
    for table in profile_scoped_tables():
        step = _erasure_steps.get(table.name, _delete_rows)
        count = step(conn, table, ids)
        if table.name == consent_records.name:
            report.consent_records_reduced = count
        else:
            report.rows_deleted[table.name] = count
    conn.execute(update(profiles).where(profiles.c.id.in_(ids)).values(erased_at=now))
    audit(
        conn,
        "profile.erased",
        actor=actor,
        profile_id=group.profile_id,
        reason=reason,
        at=now,
        detail={k: v for k, v in report.as_dict().items() if k not in ("profile_id", "erased_at")},
    )
    log.info("privacy.erased", profile_id=group.profile_id, actor=actor)
    return report


# -- per table ------------------------------------------------------------------------

ErasureStep = Callable[[Connection, Table, Sequence[int]], int]


def _delete_rows(conn: Connection, table: Table, ids: Sequence[int]) -> int:
    return int(conn.execute(delete(table).where(table.c.profile_id.in_(ids))).rowcount or 0)


def _reduce_consent_records(conn: Connection, table: Table, ids: Sequence[int]) -> int:
    """P-3a: keep each record with its hashes, text, time, source and proof columns;
    blank the personal ones. Their HMAC (`personal_hash`) stays, so the chain verifies."""
    result = conn.execute(
        update(table)
        .where(table.c.profile_id.in_(ids))
        .values({name: None for name in CONSENT_PERSONAL_COLUMNS})
    )
    return int(result.rowcount or 0)


def _delete_merges(conn: Connection, table: Table, ids: Sequence[int]) -> int:
    """Merge records name both profiles and the identifier the merge ran through."""
    result = conn.execute(
        delete(table).where(or_(table.c.profile_id.in_(ids), table.c.merged_profile_id.in_(ids)))
    )
    return int(result.rowcount or 0)


# Tables that need more than deleting their rows, by name; every other profile-scoped
# table (including ones added later) has its rows deleted.
_erasure_steps: dict[str, ErasureStep] = {
    consent_records.name: _reduce_consent_records,
    profile_merges.name: _delete_merges,
}


# -- what else erasure touches ------------------------------------------------------


def _addresses(conn: Connection, ids: Sequence[int]) -> set[tuple[str, str]]:
    """Every email and phone the person held: as identifiers, and as the addresses
    their consent was given for."""
    found = {
        (r.kind, r.key)
        for r in conn.execute(
            select(identifiers.c.kind, identifiers.c.key).where(
                identifiers.c.profile_id.in_(ids),
                identifiers.c.kind.in_(list(SUPPRESSED_CHANNELS)),
            )
        )
    }
    channels = [c for c, kind in IDENTIFIER_KIND.items() if kind in SUPPRESSED_CHANNELS]
    for r in conn.execute(
        select(consent_records.c.channel, consent_records.c.identifier)
        .where(
            consent_records.c.profile_id.in_(ids),
            consent_records.c.channel.in_(channels),
            consent_records.c.identifier.is_not(None),
        )
        .distinct()
    ):
        found.add((IDENTIFIER_KIND[r.channel], r.identifier))
    return found


def _queue_destination_jobs(
    conn: Connection, group: ProfileGroup, now: datetime
) -> list[DestinationJob]:
    from guestlist.jobs.queue import enqueue

    queued = []
    for link in conn.execute(
        select(profile_links)
        .where(profile_links.c.profile_id.in_(group.ids))
        .order_by(profile_links.c.id)
    ):
        external = link.external_id or ""
        digest = hashlib.sha256(f"{link.connection}\0{external}".encode()).hexdigest()[:32]
        job_id = enqueue(
            conn,
            ERASE_AT_CONNECTION,
            {
                "profile_id": group.profile_id,
                "connection": link.connection,
                "external_id": link.external_id,
                "requested_at": now.isoformat(),
            },
            unique_key=f"{ERASE_AT_CONNECTION}:{group.profile_id}:{digest}",
            now=now,
        )
        queued.append(DestinationJob(job_id, link.connection))
    return queued


def _message_ids_by_envelope(conn: Connection, ids: Sequence[int]) -> dict[int, set[str]]:
    out: dict[int, set[str]] = {}
    for r in conn.execute(
        select(events.c.inbox_id, events.c.message_id).where(
            events.c.profile_id.in_(ids), events.c.inbox_id.is_not(None)
        )
    ):
        out.setdefault(int(r.inbox_id), set()).add(r.message_id)
    return out


def _chunks(values: Sequence[int]) -> Iterable[Sequence[int]]:
    for i in range(0, len(values), _CHUNK):
        yield values[i : i + _CHUNK]


def _redact_inbox(conn: Connection, ids: Sequence[int]) -> int:
    """Strip the person's messages from the raw envelopes their events came in.

    A `tracking.batch` envelope keeps the other people's messages (each pinned to the
    message id it was parsed with, so replaying it changes nothing) and loses the
    headers that describe the sender (user agent, IP): the person may have sent it. An
    envelope left with none of them, or of another kind (a single call, a vendor's
    webhook), loses its body and headers and is marked `erased`. Its idempotency key
    stays, so a redelivery of the same webhook is still recognised and not applied
    again.
    """
    wanted = _message_ids_by_envelope(conn, ids)
    redacted = 0
    for chunk in _chunks(sorted(wanted)):
        for env in conn.execute(
            select(inbox.c.id, inbox.c.kind, inbox.c.body, inbox.c.headers).where(
                inbox.c.id.in_(chunk)
            )
        ):
            env_id = int(env.id)
            body = _without_messages(env_id, env.kind, bytes(env.body), wanted[env_id])
            values: dict[str, Any] = (
                {"body": b"", "headers": {}, "status": "erased"}
                if body is None
                else {
                    "body": body,
                    "headers": {
                        k: v for k, v in (env.headers or {}).items() if k in _NEUTRAL_HEADERS
                    },
                }
            )
            conn.execute(update(inbox).where(inbox.c.id == env_id).values(**values))
            redacted += 1
    return redacted


def _without_messages(env_id: int, kind: str, body: bytes, erased: set[str]) -> bytes | None:
    """The body without the erased messages, or None when nothing else is left."""
    if kind != "tracking.batch":
        return None
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    messages = data.get("batch") if isinstance(data, dict) else None
    if not isinstance(messages, list):
        return None
    kept = []
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            kept.append(message)
            continue
        given = message.get("messageId")
        # The id the parser gave it (capture.tracking_parse): pinned, since removing
        # messages shifts the positions that ids without messageId are made of.
        message_id = given if isinstance(given, str) and given else f"gl-{env_id}-{index}"
        if message_id not in erased:
            kept.append({**message, "messageId": message_id})
    if not kept:
        return None
    return orjson.dumps({**data, "batch": kept})


# -- the destination jobs -------------------------------------------------------------

ConnectionEraser = Callable[[Engine, dict[str, Any]], None]
_connection_erasers: dict[str, ConnectionEraser] = {}


class NoDestinationConnector(LookupError):
    """No eraser is registered for a connection (destinations arrive with connectors)."""


def register_connection_eraser(connection: str, eraser: ConnectionEraser) -> None:
    """Register how the person is deleted at `connection` (called by connectors).

    The eraser gets the job's args (`profile_id`, `connection`, `external_id`,
    `requested_at`) and raises to have the job retried with backoff.
    """
    _connection_erasers[connection] = eraser


def unregister_connection_eraser(connection: str) -> None:
    _connection_erasers.pop(connection, None)


@job_handler(ERASE_AT_CONNECTION)
def erase_at_connection(engine: Engine, args: dict[str, Any]) -> None:
    """Delete the person at one destination, then record it in the audit log.

    Without a registered eraser the job fails (and is retried, then kept as `dead`,
    visible, for `retry_dead` once the connector exists): nothing is silently skipped.
    """
    connection = str(args["connection"])
    eraser = _connection_erasers.get(connection)
    if eraser is None:
        raise NoDestinationConnector(f"no destination connector for {connection}")
    eraser(engine, args)
    with engine.begin() as conn:
        audit(
            conn,
            "profile.erased_at_connection",
            actor=SYSTEM,
            profile_id=int(args["profile_id"]),
            detail={"connection": connection},
        )
