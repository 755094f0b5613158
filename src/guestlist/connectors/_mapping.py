"""What every connector mapping does alike: turn one inbox envelope into events.

Each mapping used to build its `CanonicalEvent`s with its own copy of the same
closure (the envelope's receipt time, source, inbox id and default region, plus
the mapping's event time and external ids); this is that closure, once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from guestlist.canonical import CanonicalEvent, ExternalId
from guestlist.inbox.store import InboxEnvelope


def event_maker(
    envelope: InboxEnvelope,
    when: datetime,
    external: Sequence[ExternalId] = (),
    *,
    anonymous_id: str | None = None,
) -> Callable[..., CanonicalEvent]:
    """`event(kind, message_id, **fields)`: an event of `envelope` at `when`.

    Every event gets its own copy of `external` (an event's list is never shared).
    `fields` are the other `CanonicalEvent` fields (`name`, `traits`, `context`…).
    """

    def event(kind: str, message_id: str, **fields: Any) -> CanonicalEvent:
        return CanonicalEvent(
            type=kind,
            message_id=message_id,
            timestamp=when,
            received_at=envelope.received_at,
            source_id=envelope.source_id,
            anonymous_id=anonymous_id,
            external_ids=list(external),
            inbox_id=envelope.id,
            default_region=envelope.default_region,
            **fields,
        )

    return event
