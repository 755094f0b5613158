from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from guestlist.consent.tokens import (
    LIST_UNSUBSCRIBE_POST,
    LinkToken,
    Purpose,
    TokenExpired,
    TokenInvalid,
    TokenWrongIdentifier,
    TokenWrongPurpose,
    issue_token,
    list_unsubscribe_headers,
    verify_token,
)

KEY = b"k" * 32
OLD_KEY = b"o" * 32
NEW_KEY = b"n" * 32
ISSUED = datetime(2025, 4, 11, 9, 30, tzinfo=UTC)
ANN = "ann@example.com"


def _token(purpose: Purpose = "confirm", identifier: str = ANN, key: bytes = KEY) -> str:
    return issue_token(
        key, purpose=purpose, profile_id=42, channel="email", identifier=identifier, now=ISSUED
    )


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def test_round_trip() -> None:  # C-8
    found = verify_token(_token(), KEY, purpose="confirm", identifier=ANN, now=ISSUED)
    assert found == LinkToken(
        purpose="confirm",
        profile_id=42,
        channel="email",
        identifier=ANN,
        issued_at=ISSUED,
        nonce=found.nonce,
    )
    assert len(found.nonce) >= 16


def test_each_token_has_its_own_nonce() -> None:  # C-8: the ledger records it
    first, second = _token(), _token()
    assert first != second
    nonces = {verify_token(t, KEY, purpose="confirm", now=ISSUED).nonce for t in (first, second)}
    assert len(nonces) == 2


def test_token_is_url_safe() -> None:  # E-2
    token = _token(identifier="j.o+promo@b\u00fccher.example")
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.")
    found = verify_token(token, KEY, purpose="confirm", now=ISSUED)
    assert found.identifier == "j.o+promo@b\u00fccher.example"


def test_tampered_payload_for_another_address_fails() -> None:  # C-8, E-2
    segment, signature = _token("unsubscribe").split(".")
    payload = json.loads(_unb64(segment))
    payload["id"] = "bob@example.com"
    forged = _b64(json.dumps(payload, separators=(",", ":"), sort_keys=True).encode())
    with pytest.raises(TokenInvalid):
        verify_token(f"{forged}.{signature}", KEY, purpose="unsubscribe", now=ISSUED)


def test_token_presented_for_another_address_fails() -> None:  # C-8, E-2
    with pytest.raises(TokenWrongIdentifier):
        verify_token(_token(), KEY, purpose="confirm", identifier="bob@example.com", now=ISSUED)
    with pytest.raises(TokenInvalid):  # the specific error is a TokenInvalid
        verify_token(_token(), KEY, purpose="confirm", identifier="Ann@example.com", now=ISSUED)


def test_tampered_signature_fails() -> None:
    segment, signature = _token().split(".")
    flipped = bytearray(_unb64(signature))
    flipped[0] ^= 1
    with pytest.raises(TokenInvalid):
        verify_token(f"{segment}.{_b64(bytes(flipped))}", KEY, purpose="confirm", now=ISSUED)


def test_other_key_fails() -> None:
    with pytest.raises(TokenInvalid):
        verify_token(_token(), b"x" * 32, purpose="confirm", now=ISSUED)


@pytest.mark.parametrize(
    "token", ["", ".", "abc", "abc.", ".abc", "a.b.c", "a b.c", "\u00e9t\u00e9.x", "x" * 5000]
)
def test_malformed_tokens_fail(token: str) -> None:
    with pytest.raises(TokenInvalid):
        verify_token(token, KEY, purpose="confirm", now=ISSUED)


def test_confirm_link_expires_after_seven_days() -> None:  # C-8
    token = _token()
    verify_token(token, KEY, purpose="confirm", now=ISSUED + timedelta(days=7))
    with pytest.raises(TokenExpired) as raised:
        verify_token(token, KEY, purpose="confirm", now=ISSUED + timedelta(days=7, seconds=1))
    assert raised.value.payload.identifier == ANN  # to offer a fresh link


def test_unsubscribe_link_works_at_least_sixty_days() -> None:  # E-1
    token = _token("unsubscribe")
    for days in (60, 364, 365):
        verify_token(token, KEY, purpose="unsubscribe", now=ISSUED + timedelta(days=days))
    with pytest.raises(TokenExpired):
        verify_token(token, KEY, purpose="unsubscribe", now=ISSUED + timedelta(days=366))


def test_lifetime_is_configurable_but_not_under_sixty_days_for_unsubscribe() -> None:  # E-1
    token = _token("unsubscribe")
    later = ISSUED + timedelta(days=61)
    with pytest.raises(TokenExpired):
        verify_token(token, KEY, purpose="unsubscribe", max_age=timedelta(days=60), now=later)
    with pytest.raises(ValueError, match="60 days"):
        verify_token(token, KEY, purpose="unsubscribe", max_age=timedelta(days=59), now=ISSUED)
    with pytest.raises(TokenExpired):
        verify_token(_token(), KEY, purpose="confirm", max_age=timedelta(hours=1), now=later)


def test_token_from_the_future_fails() -> None:
    with pytest.raises(TokenInvalid):
        verify_token(_token(), KEY, purpose="confirm", now=ISSUED - timedelta(minutes=6))
    verify_token(_token(), KEY, purpose="confirm", now=ISSUED - timedelta(minutes=4))


@pytest.mark.parametrize(
    ("issued", "used"), [("confirm", "unsubscribe"), ("unsubscribe", "confirm")]
)
def test_wrong_purpose_fails(issued: Purpose, used: Purpose) -> None:  # C-8, E-2
    with pytest.raises(TokenWrongPurpose):
        verify_token(_token(issued), KEY, purpose=used, now=ISSUED)


def test_rotated_keys() -> None:
    old = _token(key=OLD_KEY)
    assert verify_token(old, [NEW_KEY, OLD_KEY], purpose="confirm", now=ISSUED).identifier == ANN
    with pytest.raises(TokenInvalid):
        verify_token(old, [NEW_KEY], purpose="confirm", now=ISSUED)
    fresh = issue_token(
        [NEW_KEY, OLD_KEY], purpose="confirm", profile_id=1, channel="email", identifier=ANN
    )
    verify_token(fresh, NEW_KEY, purpose="confirm")  # the first key signs


@pytest.mark.parametrize("keys", [b"short", [], [KEY, b"short"]])
def test_weak_keys_are_refused(keys: bytes | list[bytes]) -> None:
    with pytest.raises(ValueError):
        issue_token(keys, purpose="confirm", profile_id=1, channel="email", identifier=ANN)


def test_naive_clock_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone"):
        verify_token(_token(), KEY, purpose="confirm", now=datetime(2025, 4, 11))


@given(data=st.data())
def test_any_single_byte_change_fails(data: st.DataObject) -> None:
    token = _token("unsubscribe").encode("ascii")
    index = data.draw(st.integers(0, len(token) - 1))
    byte = data.draw(st.integers(0, 255).filter(lambda b: b != token[index]))
    changed = (token[:index] + bytes([byte]) + token[index + 1 :]).decode("latin-1")
    with pytest.raises(TokenInvalid):
        verify_token(changed, KEY, purpose="unsubscribe", now=ISSUED)


def test_one_click_headers() -> None:  # E-2
    token = _token("unsubscribe")
    headers = list_unsubscribe_headers("https://shop.example/u/", token)
    assert headers == {
        "List-Unsubscribe": f"<https://shop.example/u/{token}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }
    assert LIST_UNSUBSCRIBE_POST == "List-Unsubscribe=One-Click"


def test_one_click_headers_with_mailto_second() -> None:  # E-2
    token = _token("unsubscribe")
    for mailto in ("unsubscribe@shop.example", "mailto:unsubscribe@shop.example"):
        value = list_unsubscribe_headers("https://shop.example/u", token, mailto=mailto)
        assert value["List-Unsubscribe"] == (
            f"<https://shop.example/u/{token}>, <mailto:unsubscribe@shop.example>"
        )


@pytest.mark.parametrize(
    ("base_url", "mailto"),
    [
        ("http://shop.example/u", None),
        ("https:///u", None),
        ("https://shop.example/u?list=1", None),
        ("https://shop.example/u", "not-an-address"),
        ("https://shop.example/u", "a@b.example>, <https://evil.example"),
        ("https://shop.example/u", "a@b.example\r\nBcc: x@y.example"),
    ],
)
def test_one_click_headers_refuse_bad_uris(base_url: str, mailto: str | None) -> None:  # E-2
    with pytest.raises(ValueError):
        list_unsubscribe_headers(base_url, _token("unsubscribe"), mailto=mailto)
