"""A Drift connection's settings."""

from __future__ import annotations

from pydantic import Field, SecretStr

from guestlist.connectors.base import ConnectorSettings

DRIFT_API = "https://driftapi.com"


class DriftSettings(ConnectorSettings):
    # The app's OAuth access token (a private app's token will do), sent as `Bearer`.
    access_token: SecretStr
    # `webhook_secret` (inherited) is the app's **Verification Token** (App Credentials):
    # Drift puts it in every event's body (`token`) and `X-Verification-Token` header.
    # When set, events for another Drift organization are refused (403).
    org_id: int | None = Field(default=None, ge=1)
    # Look up (GET /contacts/{id}) the author of each visitor message whose payload
    # carries no email, so the chat lands on the profile with the contact's email.
    # One API call per such message (one per contact while a lookup is queued).
    lookup_contacts: bool = False

    @property
    def api_url(self) -> str:
        return self.base_url or DRIFT_API
