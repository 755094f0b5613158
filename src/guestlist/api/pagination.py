"""Opaque cursors for keyset pagination."""

from __future__ import annotations

import base64

from fastapi import HTTPException


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"id:{last_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int | None:
    if not cursor:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        prefix, _, value = raw.partition(":")
        if prefix != "id":
            raise ValueError(raw)
        return int(value)
    except (ValueError, UnicodeDecodeError):
        raise HTTPException(400, {"field": "cursor", "message": "invalid cursor"}) from None
