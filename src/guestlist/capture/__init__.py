"""Capture: the tracking API, webhooks and imports, all writing to the inbox."""
