"""Square: customer webhooks, the customers stream (SearchCustomers), and the client
that writes customers and customer groups (our tags). See docs/connectors/square.md."""

from guestlist.connectors.square.connector import SquareConnector

__all__ = ["SquareConnector"]
