"""Drift events → canonical events.

- `contact_identified` (a visitor gave their email in chat) and `contact_updated`: an
  `identify` from the contact's attributes (email, name, phone, the shop's
  `externalId`, tags), with external ids `drift:contact` and `drift:external_id`.
- `new_message` written by a contact (not an agent, not a bot; type `chat`): an
  `Inbound Message` (channel `chat`) on that contact (`drift:contact:{author.id}`,
  plus the email when the payload carries the contact's attributes). No implied
  consent is recorded from it (C-7). Drift's email capture carries no disclaimer text,
  so it records no consent either (C-2: no proof of what was shown).
- A contact read by the lookup job (`drift.contact`, the `lookup_contacts` setting):
  an `identify` as above.
- Every other event type we accept (`new_conversation`, `button_action`,
  `playbook_goal_met`, `conversation_status_updated`, …) is kept in the inbox and maps
  to nothing.
"""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime
from typing import Any

import orjson

from guestlist.canonical import CanonicalEvent, ExternalId
from guestlist.connectors._mapping import event_maker
from guestlist.connectors.base import topic_of
from guestlist.inbox.store import InboxEnvelope

SLUG = "drift"
CONTACT_NS = "drift:contact"
EXTERNAL_NS = "drift:external_id"
MESSAGE = "Inbound Message"
CONTACT_TOPICS = frozenset({"contact_identified", "contact_updated"})
# A contact read by the lookup job (jobs.py): not a webhook topic.
FETCHED_TOPIC = "contact"
MESSAGE_TOPIC = "new_message"
# Kept, mapped to nothing (documented at devdocs.drift.com/docs/webhook-events-1).
OTHER_TOPICS = frozenset({
    "new_conversation", "new_command_message", "conversation_status_updated",
    "conversation_participant_added", "conversation_participant_removed",
    "conversation_inactive", "button_action", "playbook_goal_met", "phone_captured",
    "app_uninstalled", "user_availability_updated", "user_unsubscribed",
    "conversation_manual_assigned",
})
TOPICS = frozenset({*CONTACT_TOPICS, MESSAGE_TOPIC, *OTHER_TOPICS})
_TAG = re.compile(r"<[^>]+>")
_BREAK = re.compile(r"</p>|<br\s*/?>", re.IGNORECASE)
_ATTRIBUTES = (("email", "email"), ("name", "name"), ("phone", "phone"),
               ("first_name", "first_name"), ("last_name", "last_name"),
               ("drift_external_id", "externalId"))


class DriftPayloadError(ValueError):
    """A stored Drift payload that lacks what the mapping needs; `field` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def millis(value: Any, field: str) -> datetime:
    """Drift's times are epoch milliseconds."""
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return datetime.fromtimestamp(value / 1000, UTC)
    raise DriftPayloadError(field, "missing (epoch milliseconds)")


def text_of(body: Any) -> str:
    """A message's HTML as the words the person wrote."""
    if not isinstance(body, str):
        return ""
    return html.unescape(_TAG.sub("", _BREAK.sub("\n", body))).strip()


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, bool | dict | list):
        return None
    text = str(value).strip()
    return text or None


def contact_traits(contact: dict[str, Any]) -> dict[str, Any]:
    attributes = contact.get("attributes")
    attrs: dict[str, Any] = attributes if isinstance(attributes, dict) else {}
    traits: dict[str, Any] = {}
    for ours, theirs in _ATTRIBUTES:
        value = _text(attrs.get(theirs))
        if value is not None:
            traits[ours] = value
    tags = attrs.get("tags")
    if isinstance(tags, list):
        names = [t.get("name") if isinstance(t, dict) else t for t in tags]
        traits["tags"] = [str(n) for n in names if n not in (None, "")]
    created = contact.get("createdAt")
    if isinstance(created, int | float) and not isinstance(created, bool) and created > 0:
        traits["created_at"] = millis(created, "createdAt").isoformat().replace("+00:00", "Z")
    return traits


def contact_ids(contact_id: str, traits: dict[str, Any]) -> list[ExternalId]:
    ids = [ExternalId(CONTACT_NS, contact_id)]
    if traits.get("drift_external_id"):
        ids.append(ExternalId(EXTERNAL_NS, str(traits["drift_external_id"])))
    return ids


def contact_of(data: Any) -> dict[str, Any]:
    """The contact of a contact event: `data` itself, or `data.contact`."""
    if not isinstance(data, dict):
        raise DriftPayloadError("data", "expected an object")
    inner = data.get("contact")
    return inner if isinstance(inner, dict) else data


def _id(value: Any, field: str) -> str:
    if isinstance(value, bool) or not isinstance(value, int | str) or str(value) in ("", "0"):
        raise DriftPayloadError(field, "missing")
    return str(value)


def contact_events(topic: str, data: Any, envelope: InboxEnvelope) -> list[CanonicalEvent]:
    contact = contact_of(data)
    contact_id = _id(contact.get("id"), "data.id")
    traits = contact_traits(contact)
    if topic == "contact_identified" and "email" not in traits:
        raise DriftPayloadError("data.attributes.email", "missing")
    stamp = contact.get("updatedAt") or contact.get("createdAt")
    when = millis(stamp, "data.createdAt") if stamp else envelope.received_at
    event = event_maker(envelope, when, contact_ids(contact_id, traits))
    key = traits.get("email", "")
    return [event("identify", f"{CONTACT_NS}:{contact_id}:{topic}:{int(when.timestamp())}:{key}",
                  traits=traits)]


def message_of(data: Any) -> dict[str, Any]:
    """The message of a `new_message`: `data.message`, or `data` itself."""
    if not isinstance(data, dict):
        raise DriftPayloadError("data", "expected an object")
    inner = data.get("message")
    return inner if isinstance(inner, dict) else data


def message_events(data: Any, envelope: InboxEnvelope) -> list[CanonicalEvent]:
    message = message_of(data)
    message_id = _id(message.get("id"), "data.id")
    author = message.get("author")
    if not isinstance(author, dict):
        raise DriftPayloadError("data.author", "missing")
    if author.get("type") != "contact" or author.get("bot") is True:
        return []  # an agent's or a bot's words, not the person's
    if message.get("type", "chat") != "chat":
        return []  # private notes, edits
    body = text_of(message.get("body"))
    if not body:
        return []
    contact_id = _id(author.get("id"), "data.author.id")
    when = millis(message.get("createdAt"), "data.createdAt")
    contact = data.get("contact") if isinstance(data, dict) else None
    traits = contact_traits(contact) if isinstance(contact, dict) else {}
    context_traits = {k: traits[k] for k in ("email", "phone") if k in traits}
    props: dict[str, Any] = {
        "channel": "chat",
        "body": body,
        "message_id": f"drift:message:{message_id}",
        "drift_message_id": message_id,
    }
    if message.get("conversationId") not in (None, ""):
        props["conversation_id"] = str(message["conversationId"])
    context = message.get("context")
    if isinstance(context, dict):
        for ours, theirs in (("url", "href"), ("page_title", "title")):
            if _text(context.get(theirs)):
                props[ours] = context[theirs]
    event = event_maker(envelope, when, contact_ids(contact_id, traits))
    return [event("track", props["message_id"], name=MESSAGE, properties=props,
                  context={"traits": context_traits})]


def parse_envelope(envelope: InboxEnvelope) -> list[CanonicalEvent]:
    topic = topic_of(envelope, SLUG)
    try:
        body = orjson.loads(envelope.body)
    except orjson.JSONDecodeError:
        raise DriftPayloadError("body", "not JSON") from None
    if not isinstance(body, dict):
        raise DriftPayloadError("body", "expected an object")
    data = body.get("data")
    if topic in CONTACT_TOPICS or topic == FETCHED_TOPIC:
        return contact_events(topic, data, envelope)
    if topic == MESSAGE_TOPIC:
        return message_events(data, envelope)
    if topic in OTHER_TOPICS:
        return []
    raise DriftPayloadError("type", f"unsupported Drift event {topic!r}")
