"""What the Twilio tests share: settings, samples, and signing with the official SDK."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import Engine, select
from twilio.request_validator import RequestValidator

from guestlist.canonical import CanonicalEvent
from guestlist.consent.ledger import channel_status, current_consent
from guestlist.pipeline import process_events
from guestlist.store.tables import consent_records, events, identifiers

SAMPLES = Path(__file__).resolve().parents[3] / "src/guestlist/connectors/twilio/samples"
TOKEN = "twilio-test-auth-token-0123456789"  # the account's Auth Token
ACCOUNT = "AC" + "0123456789abcdef" * 2
SHOP_NUMBER = "+15558675310"
PHONE = "+14155550100"
T0 = datetime(2026, 5, 1, 12, tzinfo=UTC)


def sample(name: str) -> Any:
    return json.loads((SAMPLES / name).read_text())


def settings(**overrides: Any) -> dict[str, Any]:
    return {"account_sid": ACCOUNT, "webhook_secret": TOKEN, **overrides}


def message(
    body: str, *, sid: str, sender: str = PHONE, whatsapp: bool = False, **extra: str
) -> dict[str, str]:
    """An inbound message's parameters, shaped like the CONSTRUCTED sample."""
    params = dict(sample("inbound_message_params.CONSTRUCTED.json")["sms"])
    prefix = "whatsapp:" if whatsapp else ""
    params.update(
        MessageSid=sid,
        SmsSid=sid,
        SmsMessageSid=sid,
        AccountSid=ACCOUNT,
        From=f"{prefix}{sender}",
        To=f"{prefix}{SHOP_NUMBER}",
        Body=body,
    )
    if whatsapp:
        params.update(ProfileName="Ann", WaId=sender.lstrip("+"))
    params.update(extra)
    return params


def signed(url: str, params: dict[str, str], *, token: str = TOKEN) -> dict[str, str]:
    """Headers as Twilio sends them, signed by the official SDK's RequestValidator."""
    return {
        "X-Twilio-Signature": RequestValidator(token).compute_signature(url, params),
        "content-type": "application/x-www-form-urlencoded",
        "i-twilio-idempotency-token": params.get("MessageSid", "none"),
    }


def form(params: dict[str, str]) -> bytes:
    return urlencode(params).encode()


def profile_with(engine: Engine, phone: str) -> int | None:
    with engine.connect() as conn:
        pid = conn.scalar(
            select(identifiers.c.profile_id).where(
                identifiers.c.kind == "phone", identifiers.c.key == phone
            )
        )
    return int(pid) if pid is not None else None


def records_for(engine: Engine, message_id: str | None = None) -> list[Any]:
    query = select(consent_records).order_by(consent_records.c.id)
    if message_id is not None:
        query = query.where(consent_records.c.message_id == message_id)
    with engine.connect() as conn:
        return list(conn.execute(query))


def inbound_events(engine: Engine, profile_id: int | None = None) -> list[Any]:
    query = select(events).where(events.c.name == "Inbound Message").order_by(events.c.id)
    if profile_id is not None:
        query = query.where(events.c.profile_id == profile_id)
    with engine.connect() as conn:
        return list(conn.execute(query))


def customer(engine: Engine, user: str, phone: str = PHONE, *channels: str) -> int:
    """A profile holding the number, with express written consent (SMS-1) per channel."""

    def event(mid: str, **fields: Any) -> CanonicalEvent:
        return CanonicalEvent(
            message_id=mid, timestamp=T0, received_at=T0, source_id=1, user_id=user, **fields
        )

    batch = [event(f"id-{user}", type="identify", traits={"phone": phone})]
    for channel in channels:
        props = {
            "channel": channel,
            "status": "granted",
            "identifier": phone,
            "text": f"Yes, send me {channel} offers from the shop. Not a condition of purchase.",
        }
        batch.append(
            event(f"grant-{user}-{channel}", type="track", name="Consent Updated", properties=props)
        )
    with engine.begin() as conn:
        process_events(conn, batch)
    pid = profile_with(engine, phone)
    assert pid is not None
    return pid


def status_of(engine: Engine, pid: int, channel: str, purpose: str = "marketing") -> str:
    with engine.connect() as conn:
        return channel_status(current_consent(conn, pid), channel, purpose)
