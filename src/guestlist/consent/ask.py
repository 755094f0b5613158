"""When a consent prompt may be shown again after someone said no (P-5).

The CCPA asks a business to respect an opt-out of sale and sharing for at least 12
months before asking the person to opt back in (Cal. Civ. Code § 1798.135(c)(4)).
guestlist applies the same wait after any withdrawal or denial, of any purpose: asking
someone who just said no is pressure (GDPR Art. 7(3) wants withdrawal as easy as
giving), and a message asking a person who opted out to opt back in is itself
marketing (compliance-research.md, the ICO and the Jiffy Lube case). Every wait is a
number in `ASK_AGAIN_AFTER_MONTHS`, the shop's to change.

- `sale_sharing`: the person's right, so any opt-out counts, on any channel and
  identifier (a browser's Global Privacy Control signal, SMS STOP, an unsubscribe).
- other purposes: per channel when one is named (an SMS STOP does not stop asking for
  email consent), else any channel.

The clock runs from the latest `withdrawn` or `denied` *record* (by event time), not
the current state: a person who opted back in on their own and then out again is not
asked for 12 months from the second opt-out. What the person starts themselves — a
"share my data" toggle they open, a signup they fill in — is not a prompt; this
governs only what the shop puts in front of them.

A browser that sends Global Privacy Control keeps opting out, but guestlist records
its signal once (consent/gpc.py), so the clock runs from that record: a site should
not prompt a browser whose `navigator.globalPrivacyControl` is `true`, whatever this
says.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from sqlalchemy import Connection, func, select

from guestlist.consent.ledger import CHANNELS, PURPOSES
from guestlist.store.tables import consent_records

SALE_SHARING: Final = "sale_sharing"
OPT_OUTS: Final = ("withdrawn", "denied")
# Months after an opt-out during which the shop does not ask again, per purpose.
# sale_sharing: 12, Cal. Civ. Code § 1798.135(c)(4). The others: guestlist's default.
ASK_AGAIN_AFTER_MONTHS: Final[dict[str, int]] = {
    "marketing": 12,
    "sale_sharing": 12,
    "transactional": 12,
}


def add_months(at: datetime, months: int) -> datetime:
    """`at` plus calendar months; a day the target month lacks becomes the 1st of the
    month after (29 February + 12 months is 1 March: never earlier than a full term)."""
    total = at.month - 1 + months
    year, month = at.year + total // 12, total % 12 + 1
    if at.day > calendar.monthrange(year, month)[1]:
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        return at.replace(year=year, month=month, day=1)
    return at.replace(year=year, month=month)


@dataclass(frozen=True)
class AskDecision:
    """Whether a prompt for `purpose` (on `channel`) may be shown at `now`."""

    purpose: str
    channel: str | None
    may_ask: bool
    last_opt_out: datetime | None  # event time of the latest withdrawal or denial
    may_ask_after: datetime | None  # from then on (may be past); None: never opted out


def last_opt_out(
    conn: Connection, profile_id: int, purpose: str, channel: str | None = None
) -> datetime | None:
    """Event time of the profile's latest `withdrawn` or `denied` record for `purpose`
    (on `channel`, except for `sale_sharing`, which is the person's whatever the
    channel); None if it never opted out."""
    if purpose not in PURPOSES:
        raise ValueError(f"unknown purpose {purpose!r}; one of {', '.join(PURPOSES)}")
    if purpose == SALE_SHARING:
        channel = None
    if channel is not None and channel not in CHANNELS:
        raise ValueError(f"unknown channel {channel!r}; one of {', '.join(CHANNELS)}")
    query = select(func.max(consent_records.c.event_time)).where(
        consent_records.c.profile_id == profile_id,
        consent_records.c.purpose == purpose,
        consent_records.c.status.in_(OPT_OUTS),
    )
    if channel is not None:
        query = query.where(consent_records.c.channel == channel)
    found: datetime | None = conn.scalar(query)
    return found


def ask_decision(
    conn: Connection, profile_id: int, purpose: str, now: datetime, channel: str | None = None
) -> AskDecision:
    """The full answer behind `may_ask`. `profile_id` must be a live profile (a merged
    profile's records are on its survivor)."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    last = last_opt_out(conn, profile_id, purpose, channel)
    scope = None if purpose == SALE_SHARING else channel
    if last is None:
        return AskDecision(purpose, scope, True, None, None)
    after = add_months(last, ASK_AGAIN_AFTER_MONTHS[purpose])
    return AskDecision(purpose, scope, now >= after, last, after)


def may_ask(
    conn: Connection, profile_id: int, purpose: str, now: datetime, channel: str | None = None
) -> bool:
    """Whether a consent prompt for `purpose` (on `channel`) may be shown to the profile
    at `now`: not within `ASK_AGAIN_AFTER_MONTHS[purpose]` months after its latest
    opt-out (12 for sale and sharing, P-5)."""
    return ask_decision(conn, profile_id, purpose, now, channel).may_ask
