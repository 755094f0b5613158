"""Identifier normalisation: the value as given, and the key profiles are matched on."""

from __future__ import annotations

import re
from dataclasses import dataclass

import phonenumbers
from email_validator import EmailNotValidError, EmailSyntaxError, validate_email
from email_validator.rfc_constants import DOT_ATOM_TEXT, EMAIL_MAX_LENGTH

# Providers that ignore dots in the local part; `+tag` is folded for every domain.
DOT_INSENSITIVE_DOMAINS = {"gmail.com": "gmail.com", "googlemail.com": "gmail.com"}


class InvalidIdentifier(ValueError):
    """The value cannot be an identifier of that kind (kept on the event as an issue)."""


@dataclass(frozen=True, slots=True)
class Identifier:
    kind: str  # email | phone | user_id | anonymous_id | external
    key: str  # what profiles are matched on
    value: str  # as given (trimmed)

    def __reduce__(self) -> tuple[type[Identifier], tuple[str, str, str]]:
        # An import's reader process sends these by the million: the dataclass default
        # (a state dict built from `fields()` on each object) cost both processes 10 %.
        return (Identifier, (self.kind, self.key, self.value))


# What normalising a value gave (the identifier, or why it is invalid), by input: the
# same addresses and numbers recur on event after event of the same people.
Normalized = Identifier | str
MemoKey = tuple[str, str, str]  # kind, raw value, region (phones only)
MEMO_SIZE = 100_000
_memo: dict[MemoKey, Normalized] = {}


def _memoized(key: MemoKey) -> Normalized:
    found = _memo.get(key)
    if found is None:
        kind, raw, region = key
        found = _normalize_email(raw) if kind == "email" else _normalize_phone(raw, region)
        if len(_memo) >= MEMO_SIZE:
            _memo.clear()  # cheap, and what matters is the batch at hand
        _memo[key] = found
    return found


def normalize_email(raw: str) -> Identifier:
    found = _memoized(("email", raw, ""))
    if isinstance(found, str):
        raise InvalidIdentifier(found)
    return found


# A domain written in plain ASCII hostname characters (checked by the library below).
_ASCII_HOSTNAME = re.compile(r"[A-Za-z0-9.\-]+\Z")
# The library's verdict on each domain: its normalised form, or why it is invalid (the
# message: a kept exception object would grow its traceback with every raise). Most
# addresses share a few domains; checking a domain costs most of a validation.
_domains: dict[str, tuple[bool, str]] = {}


def _checked_domain(domain: str) -> tuple[bool, str]:
    """(True, the normalised domain) or (False, why the library refuses it)."""
    found = _domains.get(domain)
    if found is None:
        try:
            found = (True, validate_email("a@" + domain, check_deliverability=False).domain)
        except EmailNotValidError as exc:
            found = (False, str(exc))
        if len(_domains) < 10_000:
            _domains[domain] = found
    return found


def _validated(value: str) -> str:
    """`validate_email(value).normalized`, or EmailNotValidError, as the library decides.

    The common address (an ASCII dot-atom before the @, an ASCII domain that the library
    keeps as written, at most 254 characters) is judged with the library's own local
    part pattern and its cached verdict on the domain; anything else goes to the library
    whole. tests/identity/test_normalize.py compares the two on generated addresses.
    """
    local, at, domain = value.rpartition("@")
    if (
        at
        and len(value) <= EMAIL_MAX_LENGTH
        and DOT_ATOM_TEXT.match(local)
        and _ASCII_HOSTNAME.match(domain)
    ):
        valid, checked = _checked_domain(domain)
        if not valid:
            raise EmailSyntaxError(checked)
        if checked == domain.lower():
            return f"{local}@{checked}"
    return validate_email(value, check_deliverability=False).normalized


def _normalize_email(raw: str) -> Normalized:
    value = raw.strip()
    try:
        normalized = _validated(value)
    except EmailNotValidError as exc:
        return str(exc)
    local, _, domain = normalized.lower().rpartition("@")
    local = local.split("+", 1)[0] or local
    if domain in DOT_INSENSITIVE_DOMAINS:
        domain = DOT_INSENSITIVE_DOMAINS[domain]
        local = local.replace(".", "")
    return Identifier("email", f"{local}@{domain}", value.lower())


# Country code + leading digits → the region a number there last validated in. A
# guess only: it is checked before it is trusted.
_region_by_prefix: dict[tuple[int | None, str], str] = {}


def _is_valid_number(number: phonenumbers.PhoneNumber, region: str) -> bool:
    """`phonenumbers.is_valid_number`, without its scan of every region sharing a code
    (25 share +1) when the expected or a recently seen region fits, ten times cheaper."""
    if phonenumbers.is_valid_number_for_region(number, region):
        return True
    prefix = (number.country_code, str(number.national_number)[:3])
    guess = _region_by_prefix.get(prefix)
    if guess is not None and phonenumbers.is_valid_number_for_region(number, guess):
        return True
    found = phonenumbers.region_code_for_number(number)
    if found is None or not phonenumbers.is_valid_number_for_region(number, found):
        return False
    if len(_region_by_prefix) < 100_000:
        _region_by_prefix[prefix] = found
    return True


def normalize_phone(raw: str, region: str = "US") -> Identifier:
    found = _memoized(("phone", raw, region))
    if isinstance(found, str):
        raise InvalidIdentifier(found)
    return found


def _normalize_phone(raw: str, region: str) -> Normalized:
    value = raw.strip()
    if value.startswith("whatsapp:"):
        value = value[len("whatsapp:") :]
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException as exc:
        return f"not a phone number: {exc}"
    if not _is_valid_number(number, region):
        return f"not a valid phone number for region {region}"
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return Identifier("phone", e164, value)


def normalize_id(kind: str, raw: object) -> Identifier:
    """user_id, anonymous_id and external ids match exactly as given (trimmed)."""
    value = str(raw).strip()
    if not value:
        raise InvalidIdentifier("empty")
    return Identifier(kind, value, value)


def normalize(kind: str, raw: object, region: str = "US") -> Identifier:
    if not isinstance(raw, (str, int)):  # a tuple: `str | int` would build a union per call
        raise InvalidIdentifier(f"expected a string, got {type(raw).__name__}")
    if kind == "email":
        return normalize_email(str(raw))
    if kind == "phone":
        return normalize_phone(str(raw), region)
    return normalize_id(kind, raw)
