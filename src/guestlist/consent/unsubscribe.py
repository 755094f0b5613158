"""RFC 8058 one-click unsubscribe for marketing email (E-1, E-2, C-5).

`list_unsubscribe` gives the two headers a marketing send carries for one profile's
address: `List-Unsubscribe: <{public_url}/u/{token}>` and `List-Unsubscribe-Post:
List-Unsubscribe=One-Click`. The token (`tokens.issue_token`, purpose `unsubscribe`)
names the profile and the address key, and keeps working for 365 days (E-1 asks for at
least 60).

`unsubscribe` is the POST behind that URL: no login, no cookie, no confirmation step.
It withdraws the address for every marketing purpose (`marketing`, `sale_sharing`) on
every live profile that holds it or has consent recorded for it — the same reach as an
SMS STOP — and, when nobody holds it any more, puts it on the suppression list (reason
`email_unsubscribe`). Proof: the request's IP and user agent (for a mailbox provider's
one-click POST, the provider's), `message_id` = the token's nonce, `recorded_by` =
`one-click-unsubscribe`, and `proof.one_click` (whether the body carried RFC 8058's
`List-Unsubscribe=One-Click`; the page's button sends it too; any POST is honoured).
A (profile, purpose) that is already `withdrawn` gets no second record, so a replayed
POST changes nothing, while a person who subscribed again since can use the old link
once more.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection

from guestlist.consent.ledger import ConsentError, ConsentStatement, append, ledger_key
from guestlist.consent.links import is_live, links_key, resolve_email, verify_link
from guestlist.consent.optout import (
    MARKETING_PURPOSES,
    current_status,
    live_holders,
    lock_profiles,
    suppress,
)
from guestlist.consent.tokens import LinkToken, issue_token, list_unsubscribe_headers
from guestlist.store.secrets import identifier_hmac
from guestlist.store.types import utcnow

UNSUBSCRIBE_PREFIX = "u"
RECORDED_BY = "one-click-unsubscribe"
CHANNEL = "email"


def list_unsubscribe(
    conn: Connection,
    profile_id: int,
    *,
    public_url: str,
    channel: str = CHANNEL,
    email: str | None = None,
    links: bytes | None = None,
    now: datetime | None = None,
) -> dict[str, str]:
    """The `List-Unsubscribe` and `List-Unsubscribe-Post` headers for a profile's address
    (its only one, or `email`). Raises `ConsentError` (channel), `AddressError`, or
    `ValueError` when `public_url` is not https (RFC 8058 one-click requires it).
    `links` is the signing key when the caller has it (default: read or made here)."""
    if channel != CHANNEL:
        raise ConsentError("channel", "one-click unsubscribe (RFC 8058) is for email only")
    address = resolve_email(conn, profile_id=profile_id, email=email)
    token = issue_token(
        links or links_key(conn),
        purpose="unsubscribe",
        profile_id=address.profile_id,
        channel=CHANNEL,
        identifier=address.email,
        now=now,
    )
    return list_unsubscribe_headers(f"{public_url.rstrip('/')}/{UNSUBSCRIBE_PREFIX}", token)


def read_unsubscribe(conn: Connection, token: str, *, now: datetime | None = None) -> LinkToken:
    """Check an unsubscribe link without changing anything; raises `LinkRefused`."""
    return verify_link(conn, token, "unsubscribe", now=now)


@dataclass(frozen=True, slots=True)
class Unsubscribed:
    token: LinkToken
    profile_ids: tuple[int, ...]  # the live profiles the address was withdrawn on
    record_ids: tuple[int, ...]  # empty when everything was withdrawn already
    suppressed: bool  # nobody holds the address: it went on the suppression list

    @property
    def already(self) -> bool:
        return not self.record_ids and not self.suppressed


def unsubscribe(
    conn: Connection,
    token: str,
    *,
    ip: str | None = None,
    user_agent: str | None = None,
    one_click: bool = True,
    now: datetime | None = None,
) -> Unsubscribed:
    """Honour an unsubscribe link (see the module docstring); raises `LinkRefused`."""
    found = verify_link(conn, token, "unsubscribe", now=now)
    at = now or utcnow()
    key = ledger_key(conn)
    address_hash = identifier_hmac(key, "email", found.identifier)
    holders = set(live_holders(conn, CHANNEL, found.identifier, address_hash))
    if is_live(conn, found.profile_id):
        holders.add(found.profile_id)  # the profile the mail went to, even if it changed address
    ordered = sorted(holders)
    lock_profiles(conn, ordered)
    records: list[int] = []
    for profile_id in ordered:
        for purpose in MARKETING_PURPOSES:
            if current_status(conn, profile_id, CHANNEL, purpose, address_hash) == "withdrawn":
                continue
            records.append(
                append(
                    conn,
                    profile_id,
                    ConsentStatement(
                        channel=CHANNEL,
                        purpose=purpose,
                        status="withdrawn",
                        kind="express",
                        event_time=at,
                        identifier=found.identifier,
                        ip=(ip or "").strip()[:64] or None,
                        user_agent=(user_agent or "").strip()[:2000] or None,
                        message_id=found.nonce,
                        recorded_by=RECORDED_BY,
                        proof={"one_click": one_click},
                    ),
                    key=key,
                )
            )
    suppressed = False
    if not ordered:
        suppressed = suppress(
            conn,
            channel=CHANNEL,
            key=found.identifier,
            reason="email_unsubscribe",
            actor=RECORDED_BY,
        )
    return Unsubscribed(found, tuple(ordered), tuple(records), suppressed)
