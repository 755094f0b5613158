"""Shopify: customers and orders by webhook and by pull (REST Admin API)."""

from __future__ import annotations

from guestlist.connectors.shopify.connector import ShopifyConnector

__all__ = ["ShopifyConnector"]
