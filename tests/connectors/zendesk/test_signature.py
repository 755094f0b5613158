"""Zendesk's published vector, and the order its documentation describes."""

from __future__ import annotations

from guestlist.connectors.zendesk.signature import TEST_SECRET, matches, sign
from tests.connectors.zendesk.helpers import sample


def test_the_published_example_verifies_as_body_then_timestamp() -> None:
    v = sample("webhook_signature_vectors.json")["doc_example_vector"]
    body = v["body"].encode()
    assert sign(v["secret"], v["timestamp"], body, "body+timestamp") == v["expected"]
    assert matches(v["secret"], v["timestamp"], body, v["expected"])


def test_the_documented_order_verifies_too() -> None:
    v = sample("webhook_signature_vectors.json")["doc_example_vector"]
    body = v["body"].encode()
    documented = "Rry/4TtIdFyawtXXp8QdI6tlAUUQ/5kL1OTp5qo/ZIk="  # CONNECTORS.md §2
    assert sign(v["secret"], v["timestamp"], body) == documented
    assert matches(v["secret"], v["timestamp"], body, documented)


def test_wrong_secret_body_timestamp_or_nothing_fail() -> None:
    v = sample("webhook_signature_vectors.json")["doc_example_vector"]
    body = v["body"].encode()
    assert not matches("other", v["timestamp"], body, v["expected"])
    assert not matches(v["secret"], "2021-07-25T10:00:01Z", body, v["expected"])
    assert not matches(v["secret"], v["timestamp"], body + b" ", v["expected"])
    assert not matches(v["secret"], v["timestamp"], body, None)
    assert not matches(v["secret"], v["timestamp"], body, "")


def test_the_static_test_secret_is_used_as_its_bytes() -> None:
    vectors = sample("webhook_signature_vectors.json")
    assert vectors["static_test_secret_for_builder_test_requests"] == TEST_SECRET
    import base64
    import hashlib
    import hmac
    expected = base64.b64encode(hmac.new(TEST_SECRET.encode(), b"tsbody",
                                         hashlib.sha256).digest()).decode()
    assert sign(TEST_SECRET, "ts", b"body") == expected
