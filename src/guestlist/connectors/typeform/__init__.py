"""Typeform: signed `form_response` webhooks and the Responses API pull, with a per-form
field mapping to traits, consent (the question text as proof) and age. See README.md."""

from guestlist.connectors.typeform.connector import TypeformConnector

__all__ = ["TypeformConnector"]
