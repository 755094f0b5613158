"""Capture: the tracking API, webhooks and imports, all writing to the inbox.

Importing this package registers the parsers for the inbox kinds capture writes, so
the pipeline only has to import it; the HTTP routers are imported by the app alone.
"""

from guestlist.capture.tracking_parse import register as _register_tracking_parser

_register_tracking_parser()
