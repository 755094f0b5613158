"""HMAC helpers for webhook signatures: constant-time comparison, replay windows."""

from guestlist.connectors._signing.hmac import (
    StaleTimestamp,
    check_fresh,
    hmac_base64,
    hmac_hex,
    signatures_match,
)

__all__ = ["StaleTimestamp", "check_fresh", "hmac_base64", "hmac_hex", "signatures_match"]
