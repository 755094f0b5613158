"""A person with something in every profile-scoped table, and a bystander beside them.

The person arrives the way real data does: through the inbox (one batch shared with a
bystander, so erasure has to edit it rather than drop it), the pipeline (identity,
traits, events, consent with proof, a merge), plus age evidence and two destinations
holding them, written as the age step and the sync step will write them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import orjson
import pytest
from sqlalchemy import Engine, select

from guestlist.inbox.store import accept
from guestlist.keys import ensure_source
from guestlist.pipeline import process_all
from guestlist.store.tables import age_records, age_state, identifiers, profile_links
from guestlist.store.types import utcnow

T0 = datetime(2026, 3, 2, 15, 30, tzinfo=UTC)

# Everything personal about the person: none of it may be left anywhere after erasure.
EMAIL = "Zelda.Quist@example.com"
EMAIL_KEY = "zelda.quist@example.com"
ALT_EMAIL = "zq.alt@example.net"
PHONE = "+1 415 555 0147"
PHONE_KEY = "+14155550147"
USER_ID = "cust-981"
ANON_ID = "anon-77f3"
FIRST_NAME = "Zelda"
LAST_NAME = "Quistorp"
IP = "198.51.100.23"
USER_AGENT = "Mozilla/5.0 (ZeldaPhone 7)"
DOB = "1990-04-05"
PERSONAL = (
    EMAIL,
    EMAIL_KEY,
    ALT_EMAIL,
    PHONE,
    PHONE_KEY,
    USER_ID,
    ANON_ID,
    FIRST_NAME,
    LAST_NAME,
    IP,
    USER_AGENT,
    DOB,
    "4155550147",
    "ZeldaPhone",
)
SMS_TEXT = "Yes, text me offers from Quist Cellars. Msg & data rates may apply."
BYSTANDER_EMAIL = "bystander@example.org"


@dataclass
class Person:
    profile_id: int  # the survivor
    merged_id: int  # the profile merged into it
    bystander_id: int
    source_id: int


def message(kind: str, minutes: int, **fields: Any) -> dict[str, Any]:
    return {"type": kind, "timestamp": T0.replace(minute=minutes).isoformat(), **fields}


def send(engine: Engine, source_id: int, batch: list[dict[str, Any]], **headers: str) -> None:
    with engine.begin() as conn:
        accept(
            conn,
            source_id=source_id,
            kind="tracking.batch",
            headers={"content-type": "application/json", **headers},
            body=orjson.dumps({"batch": batch}),
        )
    process_all(engine)


def profile_of(engine: Engine, kind: str, key: str) -> int:
    with engine.connect() as conn:
        found = conn.scalar(
            select(identifiers.c.profile_id).where(
                identifiers.c.kind == kind, identifiers.c.key == key
            )
        )
    assert found is not None, (kind, key)
    return int(found)


def make_person(engine: Engine) -> Person:
    with engine.begin() as conn:
        source_id = ensure_source(conn, "web")
    send(
        engine,
        source_id,
        [
            message(
                "identify",
                30,
                userId=USER_ID,
                messageId="m-identify",
                traits={
                    "email": EMAIL,
                    "phone": PHONE,
                    "firstName": FIRST_NAME,
                    "lastName": LAST_NAME,
                    "birthday": DOB,
                },
                context={"ip": IP, "userAgent": USER_AGENT},
            ),
            # The bystander's message has no messageId: its id comes from its position.
            message("identify", 31, userId="cust-5", traits={"email": BYSTANDER_EMAIL}),
            message(
                "track",
                32,
                userId=USER_ID,
                event="Consent Updated",
                messageId="m-sms",
                properties={
                    "channel": "sms",
                    "status": "granted",
                    "identifier": PHONE,
                    "text": SMS_TEXT,
                    "ip": IP,
                    "user_agent": USER_AGENT,
                    "url": "https://quist.example/signup",
                    "store": "Zelda's corner",
                },
            ),
            message(
                "track",
                33,
                userId=USER_ID,
                event="Consent Updated",
                messageId="m-email",
                properties={"channel": "email", "status": "granted", "text": "Email me news"},
            ),
            message(
                "track",
                34,
                userId=USER_ID,
                event="Order Completed",
                messageId="m-order",
                properties={"total": 54.0, "shipping_name": f"{FIRST_NAME} {LAST_NAME}"},
            ),
        ],
        **{"user-agent": USER_AGENT, "client-ip": IP},
    )
    person = profile_of(engine, "user_id", USER_ID)
    # A second profile, from another device, then an alias that merges it in.
    send(
        engine,
        source_id,
        [
            message(
                "identify", 40, anonymousId=ANON_ID, messageId="m-anon", traits={"email": ALT_EMAIL}
            ),
        ],
    )
    merged = profile_of(engine, "anonymous_id", ANON_ID)
    send(
        engine,
        source_id,
        [
            message(
                "track",
                41,
                anonymousId=ANON_ID,
                event="Consent Updated",
                messageId="m-alt",
                properties={"channel": "email", "status": "granted", "identifier": ALT_EMAIL},
            ),
            message("alias", 42, userId=USER_ID, previousId=ANON_ID, messageId="m-alias"),
        ],
    )
    assert profile_of(engine, "anonymous_id", ANON_ID) == person != merged
    now = utcnow()
    with engine.begin() as conn:
        conn.execute(
            age_records.insert().values(
                profile_id=person,
                dob=date.fromisoformat(DOB),
                level="id_document",
                method="id_scan",
                provider="Veriff",
                reference="veriff-session-zq",
                country="US",
                region="US-CA",
                source_id=source_id,
                recorded_by="till-3",
                event_time=T0,
                received_at=now,
            )
        )
        # The age step may have derived a state from the birthday trait already.
        conn.execute(age_state.delete().where(age_state.c.profile_id == person))
        conn.execute(
            age_state.insert().values(
                profile_id=person,
                dob=date.fromisoformat(DOB),
                level="id_document",
                jurisdiction="US-CA",
                conflict=False,
                updated_at=now,
            )
        )
        for connection, external in (
            ("mailchimp:main", "mc-member-5512"),
            ("klaviyo:eu", "kl-01HZX"),
        ):
            conn.execute(
                profile_links.insert().values(
                    profile_id=person, connection=connection, external_id=external, created_at=now
                )
            )
    bystander = profile_of(engine, "user_id", "cust-5")
    return Person(person, merged, bystander, source_id)


@pytest.fixture
def person(engine: Engine) -> Person:
    return make_person(engine)
