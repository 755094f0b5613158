"""Signed, expiring links for email: double opt-in confirmation (C-8) and one-click
unsubscribe (E-1, E-2, RFC 8058).

A token is `<payload>.<signature>`, both base64url without padding. The payload is
compact JSON naming the purpose, profile, channel, the exact identifier the link was
sent to, the issue time and a random nonce; the signature is HMAC-SHA256 over a fixed
context string and the payload segment as sent. The payload is signed, not encrypted:
anyone holding the link can read the address in it.

Keys rotate: the first key signs, every key verifies. Lifetimes are checked when a
token is verified (confirm: 7 days; unsubscribe: 365 days, never under the 60 days
CASL requires), so a shop can shorten them for tokens already sent.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, get_args
from urllib.parse import urlsplit

Purpose = Literal["confirm", "unsubscribe"]
PURPOSES: tuple[Purpose, ...] = get_args(Purpose)

CONFIRM_MAX_AGE = timedelta(days=7)  # C-8
UNSUBSCRIBE_MAX_AGE = timedelta(days=365)  # E-1
UNSUBSCRIBE_MIN_AGE = timedelta(days=60)  # E-1: CASL keeps the link working 60 days
MAX_AGE: dict[Purpose, timedelta] = {
    "confirm": CONFIRM_MAX_AGE,
    "unsubscribe": UNSUBSCRIBE_MAX_AGE,
}
CLOCK_SKEW = timedelta(minutes=5)  # a token issued this far "in the future" still passes
MIN_KEY_BYTES = 32

LIST_UNSUBSCRIBE_POST = "List-Unsubscribe=One-Click"  # the header value and the POST body

_VERSION = 1
_CONTEXT = b"guestlist/consent-link/v1\x00"  # a key shared with other signers cannot mint these
_MAX_TOKEN_LENGTH = 4096
_SEGMENT = re.compile(r"[A-Za-z0-9_-]+")
_TOKEN = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
_FIELDS = frozenset({"v", "p", "pid", "ch", "id", "iat", "n"})


class TokenError(ValueError):
    """A link token that must not be acted on."""


class TokenInvalid(TokenError):
    """Malformed, or not signed by any of our keys."""


class TokenWrongIdentifier(TokenInvalid):
    """Signed, but for another address than the one it is presented for."""


class TokenWrongPurpose(TokenError):
    """Signed, but for the other purpose (a confirm link used to unsubscribe, say)."""


class TokenExpired(TokenError):
    """Signed, but older than its lifetime; `payload` says whose it was (to offer a new
    confirmation link, say)."""

    def __init__(self, message: str, payload: LinkToken) -> None:
        super().__init__(message)
        self.payload = payload


@dataclass(frozen=True, slots=True)
class LinkToken:
    """What a verified token says."""

    purpose: Purpose
    profile_id: int
    channel: str  # "email" for both links today
    identifier: str  # the identifier key the link was sent to (C-6)
    issued_at: datetime  # UTC, whole seconds
    nonce: str  # unique per token: the ledger records it so a confirm is applied once


def issue_token(
    keys: bytes | Sequence[bytes],
    *,
    purpose: Purpose,
    profile_id: int,
    channel: str,
    identifier: str,
    now: datetime | None = None,
    nonce: str | None = None,
) -> str:
    """A token for one purpose and one address, signed with the first key."""
    if purpose not in PURPOSES:
        raise ValueError(f"unknown purpose {purpose!r}")
    if not channel or not identifier:
        raise ValueError("a token needs the channel and the identifier it is sent to")
    issued = _utc(now)
    payload = {
        "v": _VERSION,
        "p": purpose,
        "pid": profile_id,
        "ch": channel,
        "id": identifier,
        "iat": int(issued.timestamp()),
        "n": nonce if nonce is not None else secrets.token_urlsafe(12),
    }
    segment = _b64encode(
        json.dumps(payload, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode()
    )
    return f"{segment}.{_sign(_keys(keys)[0], segment)}"


def verify_token(
    token: str,
    keys: bytes | Sequence[bytes],
    *,
    purpose: Purpose,
    identifier: str | None = None,
    max_age: timedelta | None = None,
    now: datetime | None = None,
) -> LinkToken:
    """The token's payload, if any key signed it, it is for `purpose` (and for
    `identifier`, when given) and not older than `max_age` (default per purpose).

    Raises `TokenInvalid`, `TokenWrongIdentifier`, `TokenWrongPurpose` or `TokenExpired`.
    """
    lifetime = MAX_AGE[purpose] if max_age is None else max_age
    if purpose == "unsubscribe" and lifetime < UNSUBSCRIBE_MIN_AGE:
        raise ValueError(f"an unsubscribe link must work for {UNSUBSCRIBE_MIN_AGE.days} days")
    signing_keys = _keys(keys)
    if not isinstance(token, str) or len(token) > _MAX_TOKEN_LENGTH or not token.isascii():
        raise TokenInvalid("malformed token")
    segment, dot, signature = token.partition(".")
    if not dot or not _SEGMENT.fullmatch(segment) or not _SEGMENT.fullmatch(signature):
        raise TokenInvalid("malformed token")
    signed = False
    for key in signing_keys:  # every key, so timing does not tell which one signed
        signed |= hmac.compare_digest(_sign(key, segment), signature)
    if not signed:
        raise TokenInvalid("bad signature")
    found = _payload(segment)
    if found.purpose != purpose:
        raise TokenWrongPurpose(f"a {found.purpose} token used to {purpose}")
    if identifier is not None and found.identifier != identifier:
        raise TokenWrongIdentifier("token issued for another address")
    current = _utc(now)
    if found.issued_at > current + CLOCK_SKEW:
        raise TokenInvalid("token issued in the future")
    if current - found.issued_at > lifetime:
        raise TokenExpired(f"{purpose} token older than {lifetime}", found)
    return found


def list_unsubscribe_headers(
    base_url: str, token: str, *, mailto: str | None = None
) -> dict[str, str]:
    """`List-Unsubscribe` and `List-Unsubscribe-Post` for a marketing email (E-2).

    RFC 8058 one-click needs an https URI: `<base_url/token>`; a `mailto` (an address or
    a `mailto:` URI) may follow it as a second choice for clients without one-click.
    """
    if not _TOKEN.fullmatch(token):
        raise ValueError("not a link token")
    url = f"{base_url.rstrip('/')}/{token}"
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname or parts.query or parts.fragment:
        raise ValueError(f"one-click unsubscribe needs an https URL without query: {base_url!r}")
    uris = [_header_uri(url)]
    if mailto:
        uri = mailto if mailto.lower().startswith("mailto:") else f"mailto:{mailto}"
        if "@" not in uri:
            raise ValueError(f"not a mailto address: {mailto!r}")
        uris.append(_header_uri(uri))
    return {
        "List-Unsubscribe": ", ".join(f"<{u}>" for u in uris),
        "List-Unsubscribe-Post": LIST_UNSUBSCRIBE_POST,
    }


# --- internals ------------------------------------------------------------------------


def _keys(keys: bytes | Sequence[bytes]) -> tuple[bytes, ...]:
    found = (keys,) if isinstance(keys, bytes) else tuple(keys)
    if not found:
        raise ValueError("no signing key")
    for key in found:
        if not isinstance(key, bytes) or len(key) < MIN_KEY_BYTES:
            raise ValueError(f"signing keys are bytes, at least {MIN_KEY_BYTES} long")
    return found


def _utc(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return now.astimezone(UTC)


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _sign(key: bytes, segment: str) -> str:
    return _b64encode(hmac.new(key, _CONTEXT + segment.encode("ascii"), hashlib.sha256).digest())


def _payload(segment: str) -> LinkToken:
    """Decode a payload whose signature has been checked."""
    try:
        raw: Any = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise TokenInvalid("malformed payload") from exc
    if not isinstance(raw, dict) or set(raw) != _FIELDS or raw["v"] != _VERSION:
        raise TokenInvalid("unknown payload")
    purpose, pid, channel, ident, iat, nonce = (
        raw[k] for k in ("p", "pid", "ch", "id", "iat", "n")
    )
    if (
        purpose not in PURPOSES
        or type(pid) is not int
        or type(iat) is not int
        or not all(isinstance(v, str) and v for v in (channel, ident, nonce))
    ):
        raise TokenInvalid("unknown payload")
    try:
        issued_at = datetime.fromtimestamp(iat, UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise TokenInvalid("unknown payload") from exc
    return LinkToken(
        purpose=purpose,
        profile_id=pid,
        channel=channel,
        identifier=ident,
        issued_at=issued_at,
        nonce=nonce,
    )


def _header_uri(uri: str) -> str:
    if any(c in uri for c in ' <>,"\r\n\t') or not uri.isascii():
        raise ValueError(f"cannot go in a List-Unsubscribe header: {uri!r}")
    return uri
