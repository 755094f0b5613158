"""Zapier: a catch endpoint for any JSON a Zap sends (mapped per connection to traits,
events and consent), and REST Hook subscriptions for a Zapier app's "profile entered
segment" trigger. See README.md and docs/connectors/zapier.md."""

from guestlist.connectors.zapier.connector import ZapierConnector

__all__ = ["ZapierConnector"]
