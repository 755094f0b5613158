"""Credentials at rest: authenticated encryption under GUESTLIST_SECRET_KEY."""

from __future__ import annotations

import pytest

from guestlist.store.crypto import UndecryptableSecret, decrypt, encrypt


def test_round_trip_and_no_plaintext_in_the_token() -> None:
    token = encrypt(b'{"access_token": "shpat_123"}', "key-one")
    assert b"shpat_123" not in token
    assert decrypt(token, "key-one") == b'{"access_token": "shpat_123"}'


def test_another_key_or_a_changed_byte_is_refused() -> None:
    token = encrypt(b"secret", "key-one")
    with pytest.raises(UndecryptableSecret, match="GUESTLIST_SECRET_KEY"):
        decrypt(token, "key-two")
    tampered = token[:-5] + (b"A" if token[-5:-4] != b"A" else b"B") + token[-4:]
    with pytest.raises(UndecryptableSecret):
        decrypt(tampered, "key-one")
