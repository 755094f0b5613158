"""A Square connection's settings."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr

from guestlist.connectors.base import ConnectorSettings

# The API version of the saved spec (../shared/vendor-specs/square/api.json).
SQUARE_VERSION = "2025-08-20"
ENVIRONMENTS = {
    "production": "https://connect.squareup.com",
    "sandbox": "https://connect.squareupsandbox.com",
}


class SquareSettings(ConnectorSettings):
    # A personal access token or an OAuth access token, sent as `Bearer`.
    access_token: SecretStr
    # The `Square-Version` header: which API version answers us.
    square_version: str = Field(default=SQUARE_VERSION, pattern=r"^\d{4}-\d{2}-\d{2}$")
    environment: Literal["production", "sandbox"] = "production"
    # `webhook_secret` (inherited) is the subscription's signature key. Square signs
    # the notification URL registered with it: set this when that URL differs from
    # ours (a proxy in front); by default the URL the delivery came to is used.
    notification_url: str | None = Field(default=None, pattern=r"^https?://\S+$")

    @property
    def api_url(self) -> str:
        return self.base_url or ENVIRONMENTS[self.environment]
