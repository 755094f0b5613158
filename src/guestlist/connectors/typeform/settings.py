"""A Typeform connection's settings: the token for pulls and the per-form field mapping.

`forms` maps a form id to how its answers become profile data. Each entry of a form's
`fields` maps a field `ref` (or a hidden field's name) to one of:

- a trait name (`email`, `phone`, `first_name`, `address.city`, `favourite_spirit`…);
- `"birthday"`: a date of birth the person typed (the `birthday` trait: `dob_provided`);
- `"age_confirmed"`: an "I am 21 or older" box (`Age Verified` at `self_declared`);
- `{"consent": {"channel": "email", "legal_basis": "gdpr_consent"}}`: a consent box
  whose question text is recorded as the wording shown (C-2).

It is accepted as an object (API) or as a JSON string (CLI `--set forms='{…}'`).
"""

from __future__ import annotations

import re
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from guestlist.connectors.base import ConnectorSettings

API_URL = "https://api.typeform.com"
BIRTHDAY = "birthday"
AGE_CONFIRMED = "age_confirmed"
_TRAIT = re.compile(r"^[a-z][a-z0-9_]{0,62}(\.[a-z][a-z0-9_]{0,62})?$")
_FORM_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_REF = re.compile(r"^[^\s]{1,255}$")


class ConsentRule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    channel: Literal["email", "sms", "whatsapp", "phone", "postal", "push"]
    legal_basis: str | None = Field(default=None, min_length=1, max_length=40)
    purpose: Literal["marketing", "sale_sharing", "transactional"] = "marketing"
    # A choice question (rather than a yes/no, legal or checkbox one): the option
    # labels that mean "yes". A boolean answer needs none.
    yes_labels: tuple[str, ...] = ()


class ConsentTarget(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    consent: ConsentRule


Target = str | ConsentTarget


class FormMapping(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # field ref (or hidden field name) → what the answer is
    fields: dict[str, Target] = Field(default_factory=dict)
    # The form's public address (https://shop.typeform.com/to/abc123): the consent
    # proof's `url`. Pulls read it from the form definition when not set.
    url: str | None = Field(default=None, pattern=r"^https?://\S+$", max_length=2000)
    # Whether backfills read this form's responses (webhooks are taken either way).
    pull: bool = True

    @field_validator("fields")
    @classmethod
    def _targets(cls, value: dict[str, Target]) -> dict[str, Target]:
        kinds: dict[str, str] = {}
        for ref, target in value.items():
            if not _REF.match(ref):
                raise ValueError(f"field ref {ref[:60]!r} is not a Typeform ref")
            if isinstance(target, str):
                if not _TRAIT.match(target):
                    raise ValueError(
                        f"{ref}: {target[:60]!r} is not a trait name, 'birthday', "
                        "'age_confirmed' or a {'consent': {…}} rule"
                    )
                if target in ("email", "phone", BIRTHDAY) and target in kinds:
                    raise ValueError(f"{ref}: {target!r} is already mapped from {kinds[target]}")
                kinds[target] = ref
        return value


class TypeformSettings(ConnectorSettings):
    # A personal access token (scopes forms:read, responses:read), sent as Bearer.
    # Only pulls need it; webhooks are checked with `webhook_secret`.
    access_token: SecretStr | None = None
    # form id → FormMapping; an object, or the same as a JSON string.
    forms: dict[str, FormMapping] = Field(default_factory=dict)
    page_size: int = Field(default=1000, ge=1, le=1000)  # Typeform's maximum is 1000
    # Typeform allows about 2 requests a second per account.
    requests_per_second: float = Field(default=2.0, gt=0, le=2.0)

    @field_validator("forms", mode="before")
    @classmethod
    def _json_string(cls, value: Any) -> Any:
        if isinstance(value, str | bytes):
            try:
                return orjson.loads(value)
            except orjson.JSONDecodeError as exc:
                raise ValueError(f"forms is not JSON: {exc}") from None
        return value

    @field_validator("forms")
    @classmethod
    def _form_ids(cls, value: dict[str, FormMapping]) -> dict[str, FormMapping]:
        for form_id in value:
            if not _FORM_ID.match(form_id):
                raise ValueError(f"{form_id[:60]!r} is not a Typeform form id")
        return value

    @property
    def api_url(self) -> str:
        return self.base_url or API_URL

    def pulled_forms(self) -> list[str]:
        return sorted(f for f, m in self.forms.items() if m.pull)
