"""Encryption at rest for credentials, keyed by `GUESTLIST_SECRET_KEY`.

Fernet (AES-128-CBC with HMAC-SHA256, from `cryptography`) authenticates what it
decrypts, so a token written under another key, or altered, is refused rather than
read as garbage. The Fernet key is derived from the secret key with HKDF, so the
secret key itself can be any length of text.
"""

from __future__ import annotations

import base64
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from guestlist.settings import get_settings

_INFO = b"guestlist credentials at rest v1"


class UndecryptableSecret(ValueError):
    """Stored credentials that this installation's secret key cannot open."""


@lru_cache(maxsize=4)
def _fernet(secret_key: str) -> Fernet:
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(
        secret_key.encode()
    )
    return Fernet(base64.urlsafe_b64encode(derived))


def encrypt(plaintext: bytes, secret_key: str | None = None) -> bytes:
    return _fernet(secret_key or get_settings().secret_key).encrypt(plaintext)


def decrypt(token: bytes, secret_key: str | None = None) -> bytes:
    try:
        return _fernet(secret_key or get_settings().secret_key).decrypt(token)
    except InvalidToken:
        raise UndecryptableSecret(
            "stored credentials cannot be decrypted with this GUESTLIST_SECRET_KEY "
            "(was the key changed?); set the credentials again"
        ) from None
