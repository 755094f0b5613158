"""What an opt-out reaches: every live profile with the identifier, or a suppression.

Shared by the SMS/WhatsApp keywords (SMS-2, SMS-2a, SMS-7) and one-click email
unsubscribe (E-1, E-2). Consent is per identifier (C-6), so an opt-out from an address
or number withdraws it on every profile that holds it as an identifier *and* on every
profile whose ledger has a record for it (a `Consent Updated` may name a number the
profile does not hold). When nobody holds it, the opt-out still protects the address:
its HMAC goes into `suppressions` (P-3), so a later import cannot subscribe it silently.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.dialects import postgresql, sqlite

from guestlist.audit import audit
from guestlist.consent.ledger import IDENTIFIER_KIND
from guestlist.store.secrets import identifier_hmac, installation_secret
from guestlist.store.tables import (
    consent_records,
    consent_state,
    identifiers,
    installation_secrets,
    profiles,
    suppressions,
)
from guestlist.store.types import utcnow

# The purposes an opt-out withdraws (SMS-2: "for all marketing purposes"; P-5's
# sale/sharing goes with it). `transactional` messages are not consent-based.
MARKETING_PURPOSES: tuple[str, ...] = ("marketing", "sale_sharing")
SUPPRESSION_SECRET = "suppression"


def existing_secret(conn: Connection, name: str) -> bytes | None:
    """An installation secret if it was ever made; unlike `installation_secret`, never
    writes (for GET requests: a link cannot be valid before its key exists)."""
    found = conn.scalar(
        select(installation_secrets.c.value).where(installation_secrets.c.name == name)
    )
    return None if found is None else bytes(found)


def live_holders(conn: Connection, channel: str, key: str, identifier_hash: str) -> list[int]:
    """Live (not merged away, not erased) profiles holding `key` for `channel`'s
    identifier kind, or with a ledger record for it (`identifier_hash` under the ledger
    key); ascending ids."""
    kind = IDENTIFIER_KIND[channel]
    held = select(identifiers.c.profile_id).where(
        identifiers.c.kind == kind, identifiers.c.key == key
    )
    recorded = select(consent_records.c.profile_id).where(
        consent_records.c.identifier_hash == identifier_hash
    )
    ids = {int(i) for i in conn.scalars(held)} | {int(i) for i in conn.scalars(recorded)}
    if not ids:
        return []
    live = conn.scalars(
        select(profiles.c.id)
        .where(
            profiles.c.id.in_(sorted(ids)),
            profiles.c.merged_into.is_(None),
            profiles.c.erased_at.is_(None),
        )
        .order_by(profiles.c.id)
    )
    return [int(i) for i in live]


def lock_profiles(conn: Connection, profile_ids: Iterable[int]) -> None:
    """Hold the profiles' rows until commit (PostgreSQL; SQLite already serialises
    writers), so a check for an earlier record and the append after it cannot race a
    second request doing the same. Ascending order: no deadlocks."""
    ids = sorted(set(profile_ids))
    if ids and conn.dialect.name == "postgresql":
        conn.execute(
            select(profiles.c.id)
            .where(profiles.c.id.in_(ids))
            .order_by(profiles.c.id)
            .with_for_update()
        )


def current_status(
    conn: Connection, profile_id: int, channel: str, purpose: str, identifier_hash: str
) -> str | None:
    """The derived status for one profile, channel, purpose and identifier; None: no record."""
    found = conn.scalar(
        select(consent_state.c.status).where(
            consent_state.c.profile_id == profile_id,
            consent_state.c.channel == channel,
            consent_state.c.purpose == purpose,
            consent_state.c.identifier_hash == identifier_hash,
        )
    )
    return None if found is None else str(found)


def suppress(
    conn: Connection,
    *,
    channel: str,
    key: str,
    reason: str,
    actor: str,
    detail: dict[str, Any] | None = None,
) -> bool:
    """Put the identifier's HMAC on the suppression list for `channel`; True when it
    was not there yet. Audited without the identifier (P-6)."""
    kind = IDENTIFIER_KIND[channel]
    if kind not in ("email", "phone"):
        raise ValueError(f"suppressions hold emails and phones, not {kind}")
    digest = identifier_hmac(installation_secret(conn, SUPPRESSION_SECRET), kind, key)
    insert: Any = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(
        suppressions
    )
    added = conn.execute(
        insert.values(
            identifier_hash=digest, kind=kind, channel=channel, reason=reason, created_at=utcnow()
        )
        .on_conflict_do_nothing()
        .returning(suppressions.c.id)
    ).scalar()
    if added is not None:
        audit(
            conn,
            "suppression.added",
            actor=actor,
            detail={"channel": channel, "kind": kind, "reason": reason, **(detail or {})},
        )
    return added is not None


def is_suppressed(conn: Connection, channel: str, key: str) -> bool:
    """Whether the identifier is on the suppression list for `channel`."""
    secret = existing_secret(conn, SUPPRESSION_SECRET)
    if secret is None:
        return False
    digest = identifier_hmac(secret, IDENTIFIER_KIND[channel], key)
    return (
        conn.scalar(
            select(suppressions.c.id).where(
                suppressions.c.identifier_hash == digest, suppressions.c.channel == channel
            )
        )
        is not None
    )


def records_with_message_id(
    conn: Connection,
    identifier_hash: str,
    message_id: str,
    *,
    channel: str,
    statuses: Sequence[str] | None = None,
    recorded_by: str | None = None,
) -> list[Any]:
    """Ledger records for one identifier carrying `message_id` (through the
    identifier-hash index): how a retried webhook or a replayed link is recognised."""
    query = (
        select(consent_records)
        .where(
            consent_records.c.identifier_hash == identifier_hash,
            consent_records.c.message_id == message_id,
            consent_records.c.channel == channel,
        )
        .order_by(consent_records.c.id)
    )
    if statuses is not None:
        query = query.where(consent_records.c.status.in_(list(statuses)))
    if recorded_by is not None:
        query = query.where(consent_records.c.recorded_by == recorded_by)
    return list(conn.execute(query))
