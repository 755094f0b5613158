"""A Shopify connection's settings."""

from __future__ import annotations

import re

from pydantic import Field, SecretStr, field_validator

from guestlist.connectors.base import ConnectorSettings

# The store's own domain, as Shopify names it in X-Shopify-Shop-Domain.
SHOP_DOMAIN = re.compile(r"^[a-z0-9][a-z0-9-]{0,59}\.myshopify\.com$")
# Quarterly releases; `unstable` is Shopify's preview of the next one.
API_VERSION = re.compile(r"^(20\d\d-(01|04|07|10)|unstable)$")

# A current stable release. A connection made for a retired one (2023-01) still works:
# Shopify answers with the oldest supported version, and the client logs that.
DEFAULT_API_VERSION = "2025-10"


class ShopifySettings(ConnectorSettings):
    shop_domain: str
    # Admin API access token (custom app or OAuth), sent as X-Shopify-Access-Token.
    access_token: SecretStr
    # `webhook_secret` (base field) is the app's client secret: Shopify signs with it.
    api_version: str = Field(default=DEFAULT_API_VERSION)
    # A stream's first run (and a restart) as a GraphQL bulk operation instead of
    # REST pages; later runs are incremental REST pulls either way.
    bulk_backfill: bool = False

    @field_validator("shop_domain", mode="before")
    @classmethod
    def _domain(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        domain = value.strip().lower().removeprefix("https://").removeprefix("http://")
        domain = domain.rstrip("/")
        if not SHOP_DOMAIN.match(domain):
            raise ValueError(
                "expected the shop's myshopify.com domain, e.g. bottle-shop.myshopify.com"
            )
        return domain

    @field_validator("api_version")
    @classmethod
    def _version(cls, value: str) -> str:
        if not API_VERSION.match(value):
            raise ValueError("expected an Admin API version such as 2025-10 (YYYY-01/04/07/10)")
        return value

    @property
    def api_base(self) -> str:
        return self.base_url or f"https://{self.shop_domain}"
