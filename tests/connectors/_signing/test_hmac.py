"""HMAC helpers against the vendors' published vectors (CONNECTORS.md §2)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from guestlist.connectors._signing import (
    StaleTimestamp,
    check_fresh,
    hmac_base64,
    hmac_hex,
    signatures_match,
)


def test_shopify_vector() -> None:
    assert hmac_base64("test_secret_key", b'{"foo": "bar"}') == (
        "B23tXN681gZ0qIWNRrgtzBE9XSDo5yaUu6wfmhu3a7g="
    )


def test_github_style_hub_signature_vector() -> None:
    # The construction Meta's X-Hub-Signature-256 uses (GitHub's documented vector).
    assert hmac_hex("It's a Secret to Everybody", b"Hello, World!") == (
        "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    )


def test_sha1_digest() -> None:
    assert len(hmac_hex("k", b"body", "sha1")) == 40


def test_signatures_match_is_exact_and_refuses_missing() -> None:
    good = hmac_base64("s", b"x")
    assert signatures_match(good, good)
    assert signatures_match(good, f" {good} ")  # header whitespace
    flipped = good[:3] + ("B" if good[3] != "B" else "C") + good[4:]
    assert not signatures_match(good, flipped)
    assert not signatures_match(good, None)
    assert not signatures_match(good, "")


def test_replay_window() -> None:
    now = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
    check_fresh(now - timedelta(seconds=299), now, timedelta(seconds=300))
    with pytest.raises(StaleTimestamp):
        check_fresh(now - timedelta(seconds=301), now, timedelta(seconds=300))
    with pytest.raises(StaleTimestamp):  # from the future, too
        check_fresh(now + timedelta(seconds=301), now, timedelta(seconds=300))
