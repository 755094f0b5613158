"""What the Facebook Lead Ads tests share: settings, samples, signing, results."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select

from guestlist.connectors.facebook_lead_ads.signature import SIGNATURE_HEADER, sign
from guestlist.store.tables import jobs
from tests.connectors.conftest import App
from tests.connectors.helpers import (  # the database reads the connector tests share
    add_connection,
    age_of,
    connection_log,
    consent_of,
    count_events,
    events_of,
    inbox_rows,
    live_profiles,
    profile_of,
    sample_readers,
    samples_dir,
    traits_of,
)
from tests.fakes.facebook import TOKEN

__all__ = [
    "age_of", "consent_of", "count_events", "events_of", "inbox_rows", "live_profiles",
    "profile_of", "traits_of",
]

SAMPLES = samples_dir("facebook_lead_ads")
SECRET = "fb-test-app-secret"
VERIFY = "guestlist-verify-5e1f"
CHECKBOXES = {
    "email_offers": {"channel": "email", "legal_basis": "gdpr_consent"},
    "sms_offers": {"channel": "sms", "legal_basis": "tcpa_written"},
    "partner_offers": {"channel": "email"},
}

sample_bytes, sample = sample_readers(SAMPLES)


def settings(**overrides: Any) -> dict[str, Any]:
    return {
        "page_access_token": TOKEN,
        "webhook_secret": SECRET,
        "verify_token": VERIFY,
        "consent_checkboxes": CHECKBOXES,
        **overrides,
    }


def leadgen_body(*leads: tuple[str, str], page_id: str = "104233165087761") -> bytes:
    """A delivery for (leadgen_id, form_id) pairs, as Meta sends it (compact JSON)."""
    changes = [
        {
            "field": "leadgen",
            "value": {
                "ad_id": "120210553380770215",
                "form_id": form_id,
                "leadgen_id": lead_id,
                "created_time": 1778782927,
                "page_id": page_id,
                "adgroup_id": "120210553380770212",
            },
        }
        for lead_id, form_id in leads
    ]
    body = {"object": "page", "entry": [{"id": page_id, "time": 1778782928, "changes": changes}]}
    return json.dumps(body, separators=(",", ":")).encode()


def connect(app: App, name: str = "Cellar ads", **overrides: Any) -> int:
    return int(add_connection(app.client, app.admin, "facebook_lead_ads", name,
                              settings(**overrides))["id"])


def deliver(app: App, cid: int | str, body: bytes, *, secret: str = SECRET) -> Any:
    headers = {SIGNATURE_HEADER: sign(secret, body), "content-type": "application/json"}
    return app.client.post(f"/hooks/facebook_lead_ads/{cid}", content=body, headers=headers)


def log_of(app: App, cid: int) -> list[dict[str, Any]]:
    return connection_log(app.client, app.read, cid)


def job_rows(app: App) -> list[Any]:
    with app.engine.connect() as conn:
        return list(conn.execute(select(jobs).order_by(jobs.c.id)))
