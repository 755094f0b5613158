"""What the Typeform tests share: samples, settings, signed deliveries, reading results."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Engine, func, select

import guestlist.connectors.typeform as package
from guestlist.connectors.typeform.connector import signature
from guestlist.store.tables import consent_records, consent_texts, events
from tests.connectors.conftest import App
from tests.connectors.helpers import (  # the database reads the connector tests share
    add_connection,
    age_of,
    connection_log,
    inbox_rows,
    live_profiles,
    profile_of,
    traits_of,
)

__all__ = ["age_of", "inbox_rows", "live_profiles", "profile_of", "traits_of"]

SAMPLES = Path(package.__file__).parent / "samples"
SIGNUP = "form_response.shop_signup.CONSTRUCTED.json"
DOCS_EXAMPLE = "form_response.docs_example.CONSTRUCTED.json"

# The shop's mapping of its signup form (samples/form_response.shop_signup…).
SIGNUP_FORM = {
    "url": "https://bottleshop.typeform.com/to/Bt1Club",
    "fields": {
        "first_name": "first_name",
        "email": "email",
        "mobile": "phone",
        "dob": "birthday",
        "is_21": "age_confirmed",
        "email_optin": {"consent": {"channel": "email", "legal_basis": "gdpr_consent"}},
        "sms_optin": {"consent": {"channel": "sms", "legal_basis": "tcpa_written"}},
        "favourite_spirit": "favourite_spirit",
        "store": "signup_store",
    },
}


def sample(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((SAMPLES / name).read_text())
    return copy.deepcopy(data)


def connect(app: App, name: str = "Bottle Shop forms", **settings: Any) -> tuple[int, str]:
    """A connection over the API; returns its id and the webhook secret we generated."""
    body = {"forms": {"Bt1Club": SIGNUP_FORM, "lT4Z3j": {}}, **settings}
    data = add_connection(app.client, app.admin, "typeform", name, body)
    return int(data["id"]), data.get("webhook_secret") or settings["webhook_secret"]


def deliver(app: App, cid: int, payload: dict[str, Any] | bytes, secret: str,
            **headers: str) -> Any:
    body = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    sent = {"Content-Type": "application/json", "User-Agent": "Typeform Webhooks",
            "Typeform-Signature": signature(secret, body), **headers}
    return app.client.post(f"/hooks/typeform/{cid}", content=body, headers=sent)


def log_of(app: App, cid: int) -> list[dict[str, Any]]:
    return connection_log(app.client, app.read, cid, check=True)


def count(engine: Engine, table: Any, *where: Any) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(table).where(*where)) or 0)


def events_of(engine: Engine, profile_id: int | None = None, name: str | None = None) -> list[Any]:
    """Events by id, of one profile or of all (the shared one wants a profile)."""
    query = select(events)
    if profile_id is not None:
        query = query.where(events.c.profile_id == profile_id)
    if name is not None:
        query = query.where(events.c.name == name)
    with engine.connect() as conn:
        return list(conn.execute(query.order_by(events.c.id)))


def consent_of(engine: Engine, profile_id: int) -> list[Any]:
    """The profile's consent records by id (the shared one orders by the ledger's seq)."""
    with engine.connect() as conn:
        return list(conn.execute(select(consent_records)
                                 .where(consent_records.c.profile_id == profile_id)
                                 .order_by(consent_records.c.id)))


def consent_text(engine: Engine, text_hash: str) -> str:
    with engine.connect() as conn:
        return str(conn.scalar(select(consent_texts.c.text)
                               .where(consent_texts.c.hash == text_hash)))
