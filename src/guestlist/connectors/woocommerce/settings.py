"""A WooCommerce connection's settings: the shop, its REST API keys, how to sign."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator

from guestlist.connectors.base import ConnectorSettings

API_PATH = "/wp-json/wc/v3"

# How requests carry the keys. WooCommerce reads Basic auth and the
# `consumer_key`/`consumer_secret` query parameters only when WordPress sees HTTPS
# (`is_ssl()`); over plain http it accepts OAuth 1.0a one-legged signatures only
# (WC_REST_Authentication::authenticate).
AuthMode = Literal["auto", "basic", "query", "oauth1"]


class WooCommerceSettings(ConnectorSettings):
    # The shop as WordPress knows it (its home URL), e.g. https://shop.example.
    site_url: str = Field(pattern=r"^https?://[^\s/]+(/\S*)?$")
    consumer_key: SecretStr
    consumer_secret: SecretStr
    # auto: Basic over https, OAuth 1.0a (HMAC-SHA1, in the query) over http.
    auth: AuthMode = "auto"
    # Self-hosted shops publish no limit: evenly spaced requests, 5 a second.
    requests_per_second: float = Field(default=5.0, gt=0, le=100)
    per_page: int = Field(default=100, ge=1, le=100)  # WooCommerce refuses more than 100
    # The customers endpoint lists role `customer` unless asked; `all` takes every user.
    customer_role: str = Field(default="customer", pattern=r"^[a-z0-9_-]{1,60}$")

    @field_validator("site_url")
    @classmethod
    def _no_trailing_slash_site(cls, value: str) -> str:
        return value.rstrip("/")

    @field_validator("auth")
    @classmethod
    def _keys_only_over_https(cls, value: AuthMode, info: ValidationInfo) -> AuthMode:
        root = info.data.get("base_url") or info.data.get("site_url") or ""
        if value in ("basic", "query") and not root.startswith("https://"):
            raise ValueError(
                f"auth {value!r} sends the consumer secret as it is; WooCommerce accepts it "
                "only over https (use auth 'auto' or 'oauth1' for an http shop)"
            )
        return value

    def api_root(self) -> str:
        """`{site_url}/wp-json/wc/v3`, or `base_url` when set (a proxy, a fake)."""
        return self.base_url or f"{self.site_url}{API_PATH}"

    def auth_mode(self) -> Literal["basic", "query", "oauth1"]:
        if self.auth != "auto":
            return self.auth
        return "basic" if self.api_root().startswith("https://") else "oauth1"
