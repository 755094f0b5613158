from __future__ import annotations

import pytest

from guestlist.identity.normalize import InvalidIdentifier, normalize
from guestlist.identity.rules import IdentityRules


@pytest.mark.parametrize(
    ("raw", "key", "value"),
    [
        ("  Ann@Example.COM ", "ann@example.com", "ann@example.com"),
        ("j.o.h.n+promo@gmail.com", "john@gmail.com", "j.o.h.n+promo@gmail.com"),
        ("John.Doe@GoogleMail.com", "johndoe@gmail.com", "john.doe@googlemail.com"),
        ("first.last+news@shop.ca", "first.last@shop.ca", "first.last+news@shop.ca"),
    ],
)
def test_email_key_folds_case_gmail_dots_and_tags(raw: str, key: str, value: str) -> None:
    ident = normalize("email", raw)
    assert (ident.kind, ident.key, ident.value) == ("email", key, value)


@pytest.mark.parametrize("raw", ["bob@", "not an email", "@shop.com", "a@b"])
def test_invalid_email_is_refused(raw: str) -> None:
    with pytest.raises(InvalidIdentifier):
        normalize("email", raw)


@pytest.mark.parametrize(
    ("raw", "region", "e164"),
    [
        ("(415) 555-2671", "US", "+14155552671"),
        ("+1 415 555 2671", "CA", "+14155552671"),
        ("020 7946 0958", "GB", "+442079460958"),
        ("whatsapp:+14155552671", "US", "+14155552671"),
        ("0151 23456789", "DE", "+4915123456789"),
    ],
)
def test_phone_is_e164_with_default_region(raw: str, region: str, e164: str) -> None:
    assert normalize("phone", raw, region).key == e164


@pytest.mark.parametrize("raw", ["12", "call me", "+1 555"])
def test_invalid_phone_is_refused(raw: str) -> None:
    with pytest.raises(InvalidIdentifier):
        normalize("phone", raw)


def test_ids_match_exactly_as_given() -> None:
    assert normalize("user_id", " U-1 ").key == "U-1"
    assert normalize("user_id", 42).key == "42"
    with pytest.raises(InvalidIdentifier):
        normalize("user_id", "   ")


@pytest.mark.parametrize(
    ("kind", "key"),
    [
        ("user_id", "null"),
        ("user_id", "anonymous"),
        ("user_id", "-1"),
        ("user_id", "0000"),
        ("anonymous_id", "undefined"),
        ("email", "noemail@shop.com"),
        ("email", "none@none.com"),
        ("phone", "+10000000000"),
        ("phone", "+15555555555"),
    ],
)
def test_blocked_values_never_identify(kind: str, key: str) -> None:
    assert IdentityRules().is_blocked(kind, key)


def test_real_values_are_not_blocked() -> None:
    rules = IdentityRules()
    assert not rules.is_blocked("email", "ann@example.com")
    assert not rules.is_blocked("phone", "+14155552671")
    assert not rules.is_blocked("user_id", "u-123")


def test_blocked_values_are_configurable() -> None:
    rules = IdentityRules(blocked_emails=["orders@myshop.com"])
    assert rules.is_blocked("email", "orders@myshop.com")
