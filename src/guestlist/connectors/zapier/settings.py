"""Zapier settings: the catch endpoint's secret, and the per-connection field mapping.

`mapping` says which JSON paths of a caught record become traits, which become event
properties, which event to emit, where the record's id and time are, and which
checkboxes are consent. Paths are dotted, with list indexes as numbers:
`contact.emails.0.value`. It is given as a JSON object (API) or a JSON string (CLI:
`--set mapping='{"traits": {"email": "Email"}}'`).
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from guestlist.connectors.base import ConnectorSettings
from guestlist.profiles.trait_names import canonical_trait_name

Path = Annotated[
    str, StringConstraints(min_length=1, max_length=200, pattern=r"^[^.\s][^.]*(\.[^.]+)*$")
]
CHANNEL_TRAITS = {"email": "email", "sms": "phone", "whatsapp": "phone", "phone": "phone"}


class ConsentField(BaseModel):
    """A checkbox on the form: ticked is express consent with the exact wording shown."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    field: Path  # the checkbox's value in the record
    channel: Literal["email", "sms", "whatsapp", "phone", "postal", "push"]
    # The exact wording shown next to the box (C-2). Required: guestlist never invents it.
    text: str = Field(min_length=1, max_length=10_000)
    purpose: Literal["marketing", "sale_sharing", "transactional"] = "marketing"
    # Where the consented address or number is; default: the record's email trait
    # (email) or phone trait (sms, whatsapp, phone).
    identifier: Path | None = None
    url: str | None = Field(default=None, max_length=2000)
    legal_basis: str | None = Field(default=None, min_length=1, max_length=40)


class AgeGate(BaseModel):
    """An "I am 21 or older" checkbox: ticked is a self-declaration, no date (docs/age.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    field: Path
    text: str = Field(min_length=1, max_length=2000)  # the statement shown, as proof
    minimum_age: int | None = Field(default=None, ge=1, le=99)


class ZapierMapping(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # identify (the default) or track with `event` as its name; with track, the traits
    # still go on the profile by an identify.
    type: Literal["identify", "track"] = "identify"
    event: str | None = Field(default=None, min_length=1, max_length=200)
    # trait name → path. Empty: top-level fields named like a profile trait (`email`,
    # `Phone`, `firstName`, `first name`…) are taken as those traits.
    traits: dict[str, Path] = Field(default_factory=dict)
    properties: dict[str, Path] = Field(default_factory=dict)  # property name → path
    consent: list[ConsentField] = Field(default_factory=list, max_length=10)
    age_gate: AgeGate | None = None
    delivery_id: Path | None = None  # the record's own id: a Zap replayed is stored once
    timestamp: Path | None = None  # when it happened (ISO 8601); default: when received
    # Fields no path names are kept as event properties (the issue: never dropped).
    keep_unmapped: bool = True

    @field_validator("traits")
    @classmethod
    def _trait_names(cls, value: dict[str, str]) -> dict[str, str]:
        return {canonical_trait_name(name): path for name, path in value.items()}

    @model_validator(mode="after")
    def _event_for_track(self) -> ZapierMapping:
        if self.type == "track" and self.event is None:
            raise ValueError("a track mapping needs `event`, the event's name")
        if self.type == "identify" and self.event is not None:
            raise ValueError("`event` is for type track")
        return self


class ZapierSettings(ConnectorSettings):
    mapping: ZapierMapping = Field(default_factory=ZapierMapping)

    @field_validator("mapping", mode="before")
    @classmethod
    def _json_string(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return json.loads(value)
            except json.JSONDecodeError as exc:
                raise ValueError(f"mapping is not JSON: {exc.msg}") from None
        return value
