"""Intercom: signed notifications (contacts, tags, chat messages as inquiries) and the
contacts stream (search with cursor pagination). See README.md and
docs/connectors/intercom.md."""

from guestlist.connectors.intercom.connector import IntercomConnector

__all__ = ["IntercomConnector"]
