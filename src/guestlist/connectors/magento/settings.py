"""Settings of a Magento / Adobe Commerce connection."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator, model_validator

from guestlist.connectors.base import ConnectorSettings

URL = r"^https?://[^\s/]+(/\S*)?$"


class MagentoSettings(ConnectorSettings):
    # The storefront root, e.g. https://shop.example; the REST API is under
    # {store_url}/rest/{store_code}/V1 (`base_url`, when set, replaces store_url there).
    store_url: str = Field(pattern=URL)
    # Store view code in the REST path; `default` is the default store view.
    store_code: str = Field(default="default", pattern=r"^[a-z][a-z0-9_]{0,31}$")
    # An integration's access token, sent as Bearer (needs "Allow OAuth Access Tokens to
    # be used as standalone Bearer tokens" since 2.4.4)…
    access_token: SecretStr | None = None
    # …or an admin user, exchanged for a 4-hour admin token (re-fetched on a 401).
    admin_username: str | None = Field(default=None, min_length=1, max_length=255)
    admin_password: SecretStr | None = None
    # Magento has no general API rate limit; we stay under this on our side.
    requests_per_second: float = Field(default=5.0, gt=0, le=100)
    # Records per request; 2.4.7's REST input limits cap pageSize at 300 by default.
    page_size: int = Field(default=100, ge=1, le=300)

    @field_validator("store_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @model_validator(mode="after")
    def _one_way_to_sign_in(self) -> MagentoSettings:
        admin = self.admin_username is not None or self.admin_password is not None
        if self.access_token is not None and admin:
            raise ValueError("give access_token or admin_username/admin_password, not both")
        if self.access_token is None and not admin:
            raise ValueError("access_token, or admin_username and admin_password, is required")
        if admin and (self.admin_username is None or self.admin_password is None):
            raise ValueError("admin_username and admin_password go together")
        return self

    @property
    def api_root(self) -> str:
        return f"{self.base_url or self.store_url}/rest/{self.store_code}/V1"
