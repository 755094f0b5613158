"""Drift: chat events by webhook (verification token), and a contacts client (lookup by
email or id, create, update). Drift has no list-all contacts endpoint, so there is no
pulled stream. See README.md and docs/connectors/drift.md."""

from guestlist.connectors.drift import jobs
from guestlist.connectors.drift.connector import DriftConnector

__all__ = ["DriftConnector", "jobs"]
