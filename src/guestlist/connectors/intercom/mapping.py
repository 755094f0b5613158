"""Intercom payloads → canonical events.

- A contact (webhook `contact.user.created`, `contact.lead.created`, …, the legacy
  `user.created`, or a pulled page) is one `identify`: email, phone, name, location,
  role, the tag names as `tags` (tags are the shop's categories), and the contact id
  (`intercom:contact`) and the shop's own `external_id` (`intercom:external_id`) as
  external ids. `unsubscribed_from_emails: true` is a `Consent Updated` email
  `withdrawn` (C-5); `false` is no grant (C-4).
- A chat message from the person (`conversation.user.created`: the conversation's
  source; `conversation.user.replied`: each part the person wrote) is an `Inbound
  Message` (channel `chat`) on the author's profile. No implied consent is recorded
  from it: C-7 lets an inquiry ground implied consent only where the shop chooses to.
- A tag put on (or taken off) a contact is `Tag Added` (`Tag Removed`) with the tag's
  name as `category`.
"""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime
from typing import Any

import orjson

from guestlist.canonical import CanonicalEvent, ExternalId
from guestlist.connectors._mapping import event_maker
from guestlist.connectors.base import PULL_KIND, pulled_page, topic_of
from guestlist.inbox.store import InboxEnvelope

SLUG = "intercom"
CONTACT_NS = "intercom:contact"
EXTERNAL_NS = "intercom:external_id"
MESSAGE = "Inbound Message"
CONTACT_TOPICS = frozenset({
    "contact.user.created", "contact.lead.created", "contact.user.updated",
    "contact.lead.updated", "contact.lead.signed_up", "user.created",
})
TAG_TOPICS = {
    "contact.user.tag.created": "Tag Added", "contact.lead.tag.created": "Tag Added",
    "contact.user.tag.deleted": "Tag Removed", "contact.lead.tag.deleted": "Tag Removed",
}
CONVERSATION_TOPICS = frozenset({"conversation.user.created", "conversation.user.replied"})
TOPICS = frozenset({*CONTACT_TOPICS, *TAG_TOPICS, *CONVERSATION_TOPICS, "ping"})
# Who a person is in a conversation part's `author.type`.
_PERSON = frozenset({"user", "lead", "contact"})
_TAG = re.compile(r"<[^>]+>")
_BREAK = re.compile(r"</p>|<br\s*/?>", re.IGNORECASE)


class IntercomPayloadError(ValueError):
    """A stored Intercom payload that lacks what the mapping needs; `field` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def _epoch(value: Any, field: str) -> datetime:
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return datetime.fromtimestamp(value, UTC)
    raise IntercomPayloadError(field, "missing (epoch seconds)")


def _iso(value: Any) -> str | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return datetime.fromtimestamp(value, UTC).isoformat().replace("+00:00", "Z")
    return None


def text_of(body: Any) -> str:
    """A message's HTML as the words the person wrote."""
    if not isinstance(body, str):
        return ""
    return html.unescape(_TAG.sub("", _BREAK.sub("\n", body))).strip()


def contact_traits(contact: dict[str, Any]) -> dict[str, Any]:
    traits: dict[str, Any] = {}
    for ours, theirs in (("email", "email"), ("phone", "phone"), ("name", "name"),
                         ("intercom_role", "role"), ("intercom_external_id", "external_id"),
                         ("intercom_external_id", "user_id")):
        value = contact.get(theirs)
        if value not in (None, ""):
            traits[ours] = value
    for ours, theirs in (("created_at", "created_at"), ("intercom_signed_up_at", "signed_up_at"),
                         ("intercom_last_seen_at", "last_seen_at")):
        stamp = _iso(contact.get(theirs))
        if stamp:
            traits[ours] = stamp
    location = contact.get("location")
    if isinstance(location, dict):
        address = {ours: location[theirs] for ours, theirs in (
            ("city", "city"), ("state", "region"), ("country", "country"))
            if location.get(theirs)}
        if address:
            traits["address"] = address
    if isinstance(contact.get("tag_names"), list):
        traits["tags"] = list(contact["tag_names"])
    if contact.get("marked_email_as_spam") is True:
        traits["intercom_marked_email_as_spam"] = True
    if isinstance(contact.get("custom_attributes"), dict) and contact["custom_attributes"]:
        traits["intercom_custom_attributes"] = contact["custom_attributes"]
    return traits


def _external(contact: dict[str, Any]) -> list[ExternalId]:
    ids = [ExternalId(CONTACT_NS, str(contact["id"]))]
    own = contact.get("external_id") or contact.get("user_id")
    if own not in (None, ""):
        ids.append(ExternalId(EXTERNAL_NS, str(own)))
    return ids


def _contact_id(contact: Any, field: str) -> str:
    if not isinstance(contact, dict):
        raise IntercomPayloadError(field, "expected an object")
    if not isinstance(contact.get("id"), str) or not contact["id"]:
        raise IntercomPayloadError(f"{field}.id", "missing")
    return str(contact["id"])


def contact_events(
    contact: Any, envelope: InboxEnvelope, *, field: str = "contact",
    notification_time: Any = None,
    received_fallback: bool = False,
) -> list[CanonicalEvent]:
    contact_id = _contact_id(contact, field)
    assert isinstance(contact, dict)
    stamp = contact.get("updated_at") or contact.get("created_at") or notification_time
    if stamp is None and received_fallback:
        when = envelope.received_at
    else:
        when = _epoch(stamp, f"{field}.updated_at")
    base = f"{CONTACT_NS}:{contact_id}:{int(when.timestamp())}"
    traits = contact_traits(contact)
    event = event_maker(envelope, when, _external(contact))
    events = [event("identify", base, traits=traits)]
    if contact.get("unsubscribed_from_emails") is True:
        props: dict[str, Any] = {
            "channel": "email", "status": "withdrawn", "kind": "express",
            "recorded_by": SLUG, "intercom_contact_id": contact_id,
            "intercom_field": "unsubscribed_from_emails",
        }
        if "email" in traits:
            props["identifier"] = traits["email"]
        contact_traits_ = {k: traits[k] for k in ("email", "phone") if k in traits}
        events.append(event("track", f"{base}:unsubscribed", name="Consent Updated",
                            properties=props, context={"traits": contact_traits_}))
    return events


def tag_events(item: Any, topic: str, envelope: InboxEnvelope) -> list[CanonicalEvent]:
    if not isinstance(item, dict):
        raise IntercomPayloadError("data.item", "expected an object")
    contact = item.get("contact")
    contact_id = _contact_id(contact, "data.item.contact")
    assert isinstance(contact, dict)
    tag = item.get("tag")
    if not isinstance(tag, dict) or not tag.get("name"):
        raise IntercomPayloadError("data.item.tag.name", "missing")
    when = _epoch(item.get("created_at") or tag.get("applied_at"), "data.item.created_at")
    traits = contact_traits(contact)
    contact_ctx = {k: traits[k] for k in ("email", "phone") if k in traits}
    event = event_maker(envelope, when, _external(contact))
    name = TAG_TOPICS[topic]
    return [event(
        "track",
        f"{CONTACT_NS}:{contact_id}:tag:{tag.get('id')}:{name}:{int(when.timestamp())}",
        name=name,
        properties={"category": tag["name"], "tag": tag["name"], "tag_id": str(tag.get("id")),
                    "source": SLUG},
        context={"traits": contact_ctx},
    )]


def _sender(conversation: dict[str, Any], author: Any) -> tuple[dict[str, Any], list[ExternalId]]:
    """The person's identifiers: the author's email, the conversation's contact id."""
    traits: dict[str, Any] = {}
    if isinstance(author, dict) and author.get("email"):
        traits["email"] = author["email"]
    if isinstance(author, dict) and author.get("name"):
        traits["name"] = author["name"]
    external: list[ExternalId] = []
    contacts = conversation.get("contacts")
    listed = contacts.get("contacts") if isinstance(contacts, dict) else None
    if isinstance(listed, list) and len(listed) == 1 and isinstance(listed[0], dict):
        external = _external(listed[0]) if listed[0].get("id") else []
    elif isinstance(author, dict) and author.get("id"):
        external = [ExternalId(CONTACT_NS, str(author["id"]))]
    return traits, external


def conversation_events(item: Any, topic: str, envelope: InboxEnvelope) -> list[CanonicalEvent]:
    if not isinstance(item, dict) or not item.get("id"):
        raise IntercomPayloadError("data.item.id", "missing")
    conversation_id = str(item["id"])
    messages: list[tuple[str, dict[str, Any], Any]] = []  # (message id, part, its time)
    if topic == "conversation.user.created":
        source = item.get("source")
        if not isinstance(source, dict):
            raise IntercomPayloadError("data.item.source", "missing")
        messages.append((f"intercom:conversation:{conversation_id}", source,
                         item.get("created_at")))
    parts = item.get("conversation_parts")
    listed = parts.get("conversation_parts") if isinstance(parts, dict) else None
    for part in listed or []:
        if not isinstance(part, dict) or not part.get("id"):
            continue
        author = part.get("author")
        if not isinstance(author, dict) or author.get("type") not in _PERSON:
            continue  # admins, bots, Fin: not the person's words
        if part.get("part_type") not in (None, "comment", "open") or not text_of(
                part.get("body")):
            continue
        messages.append((f"intercom:part:{part['id']}", part, part.get("created_at")))
    if topic == "conversation.user.replied" and not messages:
        raise IntercomPayloadError(
            "data.item.conversation_parts", "no part written by the person")
    events = []
    for message_id, part, at in messages:
        traits, external = _sender(item, part.get("author"))
        when = _epoch(at or item.get("updated_at"), "data.item.created_at")
        props: dict[str, Any] = {
            "channel": "chat",
            "body": text_of(part.get("body")),
            "message_id": message_id,
            "conversation_id": conversation_id,
        }
        for ours, theirs in (("subject", "subject"), ("delivered_as", "delivered_as"),
                             ("url", "url"), ("part_type", "part_type")):
            if part.get(theirs):
                props[ours] = part[theirs]
        if part.get("id"):
            props["intercom_part_id"] = str(part["id"])
        event = event_maker(envelope, when, external)
        events.append(event("track", message_id, name=MESSAGE, properties=props,
                            context={"traits": traits}))
    return events


def parse_envelope(envelope: InboxEnvelope) -> list[CanonicalEvent]:
    topic = topic_of(envelope, SLUG)
    if topic.startswith(f"{PULL_KIND}."):
        stream, records = pulled_page(envelope)
        if stream != "contacts":
            raise IntercomPayloadError("stream", f"unknown Intercom stream {stream!r}")
        out: list[CanonicalEvent] = []
        for i, record in enumerate(records):
            out.extend(contact_events(record, envelope, field=f"records[{i}]"))
        return out
    try:
        body = orjson.loads(envelope.body)
    except orjson.JSONDecodeError:
        raise IntercomPayloadError("body", "not JSON") from None
    if not isinstance(body, dict):
        raise IntercomPayloadError("body", "expected an object")
    if topic == "ping":
        return []
    data = body.get("data")
    item = data.get("item") if isinstance(data, dict) else None
    if topic in CONTACT_TOPICS:
        # The legacy `user.created` example carries no time at all: when it came, then.
        return contact_events(item, envelope, field="data.item",
                              notification_time=body.get("created_at"), received_fallback=True)
    if topic in TAG_TOPICS:
        return tag_events(item, topic, envelope)
    if topic in CONVERSATION_TOPICS:
        return conversation_events(item, topic, envelope)
    raise IntercomPayloadError("topic", f"unsupported Intercom topic {topic!r}")
