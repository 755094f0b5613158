"""Zendesk: signed webhooks (user events, ticket triggers as inquiries) and the users
stream (cursor-based incremental export). See README.md and docs/connectors/zendesk.md."""

from guestlist.connectors.zendesk.connector import ZendeskConnector

__all__ = ["ZendeskConnector"]
