"""Square's signature: the official vectors, and what must not verify."""

from __future__ import annotations

import json

import pytest

from guestlist.connectors.square.signature import is_valid, sign
from tests.connectors.square.helpers import sample

VECTORS = sample("webhook_signature_vectors.json")["vectors"]


@pytest.mark.parametrize("vector", VECTORS, ids=[v["signature_key"] for v in VECTORS])
def test_official_vectors(vector: dict[str, str]) -> None:
    body = vector["body"].encode()
    assert sign(vector["signature_key"], vector["notification_url"], body) == vector["expected"]
    assert is_valid(vector["signature_key"], vector["notification_url"], body, vector["expected"])


def test_test_notification_sample_is_the_vector_body() -> None:
    first = VECTORS[0]
    assert json.loads(first["body"]) == sample("webhook_test_notification.json")


@pytest.mark.parametrize(
    ("change", "value"),
    [
        # The vendor's own negative cases (samples/webhook_signature_vectors.json).
        ("notification_url", "https://webhook.site/79a4f3a-dcfa-49ee-bac5-9d0edad886b9"),
        ("signature_key", "MCmhFRxGX82xMwg5FsaoQA"),
        ("expected", "1z2n3DEJJiUPKcPzQo1ftvbxGdw="),
        ("body", json.dumps(json.loads(VECTORS[0]["body"]), indent=2)),
        ("body", VECTORS[0]["body"].replace("2022-07-13", "2022-06-13")),
        ("expected", ""),
    ],
)
def test_what_does_not_verify(change: str, value: str) -> None:
    vector = {**VECTORS[0], change: value}
    assert not is_valid(
        vector["signature_key"],
        vector["notification_url"],
        vector["body"].encode(),
        vector["expected"],
    )
