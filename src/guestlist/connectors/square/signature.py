"""Square webhook signatures: `x-square-hmacsha256-signature`.

base64(HMAC-SHA256(signature key, notification URL + raw body)); the URL is the one
registered with the subscription, byte for byte (scheme, host, port, path, query).
https://developer.squareup.com/docs/webhooks/step3validate
"""

from __future__ import annotations

from guestlist.connectors._signing import hmac_base64, signatures_match

SIGNATURE_HEADER = "x-square-hmacsha256-signature"


def sign(signature_key: str, notification_url: str, body: bytes) -> str:
    return hmac_base64(signature_key, notification_url.encode() + body)


def is_valid(signature_key: str, notification_url: str, body: bytes, given: str | None) -> bool:
    return signatures_match(sign(signature_key, notification_url, body), given)
