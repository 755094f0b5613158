"""The handshake, deliveries end to end through the app, and the fetch job against
the fake Graph API: profile, traits, Lead Submitted, consent ledger, age records."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest

from guestlist.jobs.worker import Worker
from guestlist.pipeline import process_all
from tests.connectors.conftest import App
from tests.connectors.facebook_lead_ads.helpers import (
    age_of,
    connect,
    consent_of,
    count_events,
    deliver,
    events_of,
    inbox_rows,
    job_rows,
    leadgen_body,
    live_profiles,
    log_of,
    profile_of,
    sample,
    sample_bytes,
    traits_of,
)
from tests.fakes import serve
from tests.fakes.facebook import GraphFake
from tests.fakes.facebook import sample as fake_sample

LEAD_ID = "1204587763310921"
FORM_ID = "887412096653201"


@pytest.fixture
def graph() -> Iterator[tuple[GraphFake, str]]:
    fake = GraphFake()
    fake.add_lead(fake_sample("lead__consent_and_dob.CONSTRUCTED.json"))
    fake.add_form(fake_sample("leadgen_form__legal_content.CONSTRUCTED.json"))
    with serve(fake.app) as url:
        yield fake, url


def run_jobs(app: App) -> None:
    Worker(app.engine, process_inbox=lambda e, n: 0).run_once()


def handshake(app: App, cid: int, **query: str) -> Any:
    return app.client.get(f"/hooks/facebook_lead_ads/{cid}", params=query)


def _handshake_checks(app: App) -> None:
    cid = connect(app)
    ok = handshake(app, cid, **{"hub.mode": "subscribe", "hub.verify_token":
                               "guestlist-verify-5e1f", "hub.challenge": "1158201444"})
    assert ok.status_code == 200 and ok.text == "1158201444"
    assert ok.headers["content-type"].startswith("text/plain")
    wrong = handshake(app, cid, **{"hub.mode": "subscribe", "hub.verify_token": "guess",
                                  "hub.challenge": "1158201444"})
    assert wrong.status_code == 403 and "1158201444" not in wrong.text
    assert wrong.json()["error"]["field"] == "hub.verify_token"
    missing = handshake(app, cid, **{"hub.mode": "subscribe", "hub.challenge": "1"})
    assert missing.status_code == 403
    mode = handshake(app, cid, **{"hub.verify_token": "guestlist-verify-5e1f",
                                 "hub.challenge": "1"})
    assert mode.status_code == 400 and mode.json()["error"]["field"] == "hub.mode"
    assert [e["outcome"] for e in log_of(app, cid)].count("rejected") == 3
    assert handshake(app, 999, **{"hub.mode": "subscribe"}).status_code == 404


def test_a_lead_end_to_end(app: App, graph: tuple[GraphFake, str]) -> None:  # C-2, C-4
    fake, url = graph
    cid = connect(app, base_url=url)
    body = leadgen_body((LEAD_ID, FORM_ID))
    r = deliver(app, cid, body)
    assert r.status_code == 200, r.text
    assert r.json() == {"status": "accepted", "delivery_id": f"leadgen:{LEAD_ID}"}
    assert fake.requests == []  # nothing fetched while Meta waits for the answer
    (job,) = job_rows(app)
    assert (job.kind, job.unique_key, job.status) == (
        "facebook_lead_ads.fetch_lead", f"fb-lead:{LEAD_ID}", "queued")

    again = deliver(app, cid, body)  # Meta retries: stored once, no second job
    assert again.json()["status"] == "duplicate" and len(job_rows(app)) == 1

    run_jobs(app)
    assert job_rows(app)[0].status == "done"
    assert [path for path, _ in fake.requests] == [
        f"/v24.0/{LEAD_ID}", f"/v24.0/{FORM_ID}"]
    assert "custom_disclaimer_responses" in fake.requests[0][1]["fields"]
    kinds = [row.kind for row in inbox_rows(app.engine)]
    assert kinds == ["facebook_lead_ads.leadgen", "facebook_lead_ads.lead"]

    process_all(app.engine)
    pid = profile_of(app.engine, "email", "renee.lavoie@example.com")
    assert pid is not None and live_profiles(app.engine) == 1
    assert profile_of(app.engine, "phone", "+15145550187") == pid
    t = traits_of(app.engine, pid)
    assert (t["first_name"], t["birthday"], t["address"]["postal_code"]) == (
        "Renée", "1988-09-23", "05401")
    (lead,) = events_of(app.engine, pid, "Lead Submitted")
    assert lead.properties["answers"]["favourite_styles"] == ["peated", "sherry cask"]
    records = {r.channel: r for r in consent_of(app.engine, pid)}
    assert sorted(records) == ["email", "sms"]  # the unticked partner box: nothing (C-4)
    form = sample("leadgen_form__legal_content.CONSTRUCTED.json")
    boxes = {b["key"]: b["text"] for b in form["legal_content"]["custom_disclaimer"]["checkboxes"]}
    email, sms = records["email"], records["sms"]
    assert (email.status, email.kind, email.identifier, email.legal_basis) == (
        "granted", "express", "renee.lavoie@example.com", "gdpr_consent")
    assert (sms.status, sms.identifier, sms.legal_basis) == ("granted", "+15145550187",
                                                             "tcpa_written")
    assert email.recorded_by == "facebook_lead_ads"
    assert email.proof["checkbox_key"] == "email_offers"
    assert {r.dob for r in age_of(app.engine, pid)} == {date(1988, 9, 23)}
    assert {r.level for r in age_of(app.engine, pid)} == {"dob_provided"}
    # The exact wording shown is what is stored (by its hash) with each record.
    assert _texts(app, pid) == {boxes["email_offers"], boxes["sms_offers"]}

    # The same lead in another delivery: a new job, the lead stored and applied once.
    other = leadgen_body((LEAD_ID, FORM_ID), ("1204587763310999", FORM_ID))
    fake.add_lead({"id": "1204587763310999", "created_time": "2026-05-14T19:00:00+0000",
                   "form_id": FORM_ID,
                   "field_data": [{"name": "email", "values": ["second@example.com"]}]})
    assert deliver(app, cid, other).json()["status"] == "accepted"
    run_jobs(app)
    process_all(app.engine)
    assert [row.kind for row in inbox_rows(app.engine)].count("facebook_lead_ads.lead") == 2
    assert count_events(app.engine, "Lead Submitted") == 2 and live_profiles(app.engine) == 2


def _texts(app: App, pid: int) -> set[str]:
    from sqlalchemy import select

    from guestlist.store.tables import consent_records, consent_texts

    with app.engine.connect() as conn:
        rows = conn.execute(
            select(consent_texts.c.text).join(
                consent_records, consent_records.c.text_hash == consent_texts.c.hash
            ).where(consent_records.c.profile_id == pid)
        )
        return {r.text for r in rows}


def test_graph_failures(app: App, graph: tuple[GraphFake, str]) -> None:
    fake, url = graph
    cid = connect(app, base_url=url)
    fake.fail[LEAD_ID] = [500]  # retried by the client at once
    deliver(app, cid, leadgen_body((LEAD_ID, FORM_ID)))
    run_jobs(app)
    assert job_rows(app)[0].status == "done"

    # An unreadable lead: the job fails, stays queued for a later retry, nothing stored.
    deliver(app, cid, leadgen_body(("404404", FORM_ID)))
    run_jobs(app)
    failed = job_rows(app)[1]
    assert failed.status == "queued" and failed.attempts == 1
    assert "400" in failed.last_error and "EAAG" not in failed.last_error
    assert [row.kind for row in inbox_rows(app.engine)].count("facebook_lead_ads.lead") == 1

    # The form unreadable (4xx): the lead is kept; consent rests on configured wording.
    fake.objects.pop(FORM_ID)
    fake.add_lead({**fake.objects[LEAD_ID], "id": "777"})
    deliver(app, cid, leadgen_body(("777", FORM_ID)))
    run_jobs(app)
    process_all(app.engine)
    pid = profile_of(app.engine, "email", "renee.lavoie@example.com")
    assert pid is not None
    assert count_events(app.engine, "Lead Submitted") == 2
    # The configured settings carry no wording: the second lead's boxes record nothing.
    assert len(consent_of(app.engine, pid)) == 2


def _refusals(app: App) -> None:
    cid = connect(app, page_id="104233165087761")
    body = leadgen_body((LEAD_ID, FORM_ID))
    bad = deliver(app, cid, body, secret="not the app secret")
    assert bad.status_code == 401
    missing = app.client.post(f"/hooks/facebook_lead_ads/{cid}", content=body)
    assert missing.status_code == 400
    assert missing.json()["error"]["field"] == "x-hub-signature-256"
    assert deliver(app, 999, body).status_code == 404
    other_page = deliver(app, cid, leadgen_body((LEAD_ID, FORM_ID), page_id="999"))
    assert other_page.status_code == 403
    assert other_page.json()["error"]["field"] == "entry[].changes[].value.page_id"
    for raw, field in (
        (b"not json", "body"),
        (b'{"object":"user","entry":[]}', "object"),
        (b'{"object":"page"}', "entry"),
        (b'{"object":"page","entry":[{"changes":[{"field":"leadgen","value":{"page_id":"1",'
         b'"form_id":"2"}}]}]}', "entry[0].changes[0].value.leadgen_id"),
        (b'{"object":"page","entry":[{"changes":[{"field":"feed","value":{}}]}]}',
         "entry[].changes[].field"),
    ):
        r = deliver(app, cid, raw)
        assert r.status_code == 400 and r.json()["error"]["field"] == field, r.text
    assert inbox_rows(app.engine) == [] and job_rows(app) == []
    outcomes = [e["outcome"] for e in log_of(app, cid)]
    assert outcomes.count("rejected") == 8 and "accepted" not in outcomes


def _documented_sample(app: App) -> None:
    cid = connect(app, name="Sample ads")
    r = deliver(app, cid, sample_bytes("leadgen_webhook.CONSTRUCTED.json"))
    assert r.status_code == 200 and r.json()["delivery_id"] == "leadgen:<LEAD_ID>"
    (job,) = job_rows(app)
    assert job.args["leadgen"]["form_id"] == "<FORM_ID>"
    process_all(app.engine)
    assert live_profiles(app.engine) == 0  # the ids alone make no profile


def _checkbox_mapping_settings(app: App) -> None:
    from guestlist.connectors.facebook_lead_ads.settings import FacebookLeadAdsSettings

    as_text = FacebookLeadAdsSettings.model_validate({
        "page_access_token": "t",
        "consent_checkboxes": '{"email_offers": {"channel": "email"}}',
    })
    assert as_text.consent_checkboxes["email_offers"].channel == "email"
    for n, bad in enumerate(('{"email_offers": {"channel": "fax"}}', "{not json",
                {"email_offers": {"channel": "email", "wording": "x"}})):
        r = app.client.post(
            "/api/connections",
            json={"platform": "facebook_lead_ads", "name": f"bad {n}",
                  "settings": {"page_access_token": "t", "consent_checkboxes": bad}},
            headers=app.admin,
        )
        assert r.status_code == 422, r.text
        assert r.json()["error"]["field"].startswith("settings.consent_checkboxes"), r.text


def test_handshake_echoes_the_challenge_only_for_the_verify_token_and_settings(app: App) -> None:
    _handshake_checks(app)
    _checkbox_mapping_settings(app)


def test_refusals_then_the_documented_sample(app: App) -> None:
    _refusals(app)
    _documented_sample(app)
