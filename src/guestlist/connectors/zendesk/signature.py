"""Zendesk webhook signatures: `X-Zendesk-Webhook-Signature`.

base64(HMAC-SHA256(signing secret, timestamp + body)), the timestamp being the
`X-Zendesk-Webhook-Signature-Timestamp` header (ISO 8601, UTC). The secret is used as
its UTF-8 bytes, never base64-decoded.

Zendesk's documentation disagrees with itself on the order: the current text and its
Node example sign TIMESTAMP + BODY, while the published example vector (secret
`HRkRd4Be…`, body `{"say": "hello"}`, timestamp `2021-07-25T10:00:00Z` →
`tRDSF7UR…`) only verifies as BODY + TIMESTAMP, as that page's older wording said. We
compute both and accept either (each compared in constant time). Accepting both
orders lets no one forge: a signature over `body + ts` could only pass as
`ts' + body'` if `ts'` were a prefix of the body, and a body is a JSON object (it
starts with `{`, verified after the signature) while a timestamp starts with a digit.
See README.md.

Requests sent by the webhook builder's "Test webhook" button are signed with a static
secret, the same for every account (`TEST_SECRET`, used as raw bytes).
"""

from __future__ import annotations

from typing import Literal

from guestlist.connectors._signing import hmac_base64, signatures_match

SIGNATURE_HEADER = "x-zendesk-webhook-signature"
TIMESTAMP_HEADER = "x-zendesk-webhook-signature-timestamp"
INVOCATION_HEADER = "x-zendesk-webhook-invocation-id"
WEBHOOK_ID_HEADER = "x-zendesk-webhook-id"
TEST_SECRET = "dGhpc19zZWNyZXRfaXNfZm9yX3Rlc3Rpbmdfb25seQ=="

Order = Literal["timestamp+body", "body+timestamp"]


def sign(secret: str, timestamp: str, body: bytes, order: Order = "timestamp+body") -> str:
    ts = timestamp.encode()
    message = ts + body if order == "timestamp+body" else body + ts
    return hmac_base64(secret, message)


def matches(secret: str, timestamp: str, body: bytes, given: str | None) -> bool:
    """Either order, both computed and compared in constant time."""
    documented = signatures_match(sign(secret, timestamp, body, "timestamp+body"), given)
    example = signatures_match(sign(secret, timestamp, body, "body+timestamp"), given)
    return documented | example
