"""Meta webhook signatures: `X-Hub-Signature-256`.

`sha256=` + lowercase hex(HMAC-SHA256(app secret, body)), computed over the payload as
Meta sent it: non-ASCII characters escaped (`\\u00e9`), so the raw bytes are verified,
never a re-serialisation.
https://developers.facebook.com/docs/graph-api/webhooks/getting-started#event-notifications
"""

from __future__ import annotations

from guestlist.connectors._signing import hmac_hex, signatures_match

SIGNATURE_HEADER = "x-hub-signature-256"


def sign(app_secret: str, body: bytes) -> str:
    return "sha256=" + hmac_hex(app_secret, body)


def is_valid(app_secret: str, body: bytes, given: str | None) -> bool:
    # Meta writes lowercase hex; a proxy that upper-cases it changes nothing we check.
    return signatures_match(sign(app_secret, body), given.lower() if given else given)
