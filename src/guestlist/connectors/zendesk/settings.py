"""A Zendesk connection's settings."""

from __future__ import annotations

from pydantic import Field, SecretStr, model_validator

from guestlist.connectors.base import ConnectorSettings


class ZendeskSettings(ConnectorSettings):
    # `https://{subdomain}.zendesk.com`; `base_url` (inherited) overrides it.
    subdomain: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")
    # API token auth: Basic `{email}/token:{api_token}` (an admin's email).
    email: str | None = Field(default=None, pattern=r"^[^@\s]+@[^@\s]+$")
    api_token: SecretStr | None = None
    # Or an OAuth access token (`read` scope), sent as `Bearer`.
    oauth_token: SecretStr | None = None
    # `webhook_secret` (inherited) is the webhook's signing secret (Admin Center →
    # Webhooks → the webhook → Reveal secret).
    # Replay window for `X-Zendesk-Webhook-Signature-Timestamp`, seconds.
    replay_window: int = Field(default=300, ge=30, le=3600)
    # The key of a date user field holding the person's date of birth (typed by them
    # or by an agent from what they said): it becomes the `birthday` trait.
    birthdate_field: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_]{1,64}$")
    # When set, user events of another Zendesk account (`account_id`) are refused (403).
    account_id: int | None = Field(default=None, ge=1)
    # Where the first users export starts (epoch seconds); later runs use the cursor.
    start_time: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _one_way_to_sign_in(self) -> ZendeskSettings:
        token = self.api_token is not None
        if token and self.oauth_token is not None:
            raise ValueError("set api_token (with email) or oauth_token, not both")
        if token and not self.email:
            raise ValueError("email is required with api_token")
        if not token and self.oauth_token is None:
            raise ValueError("api_token (with email) or oauth_token is required")
        return self

    @property
    def api_url(self) -> str:
        return self.base_url or f"https://{self.subdomain}.zendesk.com"
