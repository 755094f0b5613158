"""Twilio's side of SMS/WhatsApp keywords: read an inbound message, answer it in TwiML.

Twilio POSTs an inbound message form-encoded (`MessageSid`, `From`, `To`, `Body`, …;
WhatsApp senders come as `whatsapp:+E164`, SMS-7) and reads the reply from the
response: `<Response><Message>text</Message></Response>`, or `<Response/>` for none.

One confirmation per keyword (SMS-5). Twilio answers its own default keywords on
long codes and toll-free numbers (and a Messaging Service with Advanced Opt-Out answers
its configured ones, telling us so in `OptOutType`), and a second reply after STOP would
be blocked anyway (error 21610). So guestlist replies only to what Twilio did not answer:
the extra carrier keywords (OPT-OUT, REMOVE, ARRET, TD), a shop's own words, and
plain-language opt-outs, and spellings Twilio does not recognise ("opt out", "Stop all").
`ReplyTexts.provider_answers` says which words Twilio answers.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal
from xml.sax.saxutils import escape

from guestlist.consent.keywords import DEFAULT, KeywordConfig, KeywordKind, KeywordMatch, classify

CONTENT_TYPE = "application/xml"
XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>'
EMPTY_RESPONSE = f"{XML_DECLARATION}<Response/>"

Channel = Literal["sms", "whatsapp"]
WHATSAPP_PREFIX = "whatsapp:"

# Twilio's default STOP filtering answers these on long codes and toll-free numbers, and
# on WhatsApp senders in a Messaging Service; not on standalone short codes, where a
# shop sets `provider_answers=frozenset()`. https://help.twilio.com/hc/en-us/articles/
# 223134027-Twilio-support-for-opt-out-keywords-SMS-STOP-filtering-
TWILIO_ANSWERS: frozenset[str] = frozenset(
    {
        *("STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"),
        *("START", "YES", "UNSTOP"),
        *("HELP", "INFO"),
    }
)

# Characters XML 1.0 cannot carry, even escaped.
_NOT_XML = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def message_response(text: str) -> str:
    """A TwiML document that replies with one message."""
    return (
        f"{XML_DECLARATION}<Response><Message>{escape(_NOT_XML.sub('', text))}</Message></Response>"
    )


# --- reading Twilio's request ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InboundText:
    """An inbound SMS or WhatsApp message, classified."""

    channel: Channel
    sender: str  # `From` without its channel prefix: the number that consents (C-6)
    recipient: str  # `To` without its channel prefix: the shop's number
    message_sid: str  # proof (SMS-3), and the key that makes a retried webhook a no-op
    match: KeywordMatch
    opt_out_type: str | None  # Twilio's `OptOutType` (STOP, START, HELP): Twilio answered


def channel_of(address: str) -> Channel:
    """`whatsapp:+14155552671` is WhatsApp; a bare number is SMS (SMS-7)."""
    prefix, colon, _ = address.partition(":")
    if not colon:
        return "sms"
    if f"{prefix.lower()}:" == WHATSAPP_PREFIX:
        return "whatsapp"
    raise ValueError(f"unsupported Twilio channel {prefix!r} in {address!r}")


def _number(address: str) -> str:
    return address.partition(":")[2] if ":" in address else address


def read_inbound(params: Mapping[str, str], *, config: KeywordConfig = DEFAULT) -> InboundText:
    """Classify the body of Twilio's inbound-message webhook (parameters already
    signature-checked). Raises `ValueError` when `MessageSid` or `From` is missing."""
    message_sid = params.get("MessageSid") or params.get("SmsMessageSid")
    sender = params.get("From")
    if not message_sid or not sender:
        raise ValueError("not a Twilio inbound message: MessageSid and From are required")
    return InboundText(
        channel=channel_of(sender),
        sender=_number(sender),
        recipient=_number(params.get("To", "")),
        message_sid=message_sid,
        match=classify(params.get("Body", ""), config=config),
        opt_out_type=params.get("OptOutType") or None,
    )


# --- the shop's replies -----------------------------------------------------------------

_PLACEHOLDERS = frozenset({"shop"})


@dataclass(frozen=True, slots=True)
class ReplyTexts:
    """A shop's keyword replies (SMS-5); `{shop}` is replaced by the shop's name."""

    # One confirmation, no marketing (FCC 12-143).
    opt_out: str = (
        "{shop}: You are unsubscribed and will get no more marketing messages. "
        "Reply START to resubscribe."
    )
    # Repeats how to opt out (CTIA).
    opt_in: str = (
        "{shop}: You are subscribed to marketing messages. Msg frequency varies. "
        "Msg & data rates may apply. Reply HELP for help, STOP to opt out."
    )
    # Name, how to stop, rates (SMS-4).
    help: str = "{shop}: Reply STOP to opt out, START to opt back in. Msg & data rates may apply."
    # Keywords the provider already answers; guestlist stays silent on those.
    provider_answers: frozenset[str] = TWILIO_ANSWERS

    def __post_init__(self) -> None:
        for name in ("opt_out", "opt_in", "help"):
            text: str = getattr(self, name)
            fields = {f for _, f, _, _ in string.Formatter().parse(text) if f is not None}
            if not fields <= _PLACEHOLDERS:
                raise ValueError(f"{name} reply: only {{shop}} may be filled in, not {fields}")
            if not text.strip():
                raise ValueError(f"{name} reply is empty")
        object.__setattr__(
            self, "provider_answers", frozenset(w.upper() for w in self.provider_answers)
        )

    def problems(self) -> list[str]:
        """What the console should warn about: texts that miss what SMS-4/SMS-5 ask."""
        found: list[str] = []
        if "STOP" not in self.opt_in.upper():
            found.append("the opt-in confirmation does not say how to opt out (STOP)")
        if "STOP" not in self.help.upper():
            found.append("the help reply does not say how to opt out (STOP)")
        if "{shop}" not in self.help:
            found.append("the help reply does not name the shop ({shop})")
        if "RATES MAY APPLY" not in self.help.upper():
            found.append('the help reply lacks "Msg & data rates may apply"')
        return found

    def text_for(self, kind: KeywordKind, shop: str) -> str | None:
        """The reply to a keyword of this kind, filled in; None when there is none."""
        template = {
            KeywordKind.OPT_OUT: self.opt_out,
            KeywordKind.OPT_OUT_PLAIN_LANGUAGE: self.opt_out,
            KeywordKind.OPT_IN: self.opt_in,
            KeywordKind.HELP: self.help,
        }.get(kind)
        return None if template is None else template.format(shop=shop)


DEFAULT_REPLIES = ReplyTexts()


def reply_for(inbound: InboundText, *, shop: str, texts: ReplyTexts = DEFAULT_REPLIES) -> str:
    """The TwiML to answer an inbound message with: the shop's reply to a keyword
    Twilio did not answer itself, else an empty response."""
    match = inbound.match
    if inbound.opt_out_type is not None:
        return EMPTY_RESPONSE
    # Twilio documents an exact, case-insensitive single word ("STOP PLEASE" does not
    # count); "opt out", "STOP ALL" or full-width letters are ours to confirm.
    said = match.body.strip().upper()
    if match.keyword is not None and said == match.keyword and said in texts.provider_answers:
        return EMPTY_RESPONSE
    text = texts.text_for(match.kind, shop)
    return EMPTY_RESPONSE if text is None else message_response(text)
