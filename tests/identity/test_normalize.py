from __future__ import annotations

import pickle

import pytest
from email_validator import EmailNotValidError, validate_email
from hypothesis import example, given, settings
from hypothesis import strategies as st

from guestlist.identity.normalize import InvalidIdentifier, _validated, normalize
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


_LOCAL = st.text(st.sampled_from("aZ09._+-!#$%&'*/=?^`{|}~\"(),:;<>@[\\] é"), max_size=70)
_LABEL = st.text(st.sampled_from("aZ09-_é"), min_size=0, max_size=65)
_DOMAIN = st.one_of(
    st.lists(_LABEL, min_size=1, max_size=5).map(".".join),
    st.sampled_from(
        [
            "example.com",
            "Shop.CA",
            "localhost",
            "x.test",
            "a.invalid",
            "xn--bcher-kva.example",
            "1.2.3.4",
            "[127.0.0.1]",
            "example.com.",
            "-a.com",
            "a" * 250 + ".com",
            ".".join(["a" * 63] * 3) + ".com",
        ]
    ),
)


def _library(value: str) -> tuple[str, str]:
    try:
        return ("ok", validate_email(value, check_deliverability=False).normalized)
    except EmailNotValidError as exc:
        return ("error", str(exc))


def _ours(value: str) -> tuple[str, str]:
    try:
        return ("ok", _validated(value))
    except EmailNotValidError as exc:
        return ("error", str(exc))


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.builds(lambda lo, d: f"{lo}@{d}", _LOCAL, _DOMAIN), st.text(max_size=40)))
@example("b" * 190 + "@" + "a" * 60 + ".com")  # 255 characters, too long
@example("b" * 189 + "@" + "a" * 60 + ".com")
@example("Ann@Bücher.example")
def test_email_fast_path_decides_as_the_library_does(value: str) -> None:
    """The cached-domain path gives the library's own normalised form or error."""
    assert _ours(value) == _library(value)


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


def test_an_identifier_crosses_processes_whole() -> None:
    # An import's reader process hands its normalised identifiers over by pickle.
    ident = normalize("email", " Jo.Ann+news@GMail.com ")
    copy = pickle.loads(pickle.dumps([ident, normalize("phone", "(416) 555-0199", "CA")]))
    assert copy == [ident, normalize("phone", "(416) 555-0199", "CA")]
    assert (copy[0].kind, copy[0].key) == ("email", "joann@gmail.com")
    assert copy[0].value == "jo.ann+news@gmail.com"


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
