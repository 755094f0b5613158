"""`/api/profiles` end to end: tracking API → worker → REST API (both databases)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from guestlist.api.app import create_app
from guestlist.keys import clear_key_cache, create_key
from guestlist.pipeline import process_all


@pytest.fixture
def client(engine: Engine, db_url: str) -> Iterator[tuple[TestClient, dict[str, str]]]:
    clear_key_cache()
    with engine.begin() as conn:
        keys = {kind: create_key(conn, kind, "web" if kind == "write" else None)[1]
                for kind in ("write", "read", "admin")}
    with TestClient(create_app(db_url)) as test_client:
        batch = [
            {"type": "identify", "userId": "u-1", "timestamp": "2026-01-01T10:00:00Z",
             "traits": {"email": "Ann.Lee@Gmail.com", "firstName": "Ann", "lastName": "Lee",
                        "phone": "(415) 555-2671"}},
            {"type": "track", "userId": "u-1", "event": "Order Completed",
             "timestamp": "2026-01-02T10:00:00Z", "properties": {"total": 42.5}},
            {"type": "identify", "anonymousId": "a-2", "timestamp": "2026-01-01T10:00:00Z",
             "context": {"externalIds": [{"id": "77", "type": "shopify:customer",
                                          "collection": "users"}]},
             "traits": {"email": "bob@shop.ca", "firstName": "Bob"}},
            {"type": "identify", "anonymousId": "a-3", "traits": {"email": "carl@shop.ca"}},
        ]
        response = test_client.post("/v1/batch", json={"batch": batch}, auth=(keys["write"], ""))
        assert response.status_code == 200
        process_all(engine)
        yield test_client, keys


def get(client: TestClient, key: str, url: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    response = client.get(url, headers={"Authorization": f"Bearer {key}"},
                          follow_redirects=False)
    return response.status_code, response.json() if response.content else {}


def test_search_by_email_is_normalised_like_identifiers(client: tuple[TestClient, dict]) -> None:  # type: ignore[type-arg]
    c, keys = client
    status, body = get(c, keys["read"], "/api/profiles?email=annlee%2Bnews@googlemail.com")
    assert status == 200
    [profile] = body["data"]
    assert profile["traits"]["first_name"] == "Ann"


def test_search_by_phone_in_any_format(client: tuple[TestClient, dict]) -> None:  # type: ignore[type-arg]
    c, keys = client
    _, body = get(c, keys["read"], "/api/profiles?phone=%2B1%20415-555-2671")
    assert [p["traits"]["first_name"] for p in body["data"]] == ["Ann"]


def test_search_by_external_id_and_free_text(client: tuple[TestClient, dict]) -> None:  # type: ignore[type-arg]
    c, keys = client
    _, body = get(c, keys["read"], "/api/profiles?external_id=shopify:customer:77")
    assert [p["traits"]["first_name"] for p in body["data"]] == ["Bob"]
    _, body = get(c, keys["read"], "/api/profiles?q=BOB")
    assert [p["traits"]["first_name"] for p in body["data"]] == ["Bob"]


def test_invalid_search_value_is_a_400_naming_the_field(client: tuple[TestClient, dict]) -> None:  # type: ignore[type-arg]
    c, keys = client
    status, body = get(c, keys["read"], "/api/profiles?phone=12")
    assert status == 400
    assert body["detail"]["field"] == "phone"


def test_cursor_pagination_walks_every_profile_once(client: tuple[TestClient, dict]) -> None:  # type: ignore[type-arg]
    c, keys = client
    seen: list[int] = []
    url = "/api/profiles?limit=1"
    while True:
        _, body = get(c, keys["read"], url)
        seen += [p["id"] for p in body["data"]]
        if not body["next_cursor"]:
            break
        url = f"/api/profiles?limit=1&cursor={body['next_cursor']}"
    assert len(seen) == len(set(seen)) == 3
    status, _ = get(c, keys["read"], "/api/profiles?cursor=garbage")
    assert status == 400


def test_profile_detail_has_traits_with_source_identifiers_and_events(
    client: tuple[TestClient, dict],  # type: ignore[type-arg]
) -> None:
    c, keys = client
    _, body = get(c, keys["read"], "/api/profiles?email=ann.lee@gmail.com")
    pid = body["data"][0]["id"]
    status, profile = get(c, keys["read"], f"/api/profiles/{pid}")
    assert status == 200
    assert profile["traits"]["first_name"]["source"] == "web"
    assert profile["traits"]["first_name"]["event_time"].startswith("2026-01-01T10:00:00")
    assert {(i["kind"], i["key"]) for i in profile["identifiers"]} == {
        ("user_id", "u-1"), ("email", "annlee@gmail.com"), ("phone", "+14155552671")}
    assert [e["name"] for e in profile["recent_events"]] == ["Order Completed", None]
    _, events = get(c, keys["read"], f"/api/profiles/{pid}/events?type=track")
    assert [e["properties"]["total"] for e in events["data"]] == [42.5]


def test_merged_profile_redirects_to_survivor(
    client: tuple[TestClient, dict], engine: Engine  # type: ignore[type-arg]
) -> None:
    c, keys = client
    _, bob = get(c, keys["read"], "/api/profiles?email=bob@shop.ca")
    _, carl = get(c, keys["read"], "/api/profiles?email=carl@shop.ca")
    c.post("/v1/identify", auth=(keys["write"], ""),
           json={"anonymousId": "a-3", "traits": {"email": "bob@shop.ca"}})
    process_all(engine)
    bob_id, carl_id = bob["data"][0]["id"], carl["data"][0]["id"]
    status, _ = get(c, keys["read"], f"/api/profiles/{carl_id}")
    assert status == 308
    status, survivor = get(c, keys["read"], f"/api/profiles/{bob_id}")
    assert [m["merged_profile_id"] for m in survivor["merges"]] == [carl_id]
    assert survivor["merges"][0]["reason"] == "shared_identifier"


def test_keys_and_scopes(client: tuple[TestClient, dict]) -> None:  # type: ignore[type-arg]
    c, keys = client
    assert c.get("/api/profiles").status_code == 401
    assert get(c, "gl_read_nope", "/api/profiles")[0] == 401
    assert get(c, keys["write"], "/api/profiles")[0] == 403  # a source's key only sends
    assert get(c, keys["admin"], "/api/profiles")[0] == 200
    assert get(c, keys["read"], "/api/profiles/999999")[0] == 404
