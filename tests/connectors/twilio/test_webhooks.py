"""Deliveries end to end: the real app, requests signed by the official SDK, the
pipeline, the database. Rule ids from ../shared/compliance.md."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, func, select

from guestlist.consent.optout import is_suppressed
from guestlist.consent.twiml import EMPTY_RESPONSE
from guestlist.pipeline import process_all
from guestlist.store.tables import inbox
from tests.connectors.conftest import PUBLIC_URL, App
from tests.connectors.helpers import add_connection, connection_log
from tests.connectors.twilio.helpers import (
    ACCOUNT,
    PHONE,
    customer,
    form,
    inbound_events,
    message,
    profile_with,
    records_for,
    settings,
    signed,
    status_of,
)

STOP_CONFIRMATION = "You are unsubscribed and will get no more marketing messages"


def connect(app: App, **overrides: Any) -> int:
    body = add_connection(app.client, app.admin, "twilio", "Shop line", settings(**overrides))
    assert body["secrets_set"] == ["webhook_secret"]
    return int(body["id"])


def hook_url(cid: int | str) -> str:
    return f"{PUBLIC_URL}/hooks/twilio/{cid}"


def deliver(app: App, cid: int | str, params: dict[str, str], **headers: str) -> Any:
    sent = {**signed(hook_url(cid), params), **headers}
    return app.client.post(f"/hooks/twilio/{cid}", content=form(params), headers=sent)


def log_of(app: App, cid: int) -> list[dict[str, Any]]:
    return connection_log(app.client, app.read, cid)


def inbox_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(inbox)) or 0)


def twiml(r: Any) -> str:
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/xml")
    return str(r.text)


def test_a_message_becomes_an_inbound_message_on_the_senders_profile(app: App) -> None:
    cid = connect(app)
    params = message(
        "Do you have the 12-year rye in stock?",
        sid="SM" + "1" * 32,
        NumMedia="1",
        MediaUrl0="https://api.twilio.com/media/ME1",
        MediaContentType0="image/jpeg",
        ReferralNumMedia="0",
    )
    r = deliver(app, cid, params)
    assert twiml(r) == EMPTY_RESPONSE  # no keyword: nothing to say
    again = deliver(app, cid, params)  # Twilio retrying after a timeout
    assert twiml(again) == EMPTY_RESPONSE
    assert inbox_count(app.engine) == 1
    assert [e["outcome"] for e in log_of(app, cid)] == ["duplicate", "accepted"]
    assert log_of(app, cid)[0]["delivery_id"] == "SM" + "1" * 32

    process_all(app.engine)
    pid = profile_with(app.engine, PHONE)
    assert pid is not None
    (event,) = inbound_events(app.engine, pid)
    props = event.properties
    assert props["channel"] == "sms" and props["message_id"] == "SM" + "1" * 32
    assert props["body"] == "Do you have the 12-year rye in stock?"
    assert props["to"] == "+15558675310" and props["account_sid"] == ACCOUNT
    assert props["media"] == [
        {"url": "https://api.twilio.com/media/ME1", "content_type": "image/jpeg"}
    ]
    assert props["num_media"] == 1 and props["ReferralNumMedia"] == "0"  # unknown: kept
    assert "keyword_kind" not in props
    assert records_for(app.engine) == []  # an inquiry grants nothing (SMS-1, C-7)


def test_stop_withdraws_and_the_event_adds_no_second_record(app: App) -> None:  # SMS-2, C-1
    pid = customer(app.engine, "ann", PHONE, "sms")
    cid = connect(app)
    params = message("STOP", sid="SM" + "2" * 32)
    assert twiml(deliver(app, cid, params)) == EMPTY_RESPONSE  # Twilio answers STOP itself
    assert status_of(app.engine, pid, "sms") == "withdrawn"
    assert status_of(app.engine, pid, "sms", "sale_sharing") == "withdrawn"
    first = records_for(app.engine, "SM" + "2" * 32)
    assert {(r.status, r.keyword, r.recorded_by, r.connection) for r in first} == {
        ("withdrawn", "STOP", "twilio", f"twilio/{cid}")
    }
    assert len(first) == 2  # marketing and sale_sharing

    assert twiml(deliver(app, cid, params)) == EMPTY_RESPONSE  # redelivery: same answer
    process_all(app.engine)
    assert len(records_for(app.engine, "SM" + "2" * 32)) == 2  # once, not per delivery
    (event,) = inbound_events(app.engine, pid)
    assert (event.properties["keyword_kind"], event.properties["keyword"]) == ("opt_out", "STOP")


def test_short_code_confirms_each_keyword_once(app: App) -> None:  # SMS-3, SMS-4, SMS-5
    pid = customer(app.engine, "ann", PHONE, "sms")
    cid = connect(app, twilio_answers_keywords=False)  # a short code: Twilio answers nothing
    stop = deliver(app, cid, message("Stop", sid="SM" + "3" * 32))
    assert STOP_CONFIRMATION in twiml(stop) and "<Message>" in stop.text
    assert twiml(deliver(app, cid, message("Stop", sid="SM" + "3" * 32))) == stop.text
    start = twiml(deliver(app, cid, message("START", sid="SM" + "4" * 32)))
    assert "You are subscribed to marketing messages" in start and "STOP" in start
    assert status_of(app.engine, pid, "sms") == "granted"  # the earlier grant restored
    assert status_of(app.engine, pid, "sms", "sale_sharing") == "withdrawn"
    (regrant,) = records_for(app.engine, "SM" + "4" * 32)
    assert regrant.proof["regrants_record"] is not None
    help_reply = twiml(deliver(app, cid, message("help", sid="SM" + "5" * 32)))
    assert "Reply STOP to opt out" in help_reply and "rates may apply" in help_reply
    assert records_for(app.engine, "SM" + "5" * 32) == []


def test_start_without_an_earlier_grant_grants_nothing(app: App) -> None:  # SMS-1, SMS-3
    pid = customer(app.engine, "bob", PHONE)
    cid = connect(app, twilio_answers_keywords=False)
    reply = twiml(deliver(app, cid, message("YES", sid="SM" + "6" * 32)))
    assert "Reply STOP to opt out, START to opt back in" in reply  # the help text
    assert status_of(app.engine, pid, "sms") != "granted"
    assert records_for(app.engine) == []


def test_plain_language_opt_out_is_withdrawn_and_flagged(app: App) -> None:  # SMS-2a, SMS-5
    pid = customer(app.engine, "ann", PHONE, "sms")
    cid = connect(app)
    reply = twiml(deliver(app, cid, message("please stop texting me", sid="SM" + "7" * 32)))
    assert STOP_CONFIRMATION in reply  # Twilio does not answer this one: we do
    assert status_of(app.engine, pid, "sms") == "withdrawn"
    records = records_for(app.engine, "SM" + "7" * 32)
    assert records and all(r.needs_review for r in records)
    assert {r.proof["body"] for r in records} == {"please stop texting me"}


def test_whatsapp_stop_acts_on_whatsapp_only(app: App) -> None:  # SMS-7
    pid = customer(app.engine, "ann", PHONE, "sms", "whatsapp")
    cid = connect(app)
    r = deliver(app, cid, message("STOP", sid="SM" + "8" * 32, whatsapp=True))
    assert twiml(r) == EMPTY_RESPONSE
    assert status_of(app.engine, pid, "whatsapp") == "withdrawn"
    assert status_of(app.engine, pid, "sms") == "granted"
    with app.engine.connect() as conn:
        assert conn.scalar(select(inbox.c.kind)) == "twilio.whatsapp"
    process_all(app.engine)
    (event,) = inbound_events(app.engine, pid)  # whatsapp:+1… is the same phone
    assert event.properties["channel"] == "whatsapp"
    assert event.properties["profile_name"] == "Ann"


def test_stop_from_an_unknown_number_suppresses_it(app: App) -> None:  # SMS-2
    cid = connect(app)
    twiml(deliver(app, cid, message("UNSUBSCRIBE", sid="SM" + "9" * 32, sender="+14155550123")))
    with app.engine.connect() as conn:
        assert is_suppressed(conn, "sms", "+14155550123")
    process_all(app.engine)
    assert profile_with(app.engine, "+14155550123") is not None  # the message is kept


def test_advanced_opt_out_type_is_followed(app: App) -> None:
    """Twilio's Advanced Opt-Out acted on a shop word guestlist does not know; the ledger
    follows it, and Twilio sent the confirmation."""
    pid = customer(app.engine, "ann", PHONE, "sms")
    cid = connect(app, twilio_answers_keywords=False)
    r = deliver(app, cid, message("BAJA", sid="SM" + "a" * 32, OptOutType="STOP"))
    assert twiml(r) == EMPTY_RESPONSE
    assert status_of(app.engine, pid, "sms") == "withdrawn"
    (record, _) = records_for(app.engine, "SM" + "a" * 32)
    assert record.proof["opt_out_type"] == "STOP"


def test_the_shops_own_keywords(app: App) -> None:
    pid = customer(app.engine, "ann", PHONE, "sms")
    cid = connect(app, keywords='{"add_opt_out": ["BAJA"]}')  # a JSON string (CLI --set)
    assert STOP_CONFIRMATION in twiml(deliver(app, cid, message("baja", sid="SM" + "b" * 32)))
    assert status_of(app.engine, pid, "sms") == "withdrawn"


def test_bad_settings_are_refused_naming_the_field(app: App) -> None:
    for overrides, field in [
        ({"keywords": {"remove_opt_out": ["STOP"]}}, "keywords"),  # the FCC's words stay
        ({"keywords": "{not json"}, "keywords"),
        ({"keywords": {"add_stop": ["X"]}}, "keywords"),
        ({"account_sid": "AC123"}, "account_sid"),
        ({"api_key_sid": "SK" + "0" * 32}, "api_key_secret"),
    ]:
        r = app.client.post(
            "/api/connections",
            json={"platform": "twilio", "name": "x", "settings": settings(**overrides)},
            headers=app.admin,
        )
        assert r.status_code in (400, 422), r.text
        assert field in r.text, r.text


def test_refusals_store_nothing_and_are_logged(app: App) -> None:
    pid = customer(app.engine, "ann", PHONE, "sms")
    cid = connect(app)
    sid = "SM" + "c" * 32
    stop = message("STOP", sid=sid)
    url = f"/hooks/twilio/{cid}"

    def post(params: dict[str, str], headers: dict[str, str], to: str = url) -> Any:
        return app.client.post(to, content=form(params), headers=headers)

    unsigned = post(stop, {"content-type": "application/x-www-form-urlencoded"})
    assert unsigned.status_code == 401
    assert unsigned.json()["error"]["field"] == "X-Twilio-Signature"
    assert post(stop, signed(hook_url(cid), stop, token="another-token")).status_code == 401
    internal = signed(f"http://127.0.0.1:8000/hooks/twilio/{cid}", stop)  # not the public URL
    assert post(stop, internal).status_code == 401
    tampered = signed(hook_url(cid), stop)
    assert post({**stop, "Body": "START"}, tampered).status_code == 401
    assert post(stop, signed(hook_url(999), stop), to="/hooks/twilio/999").status_code == 404

    other = message("STOP", sid=sid, AccountSid="AC" + "f" * 32)
    wrong = post(other, signed(hook_url(cid), other))
    assert (wrong.status_code, wrong.json()["error"]["field"]) == (403, "AccountSid")
    for missing in ("From", "MessageSid"):
        params = {k: v for k, v in stop.items() if k not in (missing, "SmsSid", "SmsMessageSid")}
        r = post(params, signed(hook_url(cid), params))
        assert (r.status_code, r.json()["error"]["field"]) == (400, missing)
    status = message("", sid=sid, MessageStatus="delivered", SmsStatus="delivered")
    r = post(status, signed(hook_url(cid), status))
    assert (r.status_code, r.json()["error"]["field"]) == (400, "MessageStatus")
    bad_from = message("hi", sid=sid, From="messenger:123")
    r = post(bad_from, signed(hook_url(cid), bad_from))
    assert (r.status_code, r.json()["error"]["field"]) == (400, "From")
    json_headers = {**signed(hook_url(cid), stop), "content-type": "application/json"}
    r = post(stop, json_headers)
    assert (r.status_code, r.json()["error"]["field"]) == (400, "content-type")
    big = app.client.post(
        url, content=b"Body=" + b"x" * (6 << 20), headers=signed(hook_url(cid), stop)
    )
    assert big.status_code == 413

    assert inbox_count(app.engine) == 0
    assert records_for(app.engine) == [] or all(
        r.status == "granted" for r in records_for(app.engine)
    )
    assert status_of(app.engine, pid, "sms") == "granted"  # no profile change
    log = log_of(app, cid)
    assert {e["outcome"] for e in log} == {"rejected"}
    assert len(log) == 10
    # The MessageSid as delivery id, whenever the form has one.
    assert [e["delivery_id"] for e in log].count(None) == 1
