"""HMAC signatures as vendors send them, compared in constant time."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import datetime, timedelta

DIGESTS = {"sha1": hashlib.sha1, "sha256": hashlib.sha256}


def _key(secret: str | bytes) -> bytes:
    return secret.encode() if isinstance(secret, str) else secret


def hmac_base64(secret: str | bytes, message: bytes, digest: str = "sha256") -> str:
    return base64.b64encode(hmac.new(_key(secret), message, DIGESTS[digest]).digest()).decode()


def hmac_hex(secret: str | bytes, message: bytes, digest: str = "sha256") -> str:
    return hmac.new(_key(secret), message, DIGESTS[digest]).hexdigest()


def signatures_match(expected: str, given: str | None) -> bool:
    """Constant-time equality; a missing signature never matches."""
    if not given:
        return False
    return hmac.compare_digest(expected.encode(), given.strip().encode())


class StaleTimestamp(ValueError):
    """A signed timestamp outside the replay window."""


def check_fresh(signed_at: datetime, now: datetime, window: timedelta) -> None:
    """Refuse a delivery signed more than `window` before (or after) `now`."""
    if abs(now - signed_at) > window:
        raise StaleTimestamp(
            f"signed at {signed_at.isoformat()}, more than {int(window.total_seconds())} s "
            f"from now ({now.isoformat()})"
        )
