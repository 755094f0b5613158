"""Caught records end to end: the real app, the secret in the path or a header, the
pipeline, profiles, events and the consent ledger. Refusals store nothing and are logged."""

from __future__ import annotations

import hashlib
import json
from datetime import date

from sqlalchemy import func, select, update

from guestlist.api.hooks import MAX_BODY
from guestlist.pipeline import process_all
from guestlist.store.tables import connections, consent_texts, events, inbox
from tests.connectors.conftest import App
from tests.connectors.helpers import (
    age_of,
    consent_of,
    events_of,
    inbox_rows,
    live_profiles,
    profile_of,
    traits_of,
)
from tests.connectors.zapier.helpers import (
    CONTEST,
    CONTEST_MAPPING,
    EMAIL_TEXT,
    FLAT,
    SECRET,
    SEVERAL,
    catch,
    connect,
    log_of,
    sample,
    sample_bytes,
)


def test_add_shows_the_catch_url_with_its_secret_once(app: App) -> None:
    r = app.client.post(
        "/api/connections",
        json={"platform": "zapier", "name": "Zaps", "settings": {
            "mapping": json.dumps({"traits": {"email": "Email"}})}},  # the CLI's JSON string
        headers=app.admin,
    )
    assert r.status_code == 201, r.text
    cid, secret = r.json()["id"], r.json()["webhook_secret"]
    assert r.json()["webhook_url"] == f"https://guestlist.example/hooks/zapier/{cid}/{secret}"
    assert r.json()["settings"]["mapping"]["traits"] == {"email": "Email"}
    shown = app.client.get(f"/api/connections/{cid}", headers=app.read).json()
    assert secret not in str(shown)
    assert catch(app, cid, sample_bytes(FLAT), secret=secret).status_code == 200
    assert catch(app, cid, b'{"Email": "kai@example.org"}', secret=secret,
                 in_header=True).status_code == 200


def test_contest_entry_to_profile_events_consent_and_age(app: App) -> None:  # C-2, C-4
    cid = connect(app, mapping=CONTEST_MAPPING)
    r = catch(app, cid, sample_bytes(CONTEST))
    assert r.status_code == 200, r.text
    assert r.json() == {"status": "accepted", "delivery_id": "id:ce_1042"}
    process_all(app.engine)

    pid = profile_of(app.engine, "email", "maya.chen@example.org")
    assert pid is not None
    assert profile_of(app.engine, "phone", "+14155550134") == pid
    t = traits_of(app.engine, pid)
    assert (t["first_name"], t["last_name"], t["birthday"]) == ("Maya", "Chen", "1990-04-12")
    (entry,) = events_of(app.engine, pid, "Contest Entered")
    assert entry.properties["favorite_spirit"] == "Rye whiskey"
    assert entry.properties["utm_source"] == "instagram"  # unmapped: kept
    assert entry.timestamp.isoformat().startswith("2026-11-20T18:04:11")

    (record,) = consent_of(app.engine, pid)  # the empty SMS box is silence (C-4)
    assert (record.channel, record.status, record.kind, record.purpose) == (
        "email", "granted", "express", "marketing")
    assert record.identifier == "maya.chen@example.org"
    assert record.text_hash == hashlib.sha256(EMAIL_TEXT.encode()).hexdigest()
    assert (record.url, record.legal_basis, record.recorded_by, record.connection) == (
        "https://bottleshop.example/giveaway", "gdpr_consent", "zapier", "Zaps")
    assert record.proof["form_field"] == "answers.email_optin"
    with app.engine.connect() as conn:
        assert conn.scalar(select(consent_texts.c.text)) == EMAIL_TEXT
    (consent_event,) = events_of(app.engine, pid, "Consent Updated")
    assert not consent_event.issues
    # A typed-in date of birth: dob_provided, never higher; the ticked 21+ box: a
    # self-declaration without a date (docs/age.md).
    assert {(a.dob, a.level, a.method) for a in age_of(app.engine, pid)} == {
        (date(1990, 4, 12), "dob_provided", "birthday_trait"), (None, "self_declared", "age_gate")}
    (age_event,) = events_of(app.engine, pid, "Age Verified")
    assert not age_event.issues


def test_several_records_and_redeliveries_stored_once(app: App) -> None:
    mapping = {**CONTEST_MAPPING, "consent": [CONTEST_MAPPING["consent"][0]]}
    cid = connect(app, mapping=mapping)
    body = sample_bytes(SEVERAL)
    first = catch(app, cid, body)
    assert first.json()["delivery_id"] == "sha256:" + hashlib.sha256(body).hexdigest()
    assert catch(app, cid, body, in_header=True).json()["status"] == "duplicate"
    # The same record again inside another post: its events are applied once.
    again = json.dumps([sample(SEVERAL)[0], {"entry_id": "ce_2004",
                                             "contact": {"email": "new@example.com"}}])
    assert catch(app, cid, again.encode()).json()["status"] == "accepted"
    process_all(app.engine)
    assert live_profiles(app.engine) == 4
    sam = profile_of(app.engine, "email", "sam.ortiz@example.com")
    assert sam is not None
    assert len(events_of(app.engine, sam, "Contest Entered")) == 1
    assert len(consent_of(app.engine, sam)) == 1
    lee = profile_of(app.engine, "email", "lee.park@example.com")
    assert lee is not None and consent_of(app.engine, lee) == []  # false is no denial (C-4)
    assert profile_of(app.engine, "phone", "+14155550177") is not None
    assert [e["outcome"] for e in log_of(app, cid)] == ["accepted", "duplicate", "accepted"]


def test_the_mapping_in_force_is_kept_with_the_delivery(app: App) -> None:
    cid = connect(app)  # the default mapping: fields named like traits
    assert catch(app, cid, sample_bytes(FLAT)).status_code == 200
    # The mapping is edited after the delivery came in (no API edits settings yet).
    with app.engine.begin() as conn:
        settings = conn.execute(
            select(connections.c.settings).where(connections.c.id == cid)
        ).scalar_one()
        changed = {**settings, "mapping": {**settings["mapping"], "keep_unmapped": False}}
        conn.execute(update(connections).where(connections.c.id == cid)
                     .values(settings=changed))
    process_all(app.engine)
    pid = profile_of(app.engine, "email", "r.okoye@example.net")
    assert pid is not None
    (identify,) = events_of(app.engine, pid)
    assert identify.properties == {"Notes": "Asked about the tasting on Friday",
                                   "Lead Source": "Facebook Lead Ad"}  # as when received
    (row,) = inbox_rows(app.engine)
    stored = json.loads(row.headers["x-guestlist-zapier-mapping"])
    assert stored["traits"] == {} and stored["keep_unmapped"] is True
    assert row.headers["x-guestlist-zapier-connection"] == "Zaps"


def test_refusals_store_nothing_and_are_logged(app: App) -> None:
    cid = connect(app, mapping=CONTEST_MAPPING)
    body = sample_bytes(CONTEST)
    expected: list[tuple[int, str]] = []
    for kwargs, error in [
        ({"secret": "wrong"}, "invalid_secret"),
        ({"secret": "wrong", "in_header": True}, "invalid_secret"),
        ({"secret": None}, "missing_secret"),
        ({"secret": SECRET[:-1], "in_header": True}, "invalid_secret"),
    ]:
        r = catch(app, cid, body, **kwargs)  # type: ignore[arg-type]
        assert (r.status_code, r.json()["error"]["code"]) == (401, error), r.text
        expected.append((401, error))
    for bad, field in [
        (b"{not json", "body"),
        (b"[1, 2]", "body"),
        (b'"x"', "body"),
        (b'{"contact": {"first_name": "Anon"}}', "contact.email"),
        (b'[{"contact": {"email": "a@example.org"}}, {"entry_id": "x"}]', "contact.email"),
    ]:
        r = catch(app, cid, bad)
        assert (r.status_code, r.json()["error"]["field"]) == (400, field), r.text
        expected.append((400, "invalid_body"))
    r = catch(app, cid, body, headers={"x-guestlist-zapier-mapping": "{}"})
    assert (r.status_code, r.json()["error"]["field"]) == (400, "x-guestlist-zapier-mapping")
    expected.append((400, "invalid_body"))
    big = b'{"contact": {"email": "a@example.org"}, "pad": "' + b"x" * MAX_BODY + b'"}'
    assert catch(app, cid, big).status_code == 413
    assert catch(app, 999, body).status_code == 404

    process_all(app.engine)
    with app.engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(inbox)) == 0
        assert conn.scalar(select(func.count()).select_from(events)) == 0
    assert live_profiles(app.engine) == 0
    logged = [(e["status"], e["detail"].split(":")[0]) for e in reversed(log_of(app, cid))]
    assert logged == expected
    assert all(e["outcome"] == "rejected" for e in log_of(app, cid))


def test_bad_mapping_settings_name_the_field(app: App) -> None:
    for mapping, field in [
        ({"consent": [{"field": "optin", "channel": "email"}]}, "settings.mapping.consent.0.text"),
        ("{nope", "settings.mapping"),
        ({"type": "track"}, "settings.mapping"),
        ({"traits": {"email": 3}}, "settings.mapping.traits.email"),
    ]:
        r = app.client.post(
            "/api/connections",
            json={"platform": "zapier", "name": "Zaps", "settings": {"mapping": mapping}},
            headers=app.admin,
        )
        assert r.status_code == 422 and r.json()["error"]["field"] == field, r.text
