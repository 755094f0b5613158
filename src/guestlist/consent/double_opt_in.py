"""Email double opt-in (C-8): `pending` until the person confirms from the address.

1. `start_double_opt_in` appends a `pending` email record with the signup's proof (the
   exact text shown, page URL, IP, user agent) and returns the confirmation link
   `{public_url}/c/{token}` for the shop to mail to that address. The token
   (`tokens.issue_token`, purpose `confirm`, 7 days) names the profile and the address
   key; its nonce is the pending record's `message_id`.
2. `GET /c/{token}` shows a page with a button and changes nothing (`read_confirmation`):
   mail scanners follow links in mail before the person does.
3. `POST /c/{token}` (`confirm`) appends `granted` with the click's own proof: its IP and
   user agent, `message_id` = the nonce, `recorded_by` = `double-opt-in`, the same
   text as the pending record, and `proof.confirms_record` = the pending record's id.

A link is honoured only if its signature is ours, it is not expired, and the ledger
holds a `pending` record with its nonce *for the address in the token*, on the chain of
the profile it names. Confirming twice records once (the ledger is checked for a
confirmation carrying the nonce). An address that already has express, unexpired
consent gets no new pending record (that would withdraw it until the click).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from guestlist.consent.ledger import (
    PURPOSES,
    SECRET_NAME,
    ConsentError,
    ConsentStatement,
    append,
    ledger_key,
)
from guestlist.consent.links import (
    LinkRefused,
    is_live,
    link_url,
    links_key,
    resolve_email,
    verify_link,
)
from guestlist.consent.optout import (
    existing_secret,
    lock_profiles,
    records_with_message_id,
)
from guestlist.consent.tokens import CONFIRM_MAX_AGE, LinkToken, issue_token
from guestlist.store.secrets import identifier_hmac
from guestlist.store.tables import consent_state, consent_texts
from guestlist.store.types import utcnow

CONFIRM_PREFIX = "c"
RECORDED_BY = "double-opt-in"
CHANNEL = "email"


@dataclass(frozen=True, slots=True)
class DoubleOptInStarted:
    """What `start_double_opt_in` did: `status` is `pending` (a record and a link to
    mail) or `granted` (the address already has express consent: nothing to send)."""

    profile_id: int
    identifier: str
    purpose: str
    status: str
    record_id: int | None
    confirm_url: str | None
    expires_at: datetime | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "profile_id": self.profile_id,
            "identifier": self.identifier,
            "purpose": self.purpose,
            "status": self.status,
            "record_id": self.record_id,
            "confirm_url": self.confirm_url,
            "expires_at": None if self.expires_at is None else self.expires_at.isoformat(),
        }


def _clean(value: str | None, name: str, limit: int) -> str | None:
    if value is None or not value.strip():
        return None
    if len(value) > limit:
        raise ConsentError(name, f"longer than {limit} characters")
    return value.strip()


def start_double_opt_in(
    conn: Connection,
    *,
    text: str,
    public_url: str,
    profile_id: int | None = None,
    email: str | None = None,
    purpose: str = "marketing",
    url: str | None = None,
    ip: str | None = None,
    user_agent: str | None = None,
    legal_basis: str | None = None,
    recorded_by: str = RECORDED_BY,
    now: datetime | None = None,
) -> DoubleOptInStarted:
    """Record a `pending` email consent and make its confirmation link.

    Raises `AddressError` (no such profile, address not held, ambiguous) or
    `ConsentError` (no text, unknown purpose).
    """
    body = _clean(text, "text", 10_000)
    if body is None:
        raise ConsentError("text", "required: the exact wording the person agreed to (C-2)")
    if purpose not in PURPOSES or purpose == "transactional":
        raise ConsentError("purpose", f"{purpose!r} is not a marketing purpose")
    address = resolve_email(conn, profile_id=profile_id, email=email)
    at = now or utcnow()
    key = ledger_key(conn)
    address_hash = identifier_hmac(key, "email", address.email)
    lock_profiles(conn, [address.profile_id])
    state = conn.execute(
        select(consent_state.c.status, consent_state.c.kind, consent_state.c.expires_at).where(
            consent_state.c.profile_id == address.profile_id,
            consent_state.c.channel == CHANNEL,
            consent_state.c.purpose == purpose,
            consent_state.c.identifier_hash == address_hash,
        )
    ).first()
    if (
        state is not None
        and state.status == "granted"
        and state.kind == "express"
        and (state.expires_at is None or state.expires_at > at)
    ):
        return DoubleOptInStarted(
            address.profile_id, address.email, purpose, "granted", None, None, None
        )
    nonce = secrets.token_urlsafe(12)
    token = issue_token(
        links_key(conn),
        purpose="confirm",
        profile_id=address.profile_id,
        channel=CHANNEL,
        identifier=address.email,
        now=at,
        nonce=nonce,
    )
    record_id = append(
        conn,
        address.profile_id,
        ConsentStatement(
            channel=CHANNEL,
            purpose=purpose,
            status="pending",
            kind="express",
            event_time=at,
            identifier=address.email,
            text=body,
            url=_clean(url, "url", 2000),
            ip=_clean(ip, "ip", 64),
            user_agent=_clean(user_agent, "user_agent", 2000),
            legal_basis=_clean(legal_basis, "legal_basis", 40),
            message_id=nonce,
            recorded_by=recorded_by,
        ),
        key=key,
    )
    # Whole seconds: the token's issue time, which its lifetime counts from.
    issued = at.replace(microsecond=0)
    return DoubleOptInStarted(
        profile_id=address.profile_id,
        identifier=address.email,
        purpose=purpose,
        status="pending",
        record_id=record_id,
        confirm_url=link_url(public_url, CONFIRM_PREFIX, token),
        expires_at=issued + CONFIRM_MAX_AGE,
    )


@dataclass(frozen=True, slots=True)
class Confirmation:
    """A confirmation link that checked out, and whether it was used already."""

    token: LinkToken
    profile_id: int  # the live profile the pending record now belongs to
    pending_record_id: int
    purpose: str
    text: str | None  # the wording agreed to at signup, from the pending record
    legal_basis: str | None
    confirmed_record_id: int | None  # set once confirmed

    @property
    def confirmed(self) -> bool:
        return self.confirmed_record_id is not None


def read_confirmation(conn: Connection, token: str, *, now: datetime | None = None) -> Confirmation:
    """Check a confirmation link without changing anything; raises `LinkRefused`."""
    found = verify_link(conn, token, "confirm", now=now)
    key = existing_secret(conn, SECRET_NAME)
    if key is None:
        raise LinkRefused("unknown", "this link does not match a confirmation we sent")
    address_hash = identifier_hmac(key, "email", found.identifier)
    pending = [
        r
        for r in records_with_message_id(
            conn, address_hash, found.nonce, channel=CHANNEL, statuses=("pending",)
        )
        if int(r.chain_id) == found.profile_id
    ]
    if not pending:
        # Signed by us but never sent for this address (or its record is gone).
        raise LinkRefused("unknown", "this link does not match a confirmation we sent")
    record = pending[0]
    if not is_live(conn, int(record.profile_id)):
        raise LinkRefused("gone", "this address is no longer held")
    confirmed = records_with_message_id(
        conn,
        address_hash,
        found.nonce,
        channel=CHANNEL,
        statuses=("granted",),
        recorded_by=RECORDED_BY,
    )
    text = None
    if record.text_hash is not None:
        text = conn.scalar(
            select(consent_texts.c.text).where(consent_texts.c.hash == record.text_hash)
        )
    return Confirmation(
        token=found,
        profile_id=int(record.profile_id),
        pending_record_id=int(record.id),
        purpose=str(record.purpose),
        text=text,
        legal_basis=record.legal_basis,
        confirmed_record_id=int(confirmed[0].id) if confirmed else None,
    )


def confirm(
    conn: Connection,
    token: str,
    *,
    ip: str | None = None,
    user_agent: str | None = None,
    now: datetime | None = None,
) -> Confirmation:
    """Apply a confirmation click: `granted` with the click's proof, once per link.
    Raises `LinkRefused`; returns the confirmation with its record id."""
    found = read_confirmation(conn, token, now=now)
    lock_profiles(conn, [found.profile_id])
    found = read_confirmation(conn, token, now=now)  # again, under the lock
    if found.confirmed:
        return found
    key = ledger_key(conn)
    record_id = append(
        conn,
        found.profile_id,
        ConsentStatement(
            channel=CHANNEL,
            purpose=found.purpose,
            status="granted",
            kind="express",
            event_time=now or utcnow(),
            identifier=found.token.identifier,
            text=found.text,
            legal_basis=found.legal_basis,
            ip=_clean(ip, "ip", 64),
            user_agent=_clean(user_agent, "user_agent", 2000),
            message_id=found.token.nonce,
            recorded_by=RECORDED_BY,
            proof={"confirms_record": found.pending_record_id},
        ),
        key=key,
    )
    return replace(found, confirmed_record_id=record_id)
