"""WooCommerce: signed webhooks for customers and orders, and a resumable pull of both.

See docs/connectors/woocommerce.md. Modules: `settings` (the connection's settings),
`signature` (webhook checks), `auth` (Basic, query keys, OAuth 1.0a), `client` (the
REST API, paging, pace), `mapping` (records → canonical events), `connector` (the
declaration, registered on import).
"""

from guestlist.connectors.woocommerce.connector import WooCommerce

__all__ = ["WooCommerce"]
