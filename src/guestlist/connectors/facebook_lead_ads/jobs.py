"""The job that reads a lead from the Graph API after its webhook was stored.

The webhook holds only ids and Meta wants a fast answer, so the delivery's
transaction enqueues one `facebook_lead_ads.fetch_lead` job per lead (unique per lead
while queued). The job reads the lead and, when the person ticked a custom-disclaimer
checkbox, the form's legal content (the exact wording), and stores both as one inbox
envelope `facebook_lead_ads.lead` keyed by the lead id, so a lead read twice (a
redelivery, a retried job) is stored once. A failing call raises: the queue retries
the job with backoff and finally keeps it visible as `dead`.
"""

from __future__ import annotations

from typing import Any

import orjson
import structlog
from sqlalchemy import Connection, Engine, select

from guestlist.connectors._http.client import VendorError
from guestlist.connectors.connections import UnknownConnection, load, log_event
from guestlist.connectors.facebook_lead_ads import client as api
from guestlist.connectors.facebook_lead_ads.mapping import LEAD_KIND, SLUG
from guestlist.connectors.facebook_lead_ads.settings import FacebookLeadAdsSettings
from guestlist.inbox.store import accept
from guestlist.jobs.queue import enqueue
from guestlist.jobs.registry import job_handler
from guestlist.store.tables import connections
from guestlist.store.types import utcnow

log = structlog.get_logger(__name__)

FETCH_LEAD = "facebook_lead_ads.fetch_lead"


def connection_of_source(conn: Connection, source_id: int) -> int | None:
    found = conn.scalar(
        select(connections.c.id).where(
            connections.c.source_id == source_id, connections.c.platform == SLUG
        )
    )
    return None if found is None else int(found)


def enqueue_fetches(conn: Connection, source_id: int, leads: list[dict[str, Any]]) -> int:
    """One fetch job per lead of a stored delivery; returns how many were added."""
    connection_id = connection_of_source(conn, source_id)
    if connection_id is None:
        return 0
    added = 0
    for value in leads:
        leadgen_id = str(value["leadgen_id"])
        args = {"connection_id": connection_id, "leadgen": value}
        if enqueue(conn, FETCH_LEAD, args, unique_key=f"fb-lead:{leadgen_id}") is not None:
            added += 1
    return added


def _has_ticked_box(lead: dict[str, Any]) -> bool:
    responses = lead.get("custom_disclaimer_responses")
    if not isinstance(responses, list):
        return False
    return any(
        isinstance(r, dict) and str(r.get("is_checked")).lower() in ("1", "true", "yes")
        for r in responses
    )


@job_handler(FETCH_LEAD)
def fetch_lead(engine: Engine, args: dict[str, Any]) -> None:
    leadgen = dict(args["leadgen"])
    leadgen_id = str(leadgen["leadgen_id"])
    with engine.connect() as conn:
        try:
            _, settings, info = load(conn, int(args["connection_id"]))
        except UnknownConnection:
            log.warning("lead of a removed connection", leadgen_id=leadgen_id)
            return
    assert isinstance(settings, FacebookLeadAdsSettings)
    with api.make_client(settings, connection_id=info.id) as client:
        lead = api.fetch_lead(client, leadgen_id)
        form: dict[str, Any] | None = None
        form_error: str | None = None
        form_id = lead.get("form_id") or leadgen.get("form_id")
        if form_id and _has_ticked_box(lead):
            try:
                form = api.fetch_form(client, str(form_id))
            except VendorError as exc:
                # The lead is kept; its consent then rests on the configured wording only.
                if exc.status is None or exc.status >= 500:
                    raise
                form_error = str(exc)
    body: dict[str, Any] = {
        "leadgen": leadgen,
        "lead": lead,
        "form": form,
        # What the shop had configured when the lead was read: part of the proof.
        "consent_checkboxes": {
            key: value.model_dump(exclude_none=True)
            for key, value in settings.consent_checkboxes.items()
        },
    }
    if form_error:
        body["form_error"] = form_error
    with engine.begin() as conn:
        inbox_id = accept(
            conn,
            source_id=info.source_id,
            kind=f"{SLUG}.{LEAD_KIND}",
            headers={},
            body=orjson.dumps(body),
            idempotency_key=f"lead:{leadgen_id}",
            received_at=utcnow(),
        )
        log_event(
            conn,
            info.id,
            "pull",
            "accepted" if inbox_id is not None else "duplicate",
            status=200,
            delivery_id=leadgen_id,
            detail="lead read from the Graph API",
            inbox_id=inbox_id,
        )
