"""Per-installation secrets, made on first use and kept in the database."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from sqlalchemy import Connection, select
from sqlalchemy.exc import IntegrityError

from guestlist.store.tables import installation_secrets
from guestlist.store.types import utcnow

SECRET_BYTES = 32


def installation_secret(conn: Connection, name: str) -> bytes:
    """The secret called `name`, created (random, 32 bytes) the first time it is asked for."""
    found = conn.scalar(
        select(installation_secrets.c.value).where(installation_secrets.c.name == name)
    )
    if found is not None:
        return bytes(found)
    value = secrets.token_bytes(SECRET_BYTES)
    try:
        with conn.begin_nested():
            conn.execute(
                installation_secrets.insert().values(name=name, value=value, created_at=utcnow())
            )
    except IntegrityError:  # another transaction made it first: use theirs
        found = conn.scalar(
            select(installation_secrets.c.value).where(installation_secrets.c.name == name)
        )
        assert found is not None
        return bytes(found)
    return value


def identifier_hmac(key: bytes, kind: str, identifier_key: str) -> str:
    """HMAC-SHA256 of a normalised identifier: matches the same address, reveals nothing."""
    message = f"{kind}:{identifier_key}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()
