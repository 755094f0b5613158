"""Settings refused naming the field (never echoing the key), and the JWT bearer grant
against the fake token endpoint, which verifies the signature with the public key."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from guestlist.connectors.base import ConnectorError
from guestlist.connectors.connections import SettingsInvalid, validate_settings
from guestlist.connectors.google_sheets.auth import ServiceAccountAuth
from guestlist.connectors.google_sheets.connector import GoogleSheetsConnector
from guestlist.connectors.google_sheets.settings import GoogleSheetsSettings
from tests.connectors.google_sheets.helpers import MAPPING, settings
from tests.fakes import serve
from tests.fakes.google_sheets import FakeSheets, generated_rows, key_file, new_key


def refused(raw: dict[str, Any]) -> SettingsInvalid:
    with pytest.raises(SettingsInvalid) as caught:
        validate_settings(GoogleSheetsConnector(), raw)
    return caught.value


def test_settings_accept_a_json_string_mapping(key: rsa.RSAPrivateKey) -> None:
    parsed = validate_settings(GoogleSheetsConnector(),
                               settings(key, mapping=json.dumps(MAPPING)))
    assert isinstance(parsed, GoogleSheetsSettings)
    assert parsed.account().client_email.endswith("iam.gserviceaccount.com")


@pytest.mark.parametrize(("change", "field"), [
    ({"range": "A1:Z"}, "range"),
    ({"range": "Customers!A5:Z3"}, "range"),
    ({"mapping": "{oops"}, "mapping"),
    ({"mapping": {"columns": {"First Name": "first_name"}}}, "mapping.columns"),
    ({"mapping": {"columns": {"Email": "Email Address!"}}}, "mapping.columns"),
    # C-2: a consent column needs its wording; C-3: and when it was given.
    ({"mapping": {"columns": {"Email": "email", "Opt in": {"consent": {"channel": "email"}}}}},
     "mapping.columns"),
    ({"mapping": {"columns": {"Email": "email", "Opt in": {"consent": {
        "channel": "email", "text": "Yes, email me"}}}}}, "mapping.columns"),
    ({"service_account_json": "not json"}, "service_account_json"),
    ({"service_account_json": json.dumps({"client_email": "a@b.c", "private_key": "-----BEGIN "
                                          "PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----"})},
     "service_account_json"),
])
def test_bad_settings_are_refused_naming_the_field(
    key: rsa.RSAPrivateKey, change: dict[str, Any], field: str
) -> None:
    error = refused(settings(key, **change))
    assert error.field.startswith(field), (error.field, str(error))
    assert "PRIVATE KEY" not in str(error) and "AAAA" not in str(error)


@pytest.fixture
def fake(key: rsa.RSAPrivateKey) -> Iterator[FakeSheets]:
    sheets = FakeSheets(key.public_key(), generated_rows(3))
    with serve(sheets.app()) as url:
        sheets.base = url
        yield sheets


def test_the_jwt_grant_is_verified_with_the_public_key(
    key: rsa.RSAPrivateKey, fake: FakeSheets
) -> None:
    raw = validate_settings(GoogleSheetsConnector(), settings(key, fake.base))
    assert isinstance(raw, GoogleSheetsSettings)
    auth = ServiceAccountAuth(raw.account(), raw.token_endpoint())
    first = auth.token()
    assert first.startswith("ya29.") and fake.grants == 1
    assert auth.token() == first  # reused while valid
    # A token within five minutes of its expiry is replaced before it is used.
    fake.token_lifetime = 250
    second = auth.token(renew=True)
    third = auth.token()
    assert len({first, second, third}) == 3 and fake.grants == 3


def test_a_key_the_fake_does_not_know_is_refused(key: rsa.RSAPrivateKey, fake: FakeSheets) -> None:
    other = validate_settings(GoogleSheetsConnector(), settings(new_key(), fake.base))
    assert isinstance(other, GoogleSheetsSettings)
    auth = ServiceAccountAuth(other.account(), other.token_endpoint())
    with pytest.raises(ConnectorError) as caught:
        auth.token()
    assert "invalid_grant" in str(caught.value)


def test_a_401_fetches_a_new_token_once(key: rsa.RSAPrivateKey, fake: FakeSheets) -> None:
    raw = validate_settings(GoogleSheetsConnector(), settings(key, fake.base))
    assert isinstance(raw, GoogleSheetsSettings)
    auth = ServiceAccountAuth(raw.account(), raw.token_endpoint())
    with httpx.Client(base_url=fake.base, auth=auth) as http:
        url = f"/v4/spreadsheets/{raw.spreadsheet_id}/values/Customers%21A1%3AI1"
        assert http.get(url).status_code == 200
        fake.tokens.clear()  # revoked at Google
        r = http.get(url)
        assert r.status_code == 200
        assert r.json()["values"][0][0] == "Email"
    assert fake.grants == 2
    assert fake.violations == []


def test_key_file_shape() -> None:
    data = json.loads(key_file(new_key()))
    assert {"client_email", "private_key", "token_uri"} <= set(data)
