"""Inbound SMS and WhatsApp keywords, applied to the consent ledger.

`apply_inbound_text` is what a messaging webhook calls once it has checked the request:

- **opt-out** (SMS-2) and **plain-language opt-out** (SMS-2a, recorded with
  `needs_review`): a `withdrawn` record for the number on that channel, for every
  marketing purpose (`marketing`, `sale_sharing`), on every live profile that holds the
  number or has consent recorded for it. A number nobody holds goes on the suppression
  list (reason `sms_stop` / `whatsapp_stop`) so a later import stays opted out.
  WhatsApp keywords act on WhatsApp consent only, SMS keywords on SMS only (SMS-7).
- **opt-in** (SMS-3): START, YES, UNSTOP carry no disclosure text, so they *restore* an
  earlier grant and never create one (SMS-1): a `granted` `marketing` record for each
  profile that has an earlier `granted` record for this number and channel, pointing at
  it (`proof.regrants_record`), with its legal basis and the age gate the earlier
  grant stated (SMS-6a; otherwise the ledger links the age check on file). Where there
  is none, nothing is recorded and the reply is the help text, which says how to opt
  in. `sale_sharing` is not restored: START answers "subscribed to marketing
  messages", not "you may sell my data".
- **help** (SMS-4) and anything else: nothing recorded.

The message body is the person's words, not a text shown to them, so it is kept in the
record's personal `proof` (`body`), which erasure blanks, rather than in `text`.

A message id already in the ledger for this number and channel (Twilio retries a
webhook that timed out) records nothing again; the reply is given again, since Twilio
sends only the reply it received. The reply is TwiML (`twiml.reply_for`): one
confirmation (SMS-5), none for the words Twilio answers itself.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Any, get_args

from sqlalchemy import Connection, select

from guestlist.consent.keywords import DEFAULT, KeywordConfig, KeywordKind, KeywordMatch, classify
from guestlist.consent.ledger import (
    AGE_GATE,
    IDENTIFIER_KIND,
    ConsentError,
    ConsentStatement,
    append,
    ledger_key,
    normalize_consent_identifier,
)
from guestlist.consent.optout import (
    MARKETING_PURPOSES,
    live_holders,
    lock_profiles,
    records_with_message_id,
    suppress,
)
from guestlist.consent.twiml import (
    DEFAULT_REPLIES,
    EMPTY_RESPONSE,
    Channel,
    InboundText,
    ReplyTexts,
    reply_for,
)
from guestlist.settings import get_settings
from guestlist.store.secrets import identifier_hmac
from guestlist.store.tables import consent_records

CHANNELS: tuple[Channel, ...] = get_args(Channel)
REGRANT_PURPOSES: tuple[str, ...] = ("marketing",)
RECORDED_BY = "inbound-keyword"
# What Twilio's Advanced Opt-Out reports it acted on (`OptOutType`).
_PROVIDER_KINDS = {
    "STOP": KeywordKind.OPT_OUT,
    "START": KeywordKind.OPT_IN,
    "HELP": KeywordKind.HELP,
}


class InboundAction(StrEnum):
    """What an inbound message did to consent."""

    WITHDRAWN = "withdrawn"  # withdrawn on every profile with the number
    SUPPRESSED = "suppressed"  # nobody holds the number: it is on the suppression list
    REGRANTED = "regranted"  # an earlier grant restored
    NOT_REGRANTED = "not_regranted"  # an opt-in with no earlier grant: nothing recorded
    HELP = "help"
    NONE = "none"


@dataclass(frozen=True, slots=True)
class InboundOutcome:
    """The result of one inbound message, with the TwiML to answer it with."""

    channel: Channel
    number: str  # E.164
    message_id: str
    match: KeywordMatch
    action: InboundAction
    profile_ids: tuple[int, ...]
    record_ids: tuple[int, ...]
    duplicate: bool  # the message id was applied before: nothing recorded this time
    reply: str | None  # the reply text, None when there is none (or Twilio answers)
    twiml: str

    @property
    def needs_review(self) -> bool:
        return self.match.needs_review

    def as_dict(self) -> dict[str, Any]:
        return {
            "channel": self.channel,
            "number": self.number,
            "message_id": self.message_id,
            "kind": self.match.kind.value,
            "keyword": self.match.keyword,
            "rule": self.match.rule,
            "phrase": self.match.phrase,
            "action": self.action.value,
            "needs_review": self.needs_review,
            "duplicate": self.duplicate,
            "profile_ids": list(self.profile_ids),
            "record_ids": list(self.record_ids),
            "reply": self.reply,
            "twiml": self.twiml,
        }


def _effective_match(match: KeywordMatch, opt_out_type: str | None) -> KeywordMatch:
    """Twilio's Advanced Opt-Out may act on a shop word guestlist does not know; the
    ledger follows what Twilio did (it will block sends to an opted-out number anyway)."""
    kind = _PROVIDER_KINDS.get((opt_out_type or "").upper())
    if kind is None or kind is match.kind or (kind is KeywordKind.OPT_OUT and match.withdraws):
        return match
    return KeywordMatch(kind, match.body, keyword=opt_out_type.upper() if opt_out_type else None)


def apply_inbound_text(
    conn: Connection,
    *,
    channel: str,
    from_number: str,
    body: str,
    message_id: str,
    received_at: datetime,
    source_id: int | None = None,
    config: KeywordConfig = DEFAULT,
    opt_out_type: str | None = None,
    shop: str | None = None,
    replies: ReplyTexts = DEFAULT_REPLIES,
    region: str = "US",
    recorded_by: str = RECORDED_BY,
    connection: str | None = None,
) -> InboundOutcome:
    """Apply one inbound message in the caller's transaction (see the module docstring).

    `received_at` is when the message reached the provider: the records' event time.
    `opt_out_type` is Twilio's `OptOutType` when Twilio acted on the message itself.
    `shop` fills `{shop}` in the replies (default: the `shop_name` setting).
    Raises `ConsentError` (field `channel`, `from` or `message_id`) for bad input.
    """
    if channel not in CHANNELS:
        raise ConsentError("channel", f"{channel!r} is not one of {', '.join(CHANNELS)}")
    typed_channel: Channel = "sms" if channel == "sms" else "whatsapp"
    if not message_id or not message_id.strip():
        raise ConsentError("message_id", "required: the provider's message id is the proof")
    if received_at.tzinfo is None:
        raise ValueError("received_at must be timezone-aware")
    try:
        number = normalize_consent_identifier(channel, from_number, region)
    except ConsentError as exc:
        raise ConsentError("from", exc.message) from None
    message_id = message_id.strip()
    match = _effective_match(classify(body, config=config), opt_out_type)

    key = ledger_key(conn)
    number_hash = identifier_hmac(key, IDENTIFIER_KIND[channel], number)
    duplicate = False
    records: list[int] = []
    holders: list[int] = []
    action = InboundAction.NONE
    if match.withdraws or match.grants:
        holders = live_holders(conn, channel, number, number_hash)
        lock_profiles(conn, holders)
        earlier = records_with_message_id(conn, number_hash, message_id, channel=channel)
        if earlier:
            duplicate = True
            records = [int(r.id) for r in earlier]
            holders = sorted({int(r.profile_id) for r in earlier})
            action = InboundAction.WITHDRAWN if match.withdraws else InboundAction.REGRANTED

    def statement(status: str, purpose: str, **extra: Any) -> ConsentStatement:
        proof: dict[str, Any] = {"body": body, **extra}
        if match.rule is not None:
            proof["plain_language_rule"] = match.rule
            proof["phrase"] = match.phrase
        if opt_out_type:
            proof["opt_out_type"] = opt_out_type
        return ConsentStatement(
            channel=channel,
            purpose=purpose,
            status=status,
            kind="express",
            event_time=received_at,
            identifier=number,
            message_id=message_id,
            keyword=match.keyword,
            recorded_by=recorded_by,
            connection=connection,
            source_id=source_id,
            needs_review=match.needs_review,
            proof=proof,
        )

    if duplicate:
        pass  # applied when it first arrived: nothing is recorded again
    elif match.withdraws:
        for profile_id in holders:
            for purpose in MARKETING_PURPOSES:  # SMS-2: all marketing purposes
                records.append(append(conn, profile_id, statement("withdrawn", purpose), key=key))
        if holders:
            action = InboundAction.WITHDRAWN
        else:
            suppress(
                conn,
                channel=channel,
                key=number,
                reason=f"{channel}_stop",
                actor=recorded_by,
                detail={"message_id": message_id},
            )
            action = InboundAction.SUPPRESSED
    elif match.grants:
        regranted: list[int] = []
        for profile_id in holders:
            for purpose in REGRANT_PURPOSES:
                grant = _earlier_grant(conn, profile_id, channel, purpose, number_hash)
                if grant is None:
                    continue  # SMS-1: never a first grant without its disclosure
                restored = statement("granted", purpose, regrants_record=int(grant.id))
                restored.legal_basis = grant.legal_basis
                stated = (grant.proof or {}).get(AGE_GATE)
                if isinstance(stated, dict) and stated.get("from") == "event":
                    restored.proof[AGE_GATE] = stated  # SMS-6a: the gate of that opt-in
                records.append(append(conn, profile_id, restored, key=key))
                regranted.append(profile_id)
        holders = list(dict.fromkeys(regranted))
        action = InboundAction.REGRANTED if regranted else InboundAction.NOT_REGRANTED
    elif match.kind is KeywordKind.HELP:
        action = InboundAction.HELP

    answered = match
    if action is InboundAction.NOT_REGRANTED:
        # Nothing to restore: say how to opt in instead of confirming a subscription.
        answered = replace(match, kind=KeywordKind.HELP)
    inbound = InboundText(
        channel=typed_channel,
        sender=number,
        recipient="",
        message_sid=message_id,
        match=answered,
        opt_out_type=opt_out_type or None,
    )
    shop_name = get_settings().shop_name if shop is None else shop
    twiml = reply_for(inbound, shop=shop_name, texts=replies)
    reply = None if twiml == EMPTY_RESPONSE else replies.text_for(answered.kind, shop_name)
    return InboundOutcome(
        channel=typed_channel,
        number=number,
        message_id=message_id,
        match=match,
        action=action,
        profile_ids=tuple(holders),
        record_ids=tuple(records),
        duplicate=duplicate,
        reply=reply,
        twiml=twiml,
    )


def _earlier_grant(
    conn: Connection, profile_id: int, channel: str, purpose: str, number_hash: str
) -> Any:
    """The latest `granted` record for this number, channel and purpose on the profile
    (records follow merges), or None."""
    return conn.execute(
        select(consent_records.c.id, consent_records.c.legal_basis, consent_records.c.proof)
        .where(
            consent_records.c.profile_id == profile_id,
            consent_records.c.channel == channel,
            consent_records.c.purpose == purpose,
            consent_records.c.identifier_hash == number_hash,
            consent_records.c.status == "granted",
        )
        .order_by(consent_records.c.event_time.desc(), consent_records.c.id.desc())
        .limit(1)
    ).first()
