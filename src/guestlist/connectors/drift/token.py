"""Drift webhook verification: a shared token, no HMAC.

Drift sends the app's Verification Token in each event's body (`token`) and in an
`X-Verification-Token` header (https://devdocs.drift.com/docs/webhook-events-1). It is
a bearer secret, not a signature: it proves the sender knows the token, not that the
body is unaltered, and it does not expire. Every copy present must match, compared in
constant time.
"""

from __future__ import annotations

from guestlist.connectors._signing import signatures_match

TOKEN_HEADER = "x-verification-token"


def token_ok(expected: str, body_token: object, header_token: str | None) -> bool:
    """True when a token is given and every given copy equals `expected`."""
    given = [t for t in (body_token, header_token) if t is not None]
    if not given:
        return False
    results = [isinstance(t, str) and signatures_match(expected, t) for t in given]
    return all(results)
