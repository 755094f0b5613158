"""Twilio inbound messages (SMS, MMS, WhatsApp) as canonical events.

Each stored delivery becomes one `track` `Inbound Message` (an inquiry) on the
sender's profile: `context.traits.phone` is the `From` number without its
`whatsapp:` prefix. Keywords are applied to the consent ledger when the delivery
arrives (`TwilioConnector.reply`), not here: the event only says what the message was
(`keyword_kind`, `keyword`), so the ledger is written once. No implied consent is
recorded from an inquiry (SMS-1: marketing texts need express written consent).
"""

from __future__ import annotations

import re
import threading
from typing import Any
from urllib.parse import unquote_plus

from guestlist.canonical import CanonicalEvent
from guestlist.connectors._mapping import event_maker
from guestlist.consent.keywords import KeywordKind, classify
from guestlist.consent.twiml import channel_of
from guestlist.inbox.store import InboxEnvelope

SLUG = "twilio"
EVENT = "Inbound Message"

# Parameters mapped to properties under our own names (the rest are kept as sent).
_RENAMED = {
    "To": "to",
    "Body": "body",
    "AccountSid": "account_sid",
    "MessagingServiceSid": "messaging_service_sid",
    "ProfileName": "profile_name",  # the WhatsApp display name the person chose
    "WaId": "wa_id",
    "OptOutType": "opt_out_type",
    "FromCity": "from_city",
    "FromState": "from_state",
    "FromZip": "from_zip",
    "FromCountry": "from_country",
    "ToCity": "to_city",
    "ToState": "to_state",
    "ToZip": "to_zip",
    "ToCountry": "to_country",
}
_COUNTS = {"NumMedia": "num_media", "NumSegments": "num_segments"}
# Known and carried elsewhere (From, the sid) or saying nothing (always "received").
_DROPPED = frozenset({"From", "MessageSid", "SmsSid", "SmsMessageSid", "SmsStatus", "ApiVersion"})
_MEDIA = re.compile(r"^Media(Url|ContentType)(\d+)$")


class TwilioPayloadError(ValueError):
    """A stored Twilio delivery that lacks what the mapping needs; `field` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


_last = threading.local()


def _read_form(text: str) -> list[tuple[str, str]]:
    """`parse_qsl(text, keep_blank_values=True)`, without its per-field overhead for the
    plain fields that make up most of a Twilio form."""
    pairs = []
    for field in text.split("&"):
        if not field:
            continue
        name, _, value = field.partition("=")
        if "%" in field or "+" in field:
            name, value = unquote_plus(name), unquote_plus(value)
        pairs.append((name, value))
    return pairs


def form_params(body: bytes) -> list[tuple[str, str]]:
    """The POST parameters in the order sent, as `parse_qsl(…, keep_blank_values=True)`
    reads them (raises UnicodeDecodeError).

    The webhook reads a body twice in one thread (`verify_webhook`, then `reply`): the
    last body each thread read is kept, so the second read is free.
    """
    if getattr(_last, "body", None) is body:
        return list(_last.pairs)
    pairs = _read_form(body.decode("utf-8"))
    _last.body, _last.pairs = body, tuple(pairs)
    return pairs


def message_sid(params: dict[str, str]) -> str | None:
    return params.get("MessageSid") or params.get("SmsMessageSid") or None


def number_of(address: str) -> str:
    """`whatsapp:+14155552671` → `+14155552671`; a bare number as it is."""
    return address.partition(":")[2] if ":" in address else address


def parse_envelope(envelope: InboxEnvelope) -> list[CanonicalEvent]:
    try:
        pairs = form_params(envelope.body)
    except UnicodeDecodeError:
        raise TwilioPayloadError("body", "not UTF-8 form data") from None
    params = dict(pairs)
    sid = message_sid(params)
    if not sid:
        raise TwilioPayloadError("MessageSid", "missing")
    sender = params.get("From")
    if not sender:
        raise TwilioPayloadError("From", "missing")
    try:
        channel = channel_of(sender)
    except ValueError as exc:
        raise TwilioPayloadError("From", str(exc)) from None
    number = number_of(sender).strip()
    if not number:
        raise TwilioPayloadError("From", "no number")

    props: dict[str, Any] = {"channel": channel, "message_id": sid, "body": params.get("Body", "")}
    media: dict[int, dict[str, str]] = {}
    for name, value in pairs:
        if name in _DROPPED or name == "Body":
            continue
        if name in _RENAMED:
            if name == "To":
                value = number_of(value)
            if value != "":
                props[_RENAMED[name]] = value
        elif name in _COUNTS:
            props[_COUNTS[name]] = int(value) if value.isdigit() else value
        elif found := _MEDIA.match(name):
            key = "url" if found.group(1) == "Url" else "content_type"
            media.setdefault(int(found.group(2)), {})[key] = value
        else:
            props[name] = value  # unknown parameters are kept as sent
    if media:
        props["media"] = [media[i] for i in sorted(media)]
    # What the words were, by the default lists (the shop's own words and what the
    # ledger recorded are in the consent record with this message id).
    match = classify(props["body"])
    if match.kind is not KeywordKind.NONE:
        props["keyword_kind"] = match.kind.value
        if match.keyword:
            props["keyword"] = match.keyword
        if match.rule:
            props["plain_language_rule"] = match.rule
    event = event_maker(envelope, envelope.received_at)  # Twilio's webhook carries no send time
    return [event("track", f"{SLUG}:message:{sid}", name=EVENT, properties=props,
                  context={"traits": {"phone": number}})]
