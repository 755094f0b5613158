"""`/api/segments` end to end (issue 4, part 6): create with JSON or text rules, queued
evaluation run by the worker, preview, members (pages and CSV), size, the change log,
explain, and precise 4xx errors that change nothing."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select

from guestlist.api.app import create_app
from guestlist.jobs.worker import Worker
from guestlist.keys import clear_key_cache, create_key
from guestlist.pipeline import process_all, process_pending
from guestlist.store.tables import segments
from guestlist.store.types import utcnow

Client = tuple[TestClient, dict[str, str], Engine]


@pytest.fixture
def client(engine: Engine, db_url: str) -> Iterator[Client]:
    clear_key_cache()
    with engine.begin() as conn:
        keys = {
            kind: create_key(conn, kind, "web" if kind == "write" else None)[1]
            for kind in ("write", "read", "admin")
        }
    now = utcnow()
    batch: list[dict[str, Any]] = []
    for i, total in enumerate([20, 80, 150, 400]):
        user = f"u-{i}"
        batch.append(
            {
                "type": "identify",
                "userId": user,
                "timestamp": (now - timedelta(days=10)).isoformat(),
                "traits": {"email": f"person{i}@example.com", "tier": "gold" if i % 2 else "red"},
            }
        )
        batch.append(
            {
                "type": "track",
                "userId": user,
                "event": "Order Completed",
                "timestamp": (now - timedelta(days=5)).isoformat(),
                "properties": {"total": total, "category": "bourbon"},
            }
        )
    with TestClient(create_app(db_url)) as test_client:
        response = test_client.post("/v1/batch", json={"batch": batch}, auth=(keys["write"], ""))
        assert response.status_code == 200
        process_all(engine)
        yield test_client, keys, engine


def call(c: Client, method: str, url: str, key: str = "admin", **kwargs: Any) -> tuple[int, Any]:
    client, keys, _ = c
    response = client.request(
        method, url, headers={"Authorization": f"Bearer {keys[key]}"}, **kwargs
    )
    if not response.content:
        return response.status_code, None
    if response.headers.get("content-type", "").startswith("application/json"):
        return response.status_code, response.json()
    return response.status_code, response.text


def run_jobs(engine: Engine) -> None:
    Worker(engine, process_inbox=process_pending).run_once()


def test_create_evaluate_and_read_members(client: Client) -> None:
    status, body = call(
        client,
        "POST",
        "/api/segments",
        json={"name": "Big spenders", "slug": "big", "rule": 'sum("Order Completed".total) > 100'},
    )
    assert status == 201, body
    assert body["rule"] == {
        "event": "Order Completed",
        "agg": "sum",
        "property": "total",
        "op": "gt",
        "value": 100,
    }
    assert body["evaluated_at"] is None
    run_jobs(client[2])
    status, body = call(client, "GET", "/api/segments/big", key="read")
    assert body["members"] == 2 and body["evaluated_at"] is not None

    status, page = call(client, "GET", "/api/segments/big/members?limit=1", key="read")
    assert status == 200 and len(page["data"]) == 1 and page["next_cursor"]
    status, rest = call(
        client, "GET", f"/api/segments/big/members?limit=1&cursor={page['next_cursor']}", key="read"
    )
    ids = {page["data"][0]["profile_id"], rest["data"][0]["profile_id"]}
    assert len(ids) == 2

    status, text = call(client, "GET", "/api/segments/big/members.csv", key="read")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert status == 200
    assert sorted(r["email"] for r in rows) == ["person2@example.com", "person3@example.com"]

    status, log = call(client, "GET", "/api/segments/big/changes", key="read")
    assert [(c["change"], c["reason"]) for c in log["data"]] == [("entered", "rule")] * 2
    status, again = call(
        client, "GET", f"/api/segments/big/changes?cursor={log['next_cursor']}", key="read"
    )
    assert again["data"] == [] and again["next_cursor"] == log["next_cursor"]

    status, size = call(client, "GET", "/api/segments/big/size", key="read")
    assert size["members"] == 2 and size["history"][-1]["members"] == 2

    status, listed = call(client, "GET", "/api/segments", key="read")
    assert [(s["slug"], s["members"]) for s in listed["data"]] == [("big", 2)]


def test_preview_counts_an_unsaved_rule(client: Client) -> None:
    status, body = call(
        client,
        "POST",
        "/api/segments/preview",
        key="read",
        json={"rule": {"trait": "tier", "op": "eq", "value": "gold"}},
    )
    assert status == 200 and body["count"] == 2 and len(body["sample"]) == 2
    with client[2].connect() as conn:
        assert conn.scalar(select(func.count()).select_from(segments)) == 0


def test_update_reevaluates_and_explain_shows_sql_and_conditions(client: Client) -> None:
    call(
        client,
        "POST",
        "/api/segments",
        json={"name": "Gold", "slug": "gold", "rule": 'trait.tier = "gold"'},
    )
    run_jobs(client[2])
    status, body = call(
        client,
        "PUT",
        "/api/segments/gold",
        json={
            "name": "Gold buyers",
            "slug": "gold",
            "rule": 'trait.tier = "gold" and sum("Order Completed".total) > 100',
        },
    )
    assert status == 200 and body["version"] == 2
    run_jobs(client[2])
    status, body = call(client, "GET", "/api/segments/gold", key="read")
    assert body["members"] == 1
    _, members = call(client, "GET", "/api/segments/gold/members", key="read")
    pid = members["data"][0]["profile_id"]
    status, explained = call(
        client, "GET", f"/api/segments/gold/explain?profile_id={pid}", key="read"
    )
    assert status == 200
    assert "SELECT" in explained["sql"] and "Order Completed" in explained["sql"]
    assert explained["profile"]["holds"] is True
    assert [c["held"] for c in explained["profile"]["conditions"]] == [True, True, True]


@pytest.mark.parametrize(
    ("payload", "status", "field"),
    [
        ({"name": "X", "slug": "Bad Slug", "rule": {"trait": "a", "op": "exists"}}, 422, "slug"),
        ({"name": "X", "slug": "x", "rule": {"trait": "a", "op": "eq"}}, 422, "rule/value"),
        (
            {"name": "X", "slug": "x", "rule": {"trait": "a", "op": "eq", "value": 1, "extra": 2}},
            422,
            "rule/extra",
        ),
        ({"name": "X", "slug": "x", "rule": "trait.a = "}, 422, "rule"),
        ({"name": "X", "slug": "x", "rule": {"in_segment": "nope"}}, 422, "rule"),
        (
            {
                "name": "X",
                "slug": "x",
                "rule": {"trait": "a", "op": "exists"},
                "category": "alcohol",
            },
            422,
            "channel",
        ),
        ({"name": "", "slug": "x", "rule": {"trait": "a", "op": "exists"}}, 422, "name"),
    ],
)
def test_bad_segments_get_a_precise_error_and_store_nothing(
    client: Client, payload: dict[str, Any], status: int, field: str
) -> None:
    got, body = call(client, "POST", "/api/segments", json=payload)
    assert got == status, body
    assert body["error"]["field"] == field
    with client[2].connect() as conn:
        assert conn.scalar(select(func.count()).select_from(segments)) == 0


def test_keys_and_conflicts(client: Client) -> None:
    rule = {"trait": "tier", "op": "exists"}
    status, _ = call(
        client, "POST", "/api/segments", key="read", json={"name": "A", "slug": "a", "rule": rule}
    )
    assert status == 403
    assert (
        call(client, "POST", "/api/segments", json={"name": "A", "slug": "a", "rule": rule})[0]
        == 201
    )
    assert (
        call(client, "POST", "/api/segments", json={"name": "A", "slug": "a", "rule": rule})[0]
        == 409
    )
    assert (
        call(
            client,
            "POST",
            "/api/segments",
            json={"name": "B", "slug": "b", "rule": {"in_segment": "a"}},
        )[0]
        == 201
    )
    status, _ = call(client, "DELETE", "/api/segments/a")
    assert status == 409
    assert call(client, "DELETE", "/api/segments/b")[0] == 204
    assert call(client, "DELETE", "/api/segments/a")[0] == 204
    assert call(client, "GET", "/api/segments/a", key="read")[0] == 404


def test_computed_traits_over_http(client: Client) -> None:
    status, body = call(
        client,
        "PUT",
        "/api/computed-traits/lifetime_spend",
        json={"name": "lifetime_spend", "definition": 'sum("Order Completed".total)'},
    )
    assert status == 200, body
    assert body["definition"] == {"event": "Order Completed", "agg": "sum", "property": "total"}
    run_jobs(client[2])
    status, body = call(
        client,
        "POST",
        "/api/segments/preview",
        key="read",
        json={"rule": "trait.lifetime_spend >= 150"},
    )
    assert body["count"] == 2
    status, listed = call(client, "GET", "/api/computed-traits", key="read")
    assert listed["data"][0]["text"] == 'sum("Order Completed".total)'
    status, bad = call(
        client,
        "PUT",
        "/api/computed-traits/x",
        json={"name": "x", "definition": {"event": "Order Completed", "agg": "sum"}},
    )
    assert status == 422 and bad["error"]["field"] == "definition/property"
    assert call(client, "DELETE", "/api/computed-traits/lifetime_spend")[0] == 204
    assert call(client, "DELETE", "/api/computed-traits/lifetime_spend")[0] == 404
