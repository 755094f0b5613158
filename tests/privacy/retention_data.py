"""Data with a past, for the retention and legal-hold tests: envelopes received at a
given time in a given state, and people whose last activity was at a given time."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Engine, select, update

from guestlist.consent.ledger import ConsentStatement, append
from guestlist.inbox.store import accept
from guestlist.keys import ensure_source
from guestlist.pipeline import process_all
from guestlist.store.tables import identifiers, inbox


def source(engine: Engine, name: str = "web") -> int:
    with engine.begin() as conn:
        return ensure_source(conn, name)


def envelope(
    engine: Engine,
    source_id: int,
    received_at: datetime,
    *,
    status: str = "processed",
    key: str | None = None,
) -> int:
    """One raw envelope in `status`, as if it had been through the pipeline."""
    with engine.begin() as conn:
        inbox_id = accept(
            conn,
            source_id=source_id,
            kind="tracking.batch",
            headers={"content-type": "application/json", "user-agent": "Shopify-Captain-Hook"},
            body=orjson.dumps({"batch": [{"type": "track", "event": "x", "userId": "u"}]}),
            idempotency_key=key,
            received_at=received_at,
        )
        assert inbox_id is not None
        conn.execute(update(inbox).where(inbox.c.id == inbox_id).values(status=status))
    return inbox_id


def inbox_row(engine: Engine, inbox_id: int) -> Any:
    with engine.connect() as conn:
        return conn.execute(select(inbox).where(inbox.c.id == inbox_id)).first()


def customer(
    engine: Engine,
    source_id: int,
    user_id: str,
    seen_at: datetime,
    *consent: dict[str, Any],
) -> int:
    """A person whose one identify (and any `Consent Updated` properties given) happened
    at `seen_at`; returns the profile id."""
    stamp = seen_at.isoformat()
    batch: list[dict[str, Any]] = [
        {
            "type": "identify",
            "userId": user_id,
            "timestamp": stamp,
            "messageId": f"{user_id}-identify-{stamp}",
            "traits": {"email": f"{user_id}@example.com"},
        }
    ]
    for index, properties in enumerate(consent):
        batch.append(
            {
                "type": "track",
                "event": "Consent Updated",
                "userId": user_id,
                "timestamp": stamp,
                "messageId": f"{user_id}-consent-{index}-{stamp}",
                "properties": {"channel": "email", **properties},
            }
        )
    with engine.begin() as conn:
        accept(
            conn,
            source_id=source_id,
            kind="tracking.batch",
            headers={"content-type": "application/json"},
            body=orjson.dumps({"batch": batch}),
        )
    process_all(engine)
    with engine.connect() as conn:
        profile_id = conn.scalar(
            select(identifiers.c.profile_id).where(
                identifiers.c.kind == "user_id", identifiers.c.key == user_id
            )
        )
    assert profile_id is not None
    return int(profile_id)


def consent_at(engine: Engine, profile_id: int, email: str, at: datetime) -> int:
    """A consent record stated and received at `at` (a ledger with a past)."""
    with engine.begin() as conn:
        return append(
            conn,
            profile_id,
            ConsentStatement(
                channel="email",
                purpose="marketing",
                status="granted",
                kind="express",
                event_time=at,
                received_at=at,
                identifier=email,
                text="Email me offers",
                ip="203.0.113.9",
            ),
        )
