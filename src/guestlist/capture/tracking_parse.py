"""Reading `tracking.*` inbox envelopes (Segment spec calls) back as canonical events.

The tracking API stores the request body exactly as received and has already
validated it; this module only maps. Choices, each Segment's own:

- a batch's `context` is merged under each message's `context` (keys of the message
  win, one level deep, as with any dict update);
- event time is corrected for the sender's clock skew, `receivedAt - (sentAt -
  timestamp)`, when the sender said when it sent; `originalTimestamp` stands in for a
  missing `timestamp`;
- numeric ids become strings the way JavaScript prints them (`42`, not `42.0`);
- a message without `messageId` gets `gl-<inbox id>-<index>`, so parsing the same
  envelope again (after a crash) yields the same ids.

RudderStack's SDKs send identify traits in `context.traits` rather than `traits`; for
identify both are read, the call's own `traits` winning.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from guestlist.canonical import EVENT_TYPES, CanonicalEvent, ExternalId
from guestlist.inbox.parsers import EnvelopeError, register_parser
from guestlist.inbox.store import InboxEnvelope

KIND_PREFIX = "tracking."
BATCH_KIND = "tracking.batch"


def parse_timestamp(value: str) -> datetime:
    """An ISO-8601 string as an aware UTC datetime (naive times are taken as UTC).

    Raises ValueError when the string is not ISO-8601.
    """
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def stringify_id(value: Any) -> str | None:
    """An id as Segment keeps it: strings as they are, numbers as JavaScript prints them."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _maybe_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return parse_timestamp(value)
    except ValueError:
        return None


def event_time(message: dict[str, Any], batch_sent_at: Any, received_at: datetime) -> datetime:
    """The message's event time on the server's clock (see the module docstring)."""
    stamped = _maybe_time(message.get("timestamp")) or _maybe_time(
        message.get("originalTimestamp")
    )
    if stamped is None:
        return received_at
    sent_at = _maybe_time(message.get("sentAt")) or _maybe_time(batch_sent_at)
    if sent_at is None:
        return stamped
    return received_at - (sent_at - stamped)


def external_ids(context: dict[str, Any]) -> list[ExternalId]:
    """`context.externalIds` ([{id, type, collection, encoding}]) as `ExternalId`s."""
    found: list[ExternalId] = []
    entries = context.get("externalIds")
    if not isinstance(entries, list):
        return found
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        namespace = entry.get("type")
        ext_id = stringify_id(entry.get("id"))
        if isinstance(namespace, str) and namespace and ext_id is not None:
            found.append(ExternalId(namespace=namespace, id=ext_id))
    return found


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def message_to_event(
    message: dict[str, Any],
    *,
    event_type: str,
    index: int,
    env: InboxEnvelope,
    batch_context: dict[str, Any],
    batch_sent_at: Any,
) -> CanonicalEvent:
    context = {**batch_context, **_object(message.get("context"))}
    traits = dict(_object(message.get("traits")))
    properties = dict(_object(message.get("properties")))
    name: str | None = None
    if event_type == "identify":
        traits = {**_object(context.get("traits")), **traits}
    elif event_type == "track":
        name = message.get("event")
    elif event_type in ("page", "screen"):
        name = message.get("name") if isinstance(message.get("name"), str) else None
        category = message.get("category")
        if isinstance(category, str):
            properties.setdefault("category", category)
    elif event_type == "group":
        # A group's traits describe the group (the company), not the person.
        properties = {**properties, **traits}
        traits = {}
    message_id = message.get("messageId")
    return CanonicalEvent(
        type=event_type,
        message_id=message_id if isinstance(message_id, str) and message_id
        else f"gl-{env.id}-{index}",
        timestamp=event_time(message, batch_sent_at, env.received_at),
        received_at=env.received_at,
        source_id=env.source_id,
        user_id=stringify_id(message.get("userId")),
        anonymous_id=stringify_id(message.get("anonymousId")),
        name=name,
        traits=traits,
        properties=properties,
        context=context,
        previous_id=stringify_id(message.get("previousId")),
        group_id=stringify_id(message.get("groupId")),
        external_ids=external_ids(context),
        inbox_id=env.id,
        default_region=env.default_region,
    )


def parse_tracking_envelope(env: InboxEnvelope) -> list[CanonicalEvent]:
    """The events in one `tracking.batch` or `tracking.<type>` envelope, in order."""
    try:
        body = orjson.loads(env.body)
    except orjson.JSONDecodeError as exc:
        raise EnvelopeError(f"inbox {env.id}: body is not JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise EnvelopeError(f"inbox {env.id}: body is not a JSON object")

    if env.kind == BATCH_KIND:
        messages = body.get("batch")
        if not isinstance(messages, list):
            raise EnvelopeError(f"inbox {env.id}: batch is not a list")
        batch_context = _object(body.get("context"))
        batch_sent_at = body.get("sentAt")
        single_type = None
    else:
        single_type = env.kind.removeprefix(KIND_PREFIX)
        if single_type not in EVENT_TYPES:
            raise EnvelopeError(f"inbox {env.id}: unknown tracking kind {env.kind!r}")
        messages = [body]
        batch_context = {}
        batch_sent_at = None

    events: list[CanonicalEvent] = []
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise EnvelopeError(f"inbox {env.id}: batch[{index}] is not an object")
        event_type = single_type or message.get("type")
        if event_type not in EVENT_TYPES:
            raise EnvelopeError(f"inbox {env.id}: batch[{index}] has type {event_type!r}")
        events.append(
            message_to_event(
                message,
                event_type=str(event_type),
                index=index,
                env=env,
                batch_context=batch_context,
                batch_sent_at=batch_sent_at,
            )
        )
    return events


def register() -> None:
    """Route `tracking.*` envelopes to this parser (idempotent)."""
    register_parser(KIND_PREFIX, parse_tracking_envelope)
