"""An Intercom connection's settings."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr

from guestlist.connectors.base import ConnectorSettings

# The API version of the saved spec (../shared/vendor-specs/intercom/api.intercom.io.2.14.yaml).
INTERCOM_VERSION = "2.14"
REGIONS = {
    "us": "https://api.intercom.io",
    "eu": "https://api.eu.intercom.io",
    "au": "https://api.au.intercom.io",
}


class IntercomSettings(ConnectorSettings):
    # An app's access token, sent as `Bearer`.
    access_token: SecretStr
    # `webhook_secret` (inherited) is the app's client secret: it signs notifications.
    intercom_version: str = Field(default=INTERCOM_VERSION, pattern=r"^\d\.\d{1,2}$")
    # Where the workspace is hosted.
    region: Literal["us", "eu", "au"] = "us"

    @property
    def api_url(self) -> str:
        return self.base_url or REGIONS[self.region]
