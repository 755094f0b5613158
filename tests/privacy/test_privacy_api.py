"""Privacy endpoints over HTTP (both databases): erasure, export, audit log, report."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from guestlist.api.app import create_app
from guestlist.keys import clear_key_cache, create_key
from guestlist.store.tables import jobs, profiles
from tests.privacy.conftest import SMS_TEXT, Person, make_person

Client = tuple[TestClient, dict[str, str], dict[str, int]]


@pytest.fixture
def api(engine: Engine, db_url: str) -> Iterator[Client]:
    clear_key_cache()
    keys: dict[str, str] = {}
    key_ids: dict[str, int] = {}
    with engine.begin() as conn:
        for kind in ("write", "read", "admin"):
            key_ids[kind], keys[kind] = create_key(
                conn,
                kind,
                "web" if kind == "write" else None,  # type: ignore[arg-type]
            )
    with TestClient(create_app(db_url)) as client:
        yield client, keys, key_ids


@pytest.fixture
def person(engine: Engine, api: Client) -> Person:
    return make_person(engine)


def call(
    client: TestClient, method: str, url: str, key: str | None, **kwargs: Any
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    response = client.request(method, url, headers=headers, **kwargs)
    if response.headers.get("content-type", "").startswith("application/json"):
        return response.status_code, response.json()
    return response.status_code, response.text


def test_erasure_needs_an_admin_key(api: Client, person: Person) -> None:  # P-2
    client, keys, _ = api
    url = f"/api/profiles/{person.profile_id}"
    assert call(client, "DELETE", url, None)[0] == 401
    assert call(client, "DELETE", url, "gl_admin_forged")[0] == 401
    for kind in ("write", "read"):
        status, body = call(client, "DELETE", url, keys[kind])
        assert status == 403 and body["success"] is False
    status, _ = call(client, "GET", f"/api/profiles/{person.profile_id}", keys["read"])
    assert status == 200  # nothing happened


def test_delete_erases_and_answers_with_the_report(
    api: Client, person: Person, engine: Engine
) -> None:  # P-2, P-6
    client, keys, key_ids = api
    status, body = call(
        client,
        "DELETE",
        f"/api/profiles/{person.merged_id}",
        keys["admin"],
        json={"reason": "ticket 4411"},
    )
    assert status == 200, body
    assert body["profile_id"] == person.profile_id
    assert body["erased_profile_ids"] == [person.profile_id, person.merged_id]
    assert [j["connection"] for j in body["destination_jobs"]] == ["mailchimp:main", "klaviyo:eu"]
    with engine.connect() as conn:
        assert (
            conn.scalar(select(profiles.c.erased_at).where(profiles.c.id == person.profile_id))
            is not None
        )
        assert len(conn.execute(select(jobs)).all()) == 2
    status, tombstone = call(client, "GET", f"/api/profiles/{person.profile_id}", keys["read"])
    assert status == 200 and tombstone["erased_at"] and tombstone["identifiers"] == []
    _, listed = call(client, "GET", "/api/profiles", keys["read"])
    assert [p["id"] for p in listed["data"]] == [person.bystander_id]
    status, audit = call(
        client,
        "GET",
        f"/api/audit?profile_id={person.profile_id}&action=profile.erased",
        keys["admin"],
    )
    assert status == 200
    [entry] = audit["data"]
    assert (entry["actor"], entry["reason"]) == (f"key:{key_ids['admin']}", "ticket 4411")


def test_delete_errors_are_json_naming_the_field(api: Client, person: Person) -> None:  # P-2
    client, keys, _ = api
    status, body = call(client, "DELETE", "/api/profiles/99999", keys["admin"])
    assert status == 404
    assert body["error"]["field"] == "profile_id" and body["detail"]["field"] == "profile_id"
    assert call(client, "DELETE", f"/api/profiles/{person.profile_id}", keys["admin"])[0] == 200
    status, body = call(client, "DELETE", f"/api/profiles/{person.profile_id}", keys["admin"])
    assert status == 409
    assert body["error"]["code"] == "conflict" and body["error"]["field"] == "profile_id"
    assert "already erased" in body["error"]["message"]
    status, body = call(client, "DELETE", f"/api/profiles/{person.merged_id}", keys["admin"])
    assert status == 409  # the merged-away id stands for the same, erased, person
    status, body = call(client, "DELETE", "/api/profiles/abc", keys["admin"])
    assert status == 422 and body["error"]["field"] == "path.profile_id"
    status, body = call(
        client, "DELETE", f"/api/profiles/{person.bystander_id}", keys["admin"], json={"reason": 5}
    )
    assert status == 422 and body["error"]["field"] == "reason"


def test_export_over_http(api: Client, person: Person) -> None:  # P-1, P-6
    client, keys, key_ids = api
    url = f"/api/profiles/{person.profile_id}/export"
    assert call(client, "GET", url, keys["read"])[0] == 403
    status, data = call(client, "GET", url, keys["admin"])
    assert status == 200
    assert data["profile"]["id"] == person.profile_id
    assert any(r["text"] == SMS_TEXT for r in data["consent"]["records"])
    assert call(client, "GET", "/api/profiles/99999/export", keys["admin"])[0] == 404
    _, audit = call(client, "GET", "/api/audit?action=profile.exported", keys["admin"])
    assert [(e["profile_id"], e["actor"]) for e in audit["data"]] == [
        (person.profile_id, f"key:{key_ids['admin']}")
    ]


def test_audit_log_by_profile_and_time_with_cursor_pages(
    api: Client, person: Person
) -> None:  # P-6
    client, keys, _ = api
    assert call(client, "GET", "/api/audit", keys["read"])[0] == 403
    seen: list[int] = []
    url = f"/api/audit?profile_id={person.profile_id}&limit=2"
    while True:
        status, page = call(client, "GET", url, keys["admin"])
        assert status == 200
        seen += [e["id"] for e in page["data"]]
        assert all(e["profile_id"] == person.profile_id for e in page["data"])
        if not page["next_cursor"]:
            break
        url = f"/api/audit?profile_id={person.profile_id}&limit=2&cursor={page['next_cursor']}"
    assert len(seen) == len(set(seen)) >= 4 and seen == sorted(seen)
    _, everything = call(client, "GET", "/api/audit?limit=500", keys["admin"])
    first = datetime.fromisoformat(everything["data"][0]["at"])
    later = (first + timedelta(hours=1)).replace(tzinfo=None).isoformat()  # no zone: UTC
    _, none = call(client, "GET", f"/api/audit?since={later}", keys["admin"])
    assert none["data"] == []
    _, until = call(client, "GET", f"/api/audit?until={later}&limit=500", keys["admin"])
    assert len(until["data"]) == len(everything["data"])
    status, body = call(client, "GET", "/api/audit?since=yesterday", keys["admin"])
    assert status == 422 and body["error"]["field"] == "since"
    status, body = call(client, "GET", "/api/audit?cursor=zzz", keys["admin"])
    assert status == 400 and body["error"]["field"] == "cursor"


def test_compliance_report_json_and_csv(api: Client, person: Person) -> None:
    client, keys, _ = api
    assert call(client, "GET", "/api/reports/compliance", None)[0] == 401
    assert call(client, "GET", "/api/reports/compliance", keys["write"])[0] == 403
    status, data = call(client, "GET", "/api/reports/compliance?days=7", keys["read"])
    assert status == 200
    assert data["summary"]["live_profiles"] == 2
    sms = next(r for r in data["consent"] if (r["channel"], r["purpose"]) == ("sms", "marketing"))
    assert (sms["granted"], sms["unknown"]) == (1, 1)
    assert data["ledger"]["ok"] is True and len(data["opt_outs"]) == 7
    response = client.get(
        "/api/reports/compliance.csv?verify_ledger=false",
        headers={"Authorization": f"Bearer {keys['read']}"},
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(response.text)))
    assert ["# consent"] in rows and ["# opt_outs"] in rows
    status, body = call(client, "GET", "/api/reports/compliance?days=0", keys["read"])
    assert status == 422 and body["error"]["field"] == "days"
