"""A Facebook Lead Ads connection's settings."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from guestlist.connectors.base import ConnectorSettings

# Graph API version asked for; Meta keeps each version about two years.
GRAPH_VERSION = "v24.0"
GRAPH_URL = "https://graph.facebook.com"


class CheckboxConsent(BaseModel):
    """What one custom-disclaimer checkbox of the shop's lead forms consents to."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Channels a lead form gives an identifier for (its email or phone question).
    channel: Literal["email", "sms", "whatsapp", "phone"]
    legal_basis: str | None = Field(default=None, max_length=40)
    # The wording shown, used only when the form definition cannot be read (C-2: the
    # form's own text is preferred, it is what the person saw).
    text: str | None = Field(default=None, min_length=1, max_length=10_000)


class FacebookLeadAdsSettings(ConnectorSettings):
    # `webhook_secret` (inherited) is the Meta app's App Secret: it signs deliveries.
    # The token typed into the app's webhook set-up; Meta echoes it in the handshake.
    verify_token: SecretStr | None = None
    # A long-lived Page access token with leads_retrieval.
    page_access_token: SecretStr
    graph_version: str = Field(default=GRAPH_VERSION, pattern=r"^v\d{1,2}\.\d$")
    # Deliveries for another Page are refused when set.
    page_id: str | None = Field(default=None, pattern=r"^\d{1,30}$")
    # checkbox key (the `key` of the form's custom disclaimer checkbox) -> channel.
    consent_checkboxes: dict[str, CheckboxConsent] = Field(default_factory=dict)

    @field_validator("consent_checkboxes", mode="before")
    @classmethod
    def _json_text(cls, value: Any) -> Any:
        # The CLI passes `--set consent_checkboxes='{"…"}'` as a string.
        if isinstance(value, str):
            try:
                return json.loads(value)
            except ValueError:
                raise ValueError("consent_checkboxes is not JSON") from None
        return value

    @property
    def api_url(self) -> str:
        return self.base_url or GRAPH_URL
