"""The job that looks a chat's contact up when the message names only its id.

A `new_message` carries the author's contact id, not their email. With the
`lookup_contacts` setting, the delivery's transaction enqueues one `drift.fetch_contact`
job for the author (unique per contact while queued); the job reads
`GET /contacts/{id}` and stores the contact as a `drift.contact` envelope, keyed by the
contact id and its attributes, so an unchanged contact read again is stored once. The
mapping makes it an `identify`, which links the message's `drift:contact` id to the
email. A failing call raises: the queue retries with backoff, then keeps it `dead`.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
import structlog
from sqlalchemy import Connection, Engine, select

from guestlist.connectors.connections import UnknownConnection, load, log_event
from guestlist.connectors.drift import client as api
from guestlist.connectors.drift.mapping import FETCHED_TOPIC, SLUG
from guestlist.connectors.drift.settings import DriftSettings
from guestlist.inbox.store import accept
from guestlist.jobs.queue import enqueue
from guestlist.jobs.registry import job_handler
from guestlist.store.tables import connections
from guestlist.store.types import utcnow

log = structlog.get_logger(__name__)

FETCH_CONTACT = "drift.fetch_contact"


def connection_of_source(conn: Connection, source_id: int) -> int | None:
    found = conn.scalar(
        select(connections.c.id).where(
            connections.c.source_id == source_id, connections.c.platform == SLUG
        )
    )
    return None if found is None else int(found)


def enqueue_lookup(conn: Connection, source_id: int, contact_id: str) -> bool:
    connection_id = connection_of_source(conn, source_id)
    if connection_id is None:
        return False
    args = {"connection_id": connection_id, "contact_id": contact_id}
    key = f"drift-contact:{connection_id}:{contact_id}"
    return enqueue(conn, FETCH_CONTACT, args, unique_key=key) is not None


def contact_key(contact: dict[str, Any]) -> str:
    digest = hashlib.sha256(
        orjson.dumps(contact.get("attributes"), option=orjson.OPT_SORT_KEYS)).hexdigest()
    return f"contact:{contact.get('id')}:{digest[:32]}"


@job_handler(FETCH_CONTACT)
def fetch_contact(engine: Engine, args: dict[str, Any]) -> None:
    contact_id = str(args["contact_id"])
    with engine.connect() as conn:
        try:
            _, settings, info = load(conn, int(args["connection_id"]))
        except UnknownConnection:
            log.warning("drift contact of a removed connection", contact_id=contact_id)
            return
    assert isinstance(settings, DriftSettings)
    with api.make_client(settings, connection_id=info.id) as client:
        contact = api.get_contact(client, contact_id)
    if contact is None:
        log.info("drift contact not found", contact_id=contact_id)
        return
    with engine.begin() as conn:
        inbox_id = accept(
            conn,
            source_id=info.source_id,
            kind=f"{SLUG}.{FETCHED_TOPIC}",
            headers={},
            body=orjson.dumps({"data": contact}),
            idempotency_key=contact_key(contact),
            received_at=utcnow(),
        )
        log_event(
            conn, info.id, "pull", "accepted" if inbox_id is not None else "duplicate",
            status=200, delivery_id=contact_id, detail="contact read from Drift",
            inbox_id=inbox_id,
        )
