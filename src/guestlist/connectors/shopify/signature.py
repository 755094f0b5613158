"""Shopify webhook signatures: base64(HMAC-SHA256(client secret, raw body)).

https://shopify.dev/docs/apps/build/webhooks/subscribe/https#step-5-verify-the-webhook
No timestamp is signed, and X-Shopify-Shop-Domain is not covered: check it separately.
"""

from __future__ import annotations

from guestlist.connectors._signing.hmac import hmac_base64, signatures_match

SIGNATURE_HEADER = "X-Shopify-Hmac-Sha256"


def sign(secret: str, body: bytes) -> str:
    return hmac_base64(secret, body)


def signature_valid(secret: str, body: bytes, given: str | None) -> bool:
    return signatures_match(sign(secret, body), given)
