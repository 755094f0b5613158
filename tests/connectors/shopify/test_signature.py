from __future__ import annotations

import orjson

from guestlist.connectors.shopify.signature import sign, signature_valid
from tests.fakes.shopify import SAMPLES


def test_official_vector() -> None:
    vector = orjson.loads((SAMPLES / "webhook_signature_vector.json").read_bytes())
    body = vector["raw_body"].encode()
    assert sign(vector["secret"], body) == vector["expected"]
    assert vector["expected"] == "B23tXN681gZ0qIWNRrgtzBE9XSDo5yaUu6wfmhu3a7g="
    assert signature_valid("test_secret_key", b'{"foo": "bar"}', vector["expected"])


def test_one_byte_or_another_secret_does_not_verify() -> None:
    good = sign("test_secret_key", b'{"foo": "bar"}')
    assert not signature_valid("test_secret_key", b'{"foo":"bar"}', good)
    assert not signature_valid("other_secret", b'{"foo": "bar"}', good)
    assert not signature_valid("test_secret_key", b'{"foo": "bar"}', None)
    assert not signature_valid("test_secret_key", b'{"foo": "bar"}', "")
