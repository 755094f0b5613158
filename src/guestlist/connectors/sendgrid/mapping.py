"""Inbound Parse posts → canonical events.

A person's mail is an `identify` (the sender's address, and the display name when it
reads as one) and a `track` "Inbound Message" (channel email) on that profile. A bounce
or an auto-reply (topics `bounce`, `auto_reply`) is stored but makes nothing: no person
wrote it, and its sender is a mail system, not a customer. No consent is recorded: an
inquiry grounds implied consent only where the shop configures it (C-7), and a mail
carries no wording the person agreed to (C-2).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from guestlist.canonical import CanonicalEvent
from guestlist.connectors.base import topic_of
from guestlist.connectors.sendgrid.inbound import (
    InboundError,
    InboundMail,
    delivery_key,
    read_mail,
)
from guestlist.inbox.store import InboxEnvelope

SLUG = "sendgrid"
MESSAGE_EVENT = "Inbound Message"
PERSON_TOPIC = "inbound"
AUTOMATED_TOPICS = ("bounce", "auto_reply")
TOPICS = (PERSON_TOPIC, *AUTOMATED_TOPICS)


class SendGridPayloadError(ValueError):
    """A stored post the mapping cannot read; `field` names what is wrong."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def name_traits(name: str | None, address: str) -> dict[str, str]:
    """`name`, and `first_name`/`last_name` only where the split is not a guess:
    "Ada Lovelace" or "Lovelace, Ada". "Mary Ann Smith" keeps only `name`."""
    if not name or "@" in name or name.strip().lower() == address.lower():
        return {}
    name = " ".join(name.split())
    traits = {"name": name}
    if name.count(",") == 1:
        last, first = (p.strip() for p in name.split(","))
        if first and last and " " not in first and " " not in last:
            traits.update(first_name=first, last_name=last)
    else:
        words = name.split(" ")
        if len(words) == 2:
            traits.update(first_name=words[0], last_name=words[1])
    return traits


def _spam_score(raw: str | None) -> float | str | None:
    if raw is None or not raw.strip():
        return None
    try:
        return float(raw)
    except ValueError:
        return raw.strip()


def message_properties(mail: InboundMail, key: str) -> dict[str, Any]:
    fields = mail.fields
    props: dict[str, Any] = {
        "channel": "email",
        "subject": mail.subject,
        "text": mail.text,  # the person's words (personal data); html is not kept
        "message_id": mail.message_id,
        "from": mail.sender_email,
        "to": mail.to,
        "cc": mail.cc or None,
        "envelope_to": mail.envelope.get("to"),
        "in_reply_to": _header(mail, "in-reply-to"),
        "spf": fields.get("SPF"),
        "dkim": fields.get("dkim"),
        "spam_score": _spam_score(fields.get("spam_score")),
        "sender_ip": fields.get("sender_ip"),
        "attachments": mail.attachments or None,
        "sendgrid_mode": mail.mode,
        "sendgrid_delivery": key,
    }
    kept = {k: v for k, v in props.items() if v is not None}
    for name, value in mail.extra.items():  # fields SendGrid does not document: kept
        kept.setdefault(name, value)
    return kept


def _header(mail: InboundMail, name: str) -> str | None:
    value = mail.headers.get(name)
    return str(value).strip() if value is not None else None


def _when(mail: InboundMail, received_at: datetime) -> datetime:
    """The mail's Date, never later than its arrival (a sender's clock can run fast)."""
    sent = mail.sent_at()
    return sent if sent is not None and sent <= received_at else received_at


def parse_envelope(envelope: InboxEnvelope) -> list[CanonicalEvent]:
    topic = topic_of(envelope, SLUG)
    if topic in AUTOMATED_TOPICS:
        return []  # kept in the inbox as received; nobody to attach it to
    if topic != PERSON_TOPIC:
        raise SendGridPayloadError("kind", f"unknown SendGrid topic {topic!r}")
    try:
        mail = read_mail(envelope.headers.get("content-type"), envelope.body)
    except InboundError as exc:
        raise SendGridPayloadError(exc.field, exc.message) from None
    assert mail.sender_email is not None  # read_mail refuses a mail without one
    key = delivery_key(mail, envelope.body)
    when = _when(mail, envelope.received_at)
    common: dict[str, Any] = {
        "timestamp": when,
        "received_at": envelope.received_at,
        "source_id": envelope.source_id,
        "inbox_id": envelope.id,
        "default_region": envelope.default_region,
    }
    identify = CanonicalEvent(
        type="identify",
        message_id=f"{SLUG}:{key}:identify",
        traits={"email": mail.sender_email, **name_traits(mail.sender_name, mail.sender_email)},
        **common,
    )
    message = CanonicalEvent(
        type="track",
        message_id=f"{SLUG}:{key}:message",
        name=MESSAGE_EVENT,
        properties=message_properties(mail, key),
        context={"traits": {"email": mail.sender_email}},
        **common,
    )
    return [identify, message]
