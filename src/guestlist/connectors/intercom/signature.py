"""Intercom webhook signatures: `X-Hub-Signature`.

`sha1=` + hex(HMAC-SHA1(the app's client secret, raw body)).
https://developers.intercom.com/docs/webhooks/webhook-notifications (signed notifications)
"""

from __future__ import annotations

from guestlist.connectors._signing import hmac_hex, signatures_match

SIGNATURE_HEADER = "x-hub-signature"


def sign(client_secret: str, body: bytes) -> str:
    return "sha1=" + hmac_hex(client_secret, body, "sha1")


def is_valid(client_secret: str, body: bytes, given: str | None) -> bool:
    return signatures_match(sign(client_secret, body), given.lower() if given else given)
