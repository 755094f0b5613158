"""What the double opt-in and unsubscribe links share: their key, which address a
link is for, and why a link is refused.

Links are signed with the installation secret `links` (`tokens.issue_token`); the
token names the profile and the exact address key it was sent to (C-6).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, select

from guestlist.consent.optout import existing_secret
from guestlist.consent.tokens import (
    LinkToken,
    Purpose,
    TokenError,
    TokenExpired,
    verify_token,
)
from guestlist.identity.normalize import InvalidIdentifier, normalize_email
from guestlist.store.secrets import installation_secret
from guestlist.store.tables import identifiers, profiles

LINKS_SECRET = "links"


class LinkRefused(Exception):
    """A link that must not be acted on. `reason`: `invalid` (malformed, forged, the
    other purpose's link), `expired`, `unknown` (signed, but not one we sent for that
    address) or `gone` (the profile was erased); `status` is the HTTP status to answer."""

    STATUS = {"invalid": 400, "unknown": 404, "expired": 410, "gone": 410}

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.status = self.STATUS[reason]


class AddressError(Exception):
    """The request does not name one address of one live profile; `field` names the
    part to fix and `status` is the HTTP status to answer."""

    def __init__(self, status: int, field: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.field = field
        self.message = message


def links_key(conn: Connection) -> bytes:
    """The key that signs links (made on first use)."""
    return installation_secret(conn, LINKS_SECRET)


def link_url(public_url: str, prefix: str, token: str) -> str:
    return f"{public_url.rstrip('/')}/{prefix.strip('/')}/{token}"


def verify_link(
    conn: Connection, token: str, purpose: Purpose, *, now: datetime | None = None
) -> LinkToken:
    """The token's payload if it is ours, for `purpose`, not expired; else `LinkRefused`.
    Reads only (a GET must not write)."""
    key = existing_secret(conn, LINKS_SECRET)
    if key is None:
        raise LinkRefused("invalid", "this link is not valid")
    try:
        found = verify_token(token, key, purpose=purpose, now=now)
    except TokenExpired:
        raise LinkRefused("expired", "this link has expired") from None
    except TokenError:
        raise LinkRefused("invalid", "this link is not valid") from None
    if found.channel != "email":
        raise LinkRefused("invalid", "this link is not valid")
    return found


def is_live(conn: Connection, profile_id: int) -> bool:
    """Not merged away and not erased."""
    row = conn.execute(
        select(profiles.c.merged_into, profiles.c.erased_at).where(profiles.c.id == profile_id)
    ).first()
    return row is not None and row.merged_into is None and row.erased_at is None


@dataclass(frozen=True, slots=True)
class ProfileAddress:
    profile_id: int  # live: merges followed
    email: str  # the address key (identity/normalize.py)


def resolve_email(
    conn: Connection, *, profile_id: int | None = None, email: str | None = None
) -> ProfileAddress:
    """The live profile and email address a link is for.

    With `profile_id`: the profile (merges followed) and its only address, or `email`,
    which it must hold. With `email` alone: the one live profile holding it. Raises
    `AddressError` otherwise.
    """
    key = None
    if email is not None:
        try:
            key = normalize_email(email).key
        except InvalidIdentifier as exc:
            raise AddressError(400, "email", str(exc)) from None
    if profile_id is None:
        if key is None:
            raise AddressError(400, "profile_id", "name the profile_id or the email")
        holders = list(
            conn.scalars(
                select(profiles.c.id)
                .join(identifiers, identifiers.c.profile_id == profiles.c.id)
                .where(
                    identifiers.c.kind == "email",
                    identifiers.c.key == key,
                    profiles.c.merged_into.is_(None),
                    profiles.c.erased_at.is_(None),
                )
                .order_by(profiles.c.id)
            )
        )
        if not holders:
            raise AddressError(404, "email", "no profile holds this address")
        if len(holders) > 1:
            raise AddressError(
                409, "email", "several profiles hold this address: name the profile_id"
            )
        return ProfileAddress(int(holders[0]), key)
    row = conn.execute(
        select(profiles.c.id, profiles.c.merged_into, profiles.c.erased_at).where(
            profiles.c.id == profile_id
        )
    ).first()
    if row is None:
        raise AddressError(404, "profile_id", "no such profile")
    live = int(row.merged_into) if row.merged_into is not None else int(row.id)
    erased_at = row.erased_at
    if row.merged_into is not None:  # merges keep `merged_into` pointing at a survivor
        erased_at = conn.scalar(select(profiles.c.erased_at).where(profiles.c.id == live))
    if erased_at is not None:
        raise AddressError(410, "profile_id", "the profile was erased")
    held = list(
        conn.scalars(
            select(identifiers.c.key)
            .where(identifiers.c.profile_id == live, identifiers.c.kind == "email")
            .order_by(identifiers.c.key)
        )
    )
    if key is not None:
        if key not in held:
            raise AddressError(400, "email", "the profile does not hold this address")
        return ProfileAddress(live, key)
    if not held:
        raise AddressError(400, "email", "the profile has no email address")
    if len(held) > 1:
        raise AddressError(400, "email", "the profile has several addresses: name the email")
    return ProfileAddress(live, held[0])
