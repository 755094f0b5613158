"""A Google Sheets connection's settings: the sheet, the service account, the mapping.

`mapping` says what each column is, by its header (the first row of `range`):

- a trait name (`email`, `phone`, `first_name`, `address.city`, `tags`, …);
  `customer_id` is the shop's own id for the person (an external id, stable when rows
  move), and `birthday` a date of birth (the pipeline records it at `dob_provided`);
- `{"consent": {"channel": "email", "text": "<the exact wording they agreed to>",
  "legal_basis": …, "url": …, "at_column": "<header of the date it was given>" or
  "as_of": "<when the list was collected>"}}`: a consent column. Without the wording
  there is no proof (C-2): map such a column as a plain trait (`sheet_opted_in`) instead.

Also accepted as a JSON string (CLI `--set mapping='{…}'`).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Literal

import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from guestlist.connectors.base import ConnectorSettings

API_URL = "https://sheets.googleapis.com"
TOKEN_URI = "https://oauth2.googleapis.com/token"
SCOPE = "https://www.googleapis.com/auth/spreadsheets.readonly"
_TRAIT = re.compile(r"^[a-z][a-z0-9_]{0,62}(\.[a-z][a-z0-9_]{0,62})?$")
# `Customers!A1:Z`, `'Old list 2019'!B3:H2000`, `Sheet1!A:F`
A1_RANGE = re.compile(
    r"^(?P<sheet>'(?:[^']|'')+'|[^'!:]+)!(?P<c1>[A-Z]{1,3})(?P<r1>[1-9]\d*)?"
    r":(?P<c2>[A-Z]{1,3})(?P<r2>[1-9]\d*)?$"
)


def header_key(header: Any) -> str:
    """How headers are matched: trimmed, case-insensitive, inner spaces collapsed."""
    return " ".join(str(header).split()).casefold()


class ConsentColumn(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    channel: Literal["email", "sms", "whatsapp", "phone", "postal", "push"]
    # C-2: the exact wording the people on the list agreed to.
    text: str = Field(min_length=1, max_length=10_000)
    legal_basis: str | None = Field(default=None, min_length=1, max_length=40)
    url: str | None = Field(default=None, max_length=2000)
    purpose: Literal["marketing", "sale_sharing", "transactional"] = "marketing"
    # When each person gave it: a column holding the date, or one date for the list.
    at_column: str | None = Field(default=None, min_length=1, max_length=200)
    as_of: datetime | None = None

    @model_validator(mode="after")
    def _when(self) -> ConsentColumn:
        if self.at_column is None and self.as_of is None:
            raise ValueError(
                "a consent column needs at_column (the header of the date it was given) or "
                "as_of (when the list was collected): a grant dated at import would outrank "
                "a later withdrawal made elsewhere (C-3)"
            )
        return self


class ConsentTarget(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    consent: ConsentColumn


class SheetMapping(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    columns: dict[str, str | ConsentTarget] = Field(min_length=1)
    # A header whose cells say when the row last changed: the identify's event time.
    updated_column: str | None = Field(default=None, min_length=1, max_length=200)
    # When the sheet's data was true, for rows without `updated_column`; default: the
    # time of the import (documented: an old list can then overwrite newer traits).
    as_of: datetime | None = None

    @field_validator("columns")
    @classmethod
    def _targets(cls, value: dict[str, str | ConsentTarget]) -> dict[str, str | ConsentTarget]:
        seen: dict[str, str] = {}
        for header, target in value.items():
            if not header.strip():
                raise ValueError("a column header is empty")
            if header_key(header) in seen:
                raise ValueError(f"{header!r} is mapped twice")
            seen[header_key(header)] = header
            if isinstance(target, str) and not _TRAIT.match(target):
                raise ValueError(f"{header}: {target[:60]!r} is not a trait name or consent rule")
        identifiers = [t for t in value.values() if t in ("email", "phone", "customer_id")]
        if not identifiers:
            raise ValueError("map at least one column to email, phone or customer_id")
        return value


class ServiceAccount(BaseModel):
    """The parts of a service account's JSON key file we use."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    client_email: str = Field(min_length=3, max_length=320)
    private_key: str = Field(min_length=20)
    private_key_id: str | None = None
    token_uri: str = TOKEN_URI

    def key(self) -> RSAPrivateKey:
        loaded = serialization.load_pem_private_key(self.private_key.encode(), password=None)
        if not isinstance(loaded, RSAPrivateKey):
            raise ValueError("private_key is not an RSA key")
        return loaded


def read_service_account(raw: str) -> ServiceAccount:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ValueError(
            "service_account_json is not JSON (paste the key file's content)"
        ) from None
    if not isinstance(data, dict):
        raise ValueError("service_account_json is not a JSON object")
    try:
        account = ServiceAccount.model_validate(data)
        account.key()
    except (ValueError, TypeError) as exc:
        # Never echo the key: name what is wrong only.
        missing = [k for k in ("client_email", "private_key") if not data.get(k)]
        what = f"lacks {', '.join(missing)}" if missing else "has an unreadable private_key"
        raise ValueError(f"service_account_json {what}") from exc
    return account


class GoogleSheetsSettings(ConnectorSettings):
    spreadsheet_id: str = Field(pattern=r"^[A-Za-z0-9_-]{10,100}$")
    # A1 notation, headers in its first row: `Customers!A1:Z`.
    range: str = Field(max_length=300)
    # The service account's JSON key file, as downloaded (client_email, private_key,
    # token_uri). Share the spreadsheet with its client_email (Viewer).
    service_account_json: SecretStr
    mapping: SheetMapping
    # Overrides the token endpoint of the key file (the fake in tests).
    token_url: str | None = Field(default=None, pattern=r"^https?://\S+$")
    rows_per_request: int = Field(default=1000, ge=1, le=10_000)
    # Google's read quota: 60 requests a minute per user per project.
    requests_per_minute: float = Field(default=60.0, gt=0, le=300)

    @field_validator("mapping", mode="before")
    @classmethod
    def _json_string(cls, value: Any) -> Any:
        if isinstance(value, str | bytes):
            try:
                return orjson.loads(value)
            except orjson.JSONDecodeError as exc:
                raise ValueError(f"mapping is not JSON: {exc}") from None
        return value

    @field_validator("range")
    @classmethod
    def _a1(cls, value: str) -> str:
        match = A1_RANGE.match(value.strip())
        if match is None:
            raise ValueError(
                "range must be A1 notation with a sheet and columns, e.g. Customers!A1:Z"
            )
        if match["r1"] and match["r2"] and int(match["r2"]) <= int(match["r1"]):
            raise ValueError("range must cover a header row and at least one row below it")
        return value.strip()

    @field_validator("service_account_json")
    @classmethod
    def _account(cls, value: SecretStr) -> SecretStr:
        read_service_account(value.get_secret_value())
        return value

    @property
    def api_url(self) -> str:
        return self.base_url or API_URL

    def account(self) -> ServiceAccount:
        return read_service_account(self.service_account_json.get_secret_value())

    def token_endpoint(self) -> str:
        return self.token_url or self.account().token_uri
