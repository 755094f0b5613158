"""REST Hook subscriptions of a Zapier app: store, list, remove.

A Zapier app subscribes when a Zap with its "profile entered segment" trigger is turned
on (`hookUrl`, the segment) and unsubscribes when it is turned off. Sending to the hook
URL is the activation side's; when Zapier answers a post there with 410 Gone the Zap is
gone, and the sender removes the subscription with `forget_gone`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, select

from guestlist.audit import audit
from guestlist.store.tables import connections, segments
from guestlist.store.tables.zapier import zapier_subscriptions
from guestlist.store.types import utcnow

EVENTS = ("segment.entered",)


class SubscriptionError(ValueError):
    """A subscription we refuse; `status` and `field` become the answer."""

    def __init__(self, status: int, field: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class Subscription:
    id: int
    connection_id: int
    event: str
    segment: str
    target_url: str
    created_at: datetime

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "event": self.event,
            "segment": self.segment,
            "hookUrl": self.target_url,
            "created_at": self.created_at.isoformat(),
        }


def _zapier_connection(conn: Connection, connection_id: int) -> None:
    platform = conn.scalar(
        select(connections.c.platform).where(connections.c.id == connection_id)
    )
    if platform != "zapier":
        raise SubscriptionError(404, "connection_id", f"no zapier connection {connection_id}")


def _query() -> Any:
    return select(
        zapier_subscriptions.c.id,
        zapier_subscriptions.c.connection_id,
        zapier_subscriptions.c.event,
        segments.c.slug.label("segment"),
        zapier_subscriptions.c.target_url,
        zapier_subscriptions.c.created_at,
    ).join(segments, segments.c.id == zapier_subscriptions.c.segment_id)


def _subscription(row: Any) -> Subscription:
    return Subscription(
        id=int(row.id),
        connection_id=int(row.connection_id),
        event=row.event,
        segment=row.segment,
        target_url=row.target_url,
        created_at=row.created_at,
    )


def subscribe(
    conn: Connection,
    connection_id: int,
    *,
    event: str,
    segment: str,
    target_url: str,
    actor: str,
) -> tuple[Subscription, bool]:
    """The subscription, and whether it is new. Subscribing a hook URL again (Zapier
    retrying a subscribe it saw fail) gives the same subscription."""
    _zapier_connection(conn, connection_id)
    if event not in EVENTS:
        raise SubscriptionError(
            422, "event", f"unknown event {event!r} (events: {', '.join(EVENTS)})"
        )
    segment_id = conn.scalar(select(segments.c.id).where(segments.c.slug == segment))
    if segment_id is None:
        raise SubscriptionError(422, "segment", f"no segment {segment!r}")
    existing = conn.execute(
        _query().where(
            zapier_subscriptions.c.connection_id == connection_id,
            zapier_subscriptions.c.target_url == target_url,
        )
    ).first()
    if existing is not None:
        found = _subscription(existing)
        if (found.event, found.segment) != (event, segment):
            raise SubscriptionError(
                409, "hookUrl", "this hook URL is subscribed to another event or segment"
            )
        return found, False
    new_id = conn.execute(
        zapier_subscriptions.insert()
        .values(
            connection_id=connection_id,
            event=event,
            segment_id=segment_id,
            target_url=target_url,
            created_by=actor,
            created_at=utcnow(),
        )
        .returning(zapier_subscriptions.c.id)
    ).scalar_one()
    audit(conn, "zapier.subscribe", actor=actor, detail={
        "connection_id": connection_id, "subscription_id": int(new_id), "event": event,
        "segment": segment,
    })
    row = conn.execute(_query().where(zapier_subscriptions.c.id == new_id)).one()
    return _subscription(row), True


def list_subscriptions(conn: Connection, connection_id: int) -> list[Subscription]:
    _zapier_connection(conn, connection_id)
    rows = conn.execute(
        _query()
        .where(zapier_subscriptions.c.connection_id == connection_id)
        .order_by(zapier_subscriptions.c.id)
    )
    return [_subscription(r) for r in rows]


def subscribers(conn: Connection, event: str, segment: str) -> list[Subscription]:
    """Every hook to post to when a profile enters `segment` (for the activation side)."""
    rows = conn.execute(
        _query()
        .where(zapier_subscriptions.c.event == event, segments.c.slug == segment)
        .order_by(zapier_subscriptions.c.id)
    )
    return [_subscription(r) for r in rows]


def unsubscribe(conn: Connection, connection_id: int, subscription_id: int, *, actor: str) -> None:
    _zapier_connection(conn, connection_id)
    gone = conn.execute(
        delete(zapier_subscriptions).where(
            zapier_subscriptions.c.id == subscription_id,
            zapier_subscriptions.c.connection_id == connection_id,
        )
    ).rowcount
    if not gone:
        raise SubscriptionError(404, "subscription_id", f"no subscription {subscription_id}")
    audit(conn, "zapier.unsubscribe", actor=actor, detail={
        "connection_id": connection_id, "subscription_id": subscription_id,
    })


def forget_gone(conn: Connection, subscription_id: int) -> bool:
    """Zapier answered 410 Gone to a post to this hook: the Zap is off or deleted."""
    gone = conn.execute(
        delete(zapier_subscriptions).where(zapier_subscriptions.c.id == subscription_id)
    ).rowcount
    if gone:
        audit(conn, "zapier.hook_gone", detail={"subscription_id": subscription_id})
    return bool(gone)
