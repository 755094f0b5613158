"""Inbound SMS/WhatsApp keywords applied to the ledger (both databases); rule ids from
compliance.md. The classification itself is tested word by word in test_keywords.py."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from guestlist.api.app import create_app
from guestlist.canonical import CanonicalEvent
from guestlist.consent.inbound import InboundAction, InboundOutcome, apply_inbound_text
from guestlist.consent.keywords import KeywordKind
from guestlist.consent.ledger import ConsentError, channel_status, current_consent, verify_ledger
from guestlist.consent.optout import is_suppressed
from guestlist.consent.twiml import EMPTY_RESPONSE
from guestlist.keys import clear_key_cache, create_key
from guestlist.pipeline import process_events
from guestlist.store.tables import consent_records, identifiers, suppressions

T0 = datetime(2026, 5, 1, 12, tzinfo=UTC)
PHONE = "+14155550100"
OTHER = "+14155550199"
SHOP = "Bottle Shop"


def _event(message_id: str, user: str, minutes: int = 0, **fields: Any) -> CanonicalEvent:
    return CanonicalEvent(
        message_id=message_id,
        timestamp=T0 + timedelta(minutes=minutes),
        received_at=datetime.now(UTC),
        source_id=1,
        user_id=user,
        **fields,
    )


def identify(engine: Engine, user: str, **traits: Any) -> int:
    with engine.begin() as conn:
        process_events(conn, [_event(f"id-{user}", user, type="identify", traits=traits)])
        return int(
            conn.scalar(
                select(identifiers.c.profile_id).where(
                    identifiers.c.kind == "user_id", identifiers.c.key == user
                )
            )
        )


def grant(engine: Engine, user: str, channel: str = "sms", number: str = PHONE) -> None:
    """Express written consent with its disclosure (SMS-1), before any keyword."""
    props = {
        "channel": channel,
        "status": "granted",
        "identifier": number,
        "text": f"Yes, send me {channel} offers from {SHOP}. Consent is not a condition of "
        "purchase.",
        "legal_basis": "tcpa_written",
    }
    with engine.begin() as conn:
        process_events(
            conn,
            [
                _event(
                    f"grant-{user}-{channel}-{number}",
                    user,
                    type="track",
                    name="Consent Updated",
                    properties=props,
                )
            ],
        )


def text(
    engine: Engine,
    body: str,
    *,
    number: str = PHONE,
    channel: str = "sms",
    message_id: str | None = None,
    minutes: int = 10,
    **kwargs: Any,
) -> InboundOutcome:
    with engine.begin() as conn:
        return apply_inbound_text(
            conn,
            channel=channel,
            from_number=number,
            body=body,
            message_id=message_id or f"SM-{body}-{minutes}",
            received_at=T0 + timedelta(minutes=minutes),
            shop=SHOP,
            **kwargs,
        )


def status(
    engine: Engine, profile_id: int, channel: str = "sms", purpose: str = "marketing"
) -> str:
    with engine.connect() as conn:
        return channel_status(current_consent(conn, profile_id), channel, purpose)


def records(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(consent_records).order_by(consent_records.c.id)))


@pytest.fixture
def household(engine: Engine) -> tuple[int, int]:
    """Two people (two user ids) sharing one phone: two profiles hold the number."""
    ann = identify(engine, "ann", phone="(415) 555-0100", email="ann@shop.test")
    bob = identify(engine, "bob", phone="415.555.0100", email="bob@shop.test")
    assert ann != bob
    grant(engine, "ann")
    grant(engine, "bob")
    return ann, bob


def test_stop_withdraws_every_profile_holding_the_number(
    engine: Engine, household: tuple[int, int]
) -> None:  # SMS-2
    ann, bob = household
    outcome = text(engine, "STOP")
    assert outcome.action is InboundAction.WITHDRAWN
    assert outcome.profile_ids == (ann, bob)
    for profile_id in (ann, bob):
        assert status(engine, profile_id) == "withdrawn"
        assert status(engine, profile_id, purpose="sale_sharing") == "withdrawn"
    withdrawn = [r for r in records(engine) if r.status == "withdrawn"]
    assert len(withdrawn) == 4 == len(outcome.record_ids)  # 2 profiles x 2 purposes
    assert {(r.identifier, r.keyword, r.message_id) for r in withdrawn} == {
        (PHONE, "STOP", "SM-STOP-10")
    }
    assert all(r.proof["body"] == "STOP" and not r.needs_review for r in withdrawn)
    with engine.connect() as conn:
        assert verify_ledger(conn)[1] == []  # C-2a: appended through the chain


def test_stop_reaches_a_profile_that_recorded_consent_for_a_number_it_does_not_hold(
    engine: Engine,
) -> None:  # SMS-2, C-6
    carl = identify(engine, "carl", email="carl@shop.test")  # no phone identifier
    grant(engine, "carl", number=OTHER)
    assert status(engine, carl) == "granted"
    outcome = text(engine, "stop", number=OTHER)
    assert outcome.profile_ids == (carl,)
    assert status(engine, carl) == "withdrawn"


@pytest.mark.parametrize(
    "body",
    [
        "STOP",
        "stopall",
        "Unsubscribe",
        "cancel",
        "END",
        "quit",
        "revoke",
        "optout",
        "OPT-OUT",
        "remove",
        "Arrêt",
        "td",
    ],
)
def test_each_opt_out_keyword_withdraws(
    engine: Engine, household: tuple[int, int], body: str
) -> None:  # SMS-2
    ann, _ = household
    assert text(engine, body).action is InboundAction.WITHDRAWN
    assert status(engine, ann) == "withdrawn"


def test_plain_language_opt_out_withdraws_and_is_flagged_for_review(
    engine: Engine, household: tuple[int, int]
) -> None:  # SMS-2a
    ann, bob = household
    outcome = text(engine, "please stop texting me")
    assert outcome.match.kind is KeywordKind.OPT_OUT_PLAIN_LANGUAGE
    assert outcome.action is InboundAction.WITHDRAWN and outcome.needs_review
    assert status(engine, ann) == status(engine, bob) == "withdrawn"
    withdrawn = [r for r in records(engine) if r.status == "withdrawn"]
    assert withdrawn and all(r.needs_review for r in withdrawn)
    assert withdrawn[0].keyword is None
    assert withdrawn[0].proof["plain_language_rule"] == outcome.match.rule
    assert withdrawn[0].proof["body"] == "please stop texting me"
    # One confirmation, which says how to undo it (SMS-5).
    assert outcome.reply is not None and "START" in outcome.reply
    assert "<Message>" in outcome.twiml


def test_start_after_stop_regrants_with_the_message_as_proof(
    engine: Engine, household: tuple[int, int]
) -> None:  # SMS-3
    ann, bob = household
    text(engine, "STOP", minutes=10)
    outcome = text(engine, "Start", minutes=20, message_id="SM-start")
    assert outcome.action is InboundAction.REGRANTED
    assert outcome.profile_ids == (ann, bob)
    assert status(engine, ann) == status(engine, bob) == "granted"
    # Only marketing comes back: START is not consent to sell or share (P-5).
    assert status(engine, ann, purpose="sale_sharing") == "withdrawn"
    regrants = [r for r in records(engine) if r.message_id == "SM-start"]
    assert len(regrants) == 2
    originals = {r.id for r in records(engine) if r.message_id.startswith("grant-")}
    for r in regrants:
        assert (r.status, r.keyword, r.identifier, r.legal_basis) == (
            "granted",
            "START",
            PHONE,
            "tcpa_written",
        )
        assert r.proof["body"] == "Start"
        assert r.proof["regrants_record"] in originals


def test_yes_from_a_number_that_never_opted_in_records_nothing_and_gets_help(
    engine: Engine,
) -> None:  # SMS-1, SMS-3
    dana = identify(engine, "dana", phone=PHONE)
    outcome = text(engine, "YES")
    assert outcome.action is InboundAction.NOT_REGRANTED
    assert outcome.profile_ids == () and outcome.record_ids == ()
    assert records(engine) == []
    assert status(engine, dana) == "unknown"
    # Twilio answers a bare YES itself; to other spellings guestlist gives the help text.
    assert outcome.twiml == EMPTY_RESPONSE
    other = text(engine, "yes please", minutes=11)
    assert other.match.kind is KeywordKind.NONE  # not a bare keyword: nothing at all
    spelled = text(engine, "Yes!", minutes=12)
    assert spelled.action is InboundAction.NOT_REGRANTED
    assert spelled.reply is not None and "Reply STOP" in spelled.reply
    assert "subscribed" not in spelled.reply


def test_start_after_a_stop_without_an_earlier_grant_does_not_grant(
    engine: Engine,
) -> None:  # SMS-1, SMS-3
    erin = identify(engine, "erin", phone=PHONE)
    text(engine, "STOP", minutes=1)  # a withdrawal is a record, but not a consent
    assert text(engine, "START", minutes=2).action is InboundAction.NOT_REGRANTED
    assert status(engine, erin) == "withdrawn"


def test_help_changes_nothing(engine: Engine, household: tuple[int, int]) -> None:  # SMS-4
    ann, _ = household
    before = records(engine)
    for body in ("HELP", "info", "Help?"):
        outcome = text(engine, body)
        assert outcome.action is InboundAction.HELP
        assert outcome.record_ids == ()
    assert records(engine) == before
    assert status(engine, ann) == "granted"
    # The shop's help reply for a spelling Twilio does not answer itself.
    outcome = text(engine, "H E L P")
    assert outcome.reply is not None and SHOP in outcome.reply and "STOP" in outcome.reply


def test_an_ordinary_message_changes_nothing(
    engine: Engine, household: tuple[int, int]
) -> None:  # SMS-2a: questions about the shop do not withdraw
    ann, _ = household
    outcome = text(engine, "when do you stop serving?")
    assert outcome.action is InboundAction.NONE and outcome.twiml == EMPTY_RESPONSE
    assert status(engine, ann) == "granted"


def test_whatsapp_stop_withdraws_only_whatsapp(engine: Engine) -> None:  # SMS-7
    fay = identify(engine, "fay", phone=PHONE)
    grant(engine, "fay", channel="sms")
    grant(engine, "fay", channel="whatsapp")
    outcome = text(engine, "STOP", channel="whatsapp", number=f"whatsapp:{PHONE}")
    assert outcome.channel == "whatsapp" and outcome.number == PHONE
    assert status(engine, fay, "whatsapp") == "withdrawn"
    assert status(engine, fay, "sms") == "granted"
    # ...and an SMS STOP leaves WhatsApp alone.
    text(engine, "STOP", minutes=20)
    assert status(engine, fay, "sms") == "withdrawn"
    text(engine, "START", channel="whatsapp", minutes=30)
    assert status(engine, fay, "whatsapp") == "granted"
    assert status(engine, fay, "sms") == "withdrawn"


def test_stop_from_an_unknown_number_is_suppressed(engine: Engine) -> None:  # SMS-2, P-3
    outcome = text(engine, "STOP", number=OTHER)
    assert outcome.action is InboundAction.SUPPRESSED
    assert records(engine) == []
    with engine.begin() as conn:
        assert is_suppressed(conn, "sms", OTHER)
        assert not is_suppressed(conn, "whatsapp", OTHER)  # SMS-7
        row = conn.execute(select(suppressions)).one()
    assert (row.kind, row.channel, row.reason) == ("phone", "sms", "sms_stop")
    assert OTHER not in row.identifier_hash  # an HMAC, not the number
    assert text(engine, "STOP", number=OTHER, minutes=11).action is InboundAction.SUPPRESSED
    with engine.connect() as conn:
        assert len(conn.execute(select(suppressions)).all()) == 1


def test_a_retried_webhook_records_once(
    engine: Engine, household: tuple[int, int]
) -> None:  # SMS-2, SMS-5
    first = text(engine, "opt out", message_id="SM-1")
    again = text(engine, "opt out", message_id="SM-1")
    assert not first.duplicate and again.duplicate
    assert again.record_ids == first.record_ids and again.profile_ids == first.profile_ids
    assert len([r for r in records(engine) if r.status == "withdrawn"]) == 4
    assert again.twiml == first.twiml  # Twilio sends only the reply it received


def test_twilio_opt_out_type_wins_over_an_unknown_word(
    engine: Engine, household: tuple[int, int]
) -> None:  # SMS-2: Twilio Advanced Opt-Out with a shop word guestlist does not know
    ann, _ = household
    outcome = text(engine, "BASTA", opt_out_type="STOP")
    assert outcome.action is InboundAction.WITHDRAWN
    assert outcome.twiml == EMPTY_RESPONSE  # Twilio answered: no second confirmation
    assert status(engine, ann) == "withdrawn"


def test_bad_input_stores_nothing(engine: Engine, household: tuple[int, int]) -> None:
    before = records(engine)
    with pytest.raises(ConsentError) as exc:
        text(engine, "STOP", number="12")
    assert exc.value.field == "from"
    with pytest.raises(ConsentError) as exc:
        text(engine, "STOP", channel="fax")
    assert exc.value.field == "channel"
    with pytest.raises(ConsentError) as exc:
        text(engine, "STOP", message_id=" ")
    assert exc.value.field == "message_id"
    assert records(engine) == before


# --- over HTTP ----------------------------------------------------------------------


def error_field(body: dict[str, Any]) -> str | None:
    """The field an error names: FastAPI's validation errors, or a router's 4xx."""
    if body["error"]["field"]:
        return str(body["error"]["field"])
    detail = body["detail"]
    return str(detail["field"]) if isinstance(detail, dict) else None


@pytest.fixture
def api(engine: Engine, db_url: str) -> Iterator[tuple[TestClient, dict[str, str]]]:
    clear_key_cache()
    keys: dict[str, str] = {}
    with engine.begin() as conn:
        for kind in ("write", "read", "admin"):
            key_id, keys[kind] = create_key(conn, kind, "web" if kind == "write" else None)
            keys[f"{kind}_id"] = str(key_id)
    with TestClient(create_app(db_url)) as client:
        yield client, keys


def test_inbound_sms_endpoint_applies_and_answers_with_twiml(
    engine: Engine, household: tuple[int, int], api: tuple[TestClient, dict[str, str]]
) -> None:  # SMS-2, SMS-5
    client, keys = api
    ann, bob = household
    response = client.post(
        "/api/consent/inbound-sms",
        headers={"Authorization": f"Bearer {keys['admin']}"},
        json={"channel": "sms", "from": PHONE, "body": "Opt out", "message_id": "SM-http"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["action"] == "withdrawn" and body["keyword"] == "OPTOUT"
    assert body["profile_ids"] == [ann, bob]
    assert body["twiml"].endswith("Reply START to resubscribe.</Message></Response>")
    assert status(engine, ann) == "withdrawn"
    with engine.connect() as conn:
        actors = set(
            conn.scalars(
                select(consent_records.c.recorded_by).where(
                    consent_records.c.message_id == "SM-http"
                )
            )
        )
    assert actors == {f"key:{keys['admin_id']}"}  # who forwarded it


@pytest.mark.parametrize(
    ("kind", "expected"), [(None, 401), ("write", 403), ("read", 403), ("bogus", 401)]
)
def test_inbound_sms_endpoint_needs_an_admin_key(
    engine: Engine, api: tuple[TestClient, dict[str, str]], kind: str | None, expected: int
) -> None:
    client, keys = api
    headers = {} if kind is None else {"Authorization": f"Bearer {keys.get(kind, 'gl_nope')}"}
    response = client.post(
        "/api/consent/inbound-sms",
        headers=headers,
        json={"channel": "sms", "from": PHONE, "body": "STOP", "message_id": "SM-x"},
    )
    assert response.status_code == expected
    assert records(engine) == []
    with engine.connect() as conn:
        assert conn.execute(select(suppressions)).first() is None


@pytest.mark.parametrize(
    ("payload", "status_code", "field"),
    [
        ({"channel": "sms", "from": "12", "body": "STOP", "message_id": "m"}, 400, "from"),
        ({"channel": "fax", "from": PHONE, "body": "STOP", "message_id": "m"}, 422, "channel"),
        ({"channel": "sms", "from": PHONE, "body": "STOP"}, 422, "message_id"),
        (
            {
                "channel": "sms",
                "from": PHONE,
                "body": "STOP",
                "message_id": "m",
                "received_at": "2026-05-01T12:00:00",
            },
            422,
            "received_at",
        ),
    ],
)
def test_inbound_sms_endpoint_refuses_bad_input(
    engine: Engine,
    api: tuple[TestClient, dict[str, str]],
    payload: dict[str, Any],
    status_code: int,
    field: str,
) -> None:
    client, keys = api
    response = client.post(
        "/api/consent/inbound-sms",
        headers={"Authorization": f"Bearer {keys['admin']}"},
        json=payload,
    )
    assert response.status_code == status_code
    assert error_field(response.json()) == field
    with engine.connect() as conn:
        assert conn.execute(select(suppressions)).first() is None
