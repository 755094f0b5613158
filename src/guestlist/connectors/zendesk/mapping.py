"""Zendesk payloads → canonical events.

- A user (a pulled page of the incremental export, or the `detail` of a `user.*`
  event-subscription webhook) is one `identify`: name, email, phone, locale, time zone,
  tags, the user fields (`zendesk_user_fields`), and external ids `zendesk:user` (the
  Zendesk id) and `zendesk:external_id` (the shop's own id, when set). Only end users
  are customers: agents and admins (`role` agent/admin) map to nothing.
- With the `birthdate_field` setting, that user field's date is the `birthday` trait
  (the pipeline records it as a `dob_provided` statement: docs/age.md, *The birthday
  trait*); no separate `Age Verified` is sent for it.
- A ticket trigger posting the documented template (README.md) is an `Inbound Message`
  on the requester's profile (channel from the ticket's `via`). No implied consent is
  recorded from it (C-7: an inquiry grounds implied consent only where the shop
  configures it). Unknown template fields are kept as properties.
- A request from the webhook builder's "Test webhook" button (topic `test`) maps to
  nothing.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import orjson

from guestlist.canonical import CanonicalEvent, ExternalId
from guestlist.connectors._mapping import event_maker
from guestlist.connectors.base import PULL_KIND, pulled_page, topic_of
from guestlist.inbox.store import InboxEnvelope

SLUG = "zendesk"
USER_NS = "zendesk:user"
EXTERNAL_NS = "zendesk:external_id"
MESSAGE = "Inbound Message"
EVENT_PREFIX = "zen:event-type:"
TICKET_TOPIC = "ticket"
TEST_TOPIC = "test"
CUSTOMER_ROLE = "end-user"
# The stream's records carry the configured birthdate field's key here (pull() puts it
# there: parse is pure and never reads settings).
BIRTHDATE_KEY = "guestlist_birthdate_field"
# Trigger template fields read by the mapping; every other field is kept as a property.
TEMPLATE_FIELDS = frozenset({"ticket_id", "subject", "comment", "requester", "via", "url",
                             "created_at", "updated_at", "guestlist"})
# `{{ticket.via}}` → our channel. Other ways in (web form, API, phone call…): `support`.
_VIA = {"mail": "email", "email": "email", "chat": "chat", "messaging": "chat",
        "web widget": "chat", "native messaging": "chat", "sms": "sms", "text": "sms",
        "whatsapp": "whatsapp"}
_DATE = re.compile(r"^(\d{4}-\d{2}-\d{2})(T00:00:00(\.0+)?Z)?$")


class ZendeskPayloadError(ValueError):
    """A stored Zendesk payload that lacks what the mapping needs; `field` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def parse_time(value: Any, field: str) -> datetime:
    """Zendesk's `2024-04-17T17:18:10Z` (ISO 8601), as UTC."""
    if isinstance(value, str) and value:
        try:
            when = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ZendeskPayloadError(field, f"unreadable time {value[:40]!r}") from None
        return when.astimezone(UTC) if when.tzinfo else when.replace(tzinfo=UTC)
    raise ZendeskPayloadError(field, "missing (ISO 8601 time)")


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, bool):
        return None
    text = str(value).strip()
    return text or None


def birthday_of(value: Any) -> str | None:
    """A date user field as `YYYY-MM-DD`; anything else is passed on as it is, so the
    pipeline flags it (an issue `traits.birthday`) rather than it being dropped."""
    text = _text(value)
    if text is None:
        return None
    found = _DATE.match(text)
    return found.group(1) if found else text


def user_traits(user: dict[str, Any]) -> dict[str, Any]:
    traits: dict[str, Any] = {}
    for ours, theirs in (("name", "name"), ("email", "email"), ("phone", "phone"),
                         ("zendesk_external_id", "external_id"), ("locale", "locale"),
                         ("time_zone", "time_zone"), ("zendesk_role", "role"),
                         ("zendesk_organization_id", "organization_id"),
                         ("zendesk_alias", "alias")):
        value = _text(user.get(theirs))
        if value is not None and value != "0":
            traits[ours] = value
    if isinstance(user.get("created_at"), str) and user["created_at"]:
        traits["created_at"] = user["created_at"]
    if isinstance(user.get("tags"), list):
        traits["tags"] = [str(t) for t in user["tags"]]
    for flag in ("active", "suspended", "verified"):
        if isinstance(user.get(flag), bool):
            traits[f"zendesk_{flag}"] = user[flag]
    fields = user.get("user_fields")
    if isinstance(fields, dict) and fields:
        traits["zendesk_user_fields"] = fields
        key = user.get(BIRTHDATE_KEY)
        if isinstance(key, str) and key:
            birthday = birthday_of(fields.get(key))
            if birthday is not None:
                traits["birthday"] = birthday
    return traits


def _external(user_id: str, user: dict[str, Any]) -> list[ExternalId]:
    ids = [ExternalId(USER_NS, user_id)]
    own = _text(user.get("external_id"))
    if own is not None:
        ids.append(ExternalId(EXTERNAL_NS, own))
    return ids


def _user_id(user: Any, field: str) -> str:
    if not isinstance(user, dict):
        raise ZendeskPayloadError(field, "expected an object")
    value = user.get("id")
    if isinstance(value, bool) or not isinstance(value, int | str) or str(value) in ("", "0"):
        raise ZendeskPayloadError(f"{field}.id", "missing")
    return str(value)


def is_customer(user: dict[str, Any]) -> bool:
    """End users are the shop's customers; agents and admins are its staff."""
    return bool(user.get("role", CUSTOMER_ROLE) == CUSTOMER_ROLE)


def user_events(user: Any, envelope: InboxEnvelope, *, field: str) -> list[CanonicalEvent]:
    """A user record of the export: one identify, keyed by its version."""
    user_id = _user_id(user, field)
    assert isinstance(user, dict)
    if not is_customer(user):
        return []
    when = parse_time(user.get("updated_at") or user.get("created_at"), f"{field}.updated_at")
    event = event_maker(envelope, when, _external(user_id, user))
    stamp = when.strftime("%Y-%m-%dT%H:%M:%SZ")
    return [event("identify", f"{USER_NS}:{user_id}:{stamp}", traits=user_traits(user))]


def subscription_events(body: dict[str, Any], envelope: InboxEnvelope) -> list[CanonicalEvent]:
    """A `zen:event-type:user.*` event: an identify from its `detail`.

    Keyed by Zendesk's event id (not the user's version: `detail` holds a few fields,
    and the fuller record of the export at the same `updated_at` must still apply).
    """
    kind = str(body.get("type") or "")
    detail = body.get("detail")
    user_id = _user_id(detail, "detail")
    assert isinstance(detail, dict)
    if not is_customer(detail):
        return []
    event_id = _text(body.get("id"))
    if event_id is None:
        raise ZendeskPayloadError("id", "missing (the event id)")
    when = parse_time(body.get("time") or detail.get("updated_at"), "time")
    traits = user_traits(detail)
    raw_change = body.get("event")
    change: dict[str, Any] = raw_change if isinstance(raw_change, dict) else {}
    name = kind.removeprefix(EVENT_PREFIX)
    if name == "user.name_changed" and _text(change.get("current")):
        traits["name"] = _text(change.get("current"))
    if name == "user.active_changed" and isinstance(change.get("current"), bool):
        traits["zendesk_active"] = change["current"]
    if name == "user.deleted":
        traits["zendesk_active"] = False
    event = event_maker(envelope, when, _external(user_id, detail))
    return [event("identify", f"zendesk:event:{event_id}", traits=traits,
                  context={"zendesk_event": name})]


def channel_of(via: Any) -> str:
    text = (_text(via) or "").lower()
    return _VIA.get(text, "support")


def ticket_events(body: dict[str, Any], envelope: InboxEnvelope) -> list[CanonicalEvent]:
    """The documented trigger template: the requester's message as an inquiry."""
    ticket_id = _text(body.get("ticket_id"))
    if ticket_id is None:
        raise ZendeskPayloadError("ticket_id", "missing")
    requester = body.get("requester")
    if not isinstance(requester, dict):
        raise ZendeskPayloadError("requester", "expected an object")
    traits: dict[str, Any] = {}
    for ours in ("email", "phone", "name"):
        value = _text(requester.get(ours))
        if value is not None:
            traits[ours] = value
    external: list[ExternalId] = []
    requester_id = _text(requester.get("id"))
    if requester_id is not None:
        external.append(ExternalId(USER_NS, requester_id))
    own = _text(requester.get("external_id"))
    if own is not None:
        external.append(ExternalId(EXTERNAL_NS, own))
    if not traits.get("email") and not traits.get("phone") and not external:
        raise ZendeskPayloadError("requester", "no email, phone or id for the requester")
    stamp = body.get("updated_at") or body.get("created_at")
    when = parse_time(stamp, "updated_at") if stamp else envelope.received_at
    comment = _text(body.get("comment")) or ""
    props: dict[str, Any] = {
        "channel": channel_of(body.get("via")),
        "body": comment,
        "message_id": f"zendesk:ticket:{ticket_id}:{when.strftime('%Y-%m-%dT%H:%M:%SZ')}",
        "ticket_id": ticket_id,
    }
    for ours, theirs in (("subject", "subject"), ("zendesk_via", "via"), ("url", "url")):
        value = _text(body.get(theirs))
        if value is not None:
            props[ours] = value
    for key, value in body.items():  # the admin's own template fields, kept
        if key not in TEMPLATE_FIELDS and key not in props:
            props[key] = value
    event = event_maker(envelope, when, external)
    return [event("track", props["message_id"], name=MESSAGE, properties=props,
                  context={"traits": traits})]


def parse_envelope(envelope: InboxEnvelope) -> list[CanonicalEvent]:
    topic = topic_of(envelope, SLUG)
    if topic.startswith(f"{PULL_KIND}."):
        stream, records = pulled_page(envelope)
        if stream != "users":
            raise ZendeskPayloadError("stream", f"unknown Zendesk stream {stream!r}")
        out: list[CanonicalEvent] = []
        for i, record in enumerate(records):
            out.extend(user_events(record, envelope, field=f"records[{i}]"))
        return out
    if topic == TEST_TOPIC:
        return []
    try:
        body = orjson.loads(envelope.body)
    except orjson.JSONDecodeError:
        raise ZendeskPayloadError("body", "not JSON") from None
    if not isinstance(body, dict):
        raise ZendeskPayloadError("body", "expected an object")
    if topic == TICKET_TOPIC:
        return ticket_events(body, envelope)
    if topic.startswith("user."):
        return subscription_events(body, envelope)
    raise ZendeskPayloadError("topic", f"unsupported Zendesk topic {topic!r}")
