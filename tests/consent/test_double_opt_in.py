"""Email double opt-in over HTTP (both databases): pending until the click (C-8)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from guestlist.api.app import create_app
from guestlist.canonical import CanonicalEvent
from guestlist.consent.double_opt_in import start_double_opt_in
from guestlist.consent.ledger import (
    ConsentStatement,
    append,
    channel_status,
    current_consent,
    verify_ledger,
)
from guestlist.consent.links import LINKS_SECRET
from guestlist.consent.tokens import issue_token
from guestlist.keys import clear_key_cache, create_key
from guestlist.pipeline import process_events
from guestlist.settings import get_settings
from guestlist.store.secrets import installation_secret
from guestlist.store.tables import consent_records, consent_texts, identifiers

PUBLIC_URL = "https://shop.example"
ANN = "annlee@gmail.com"  # the key of Ann.Lee+news@Gmail.com
WORDING = "Yes, email me offers from Bottle Shop. Unsubscribe at any time."
T0 = datetime(2026, 5, 1, 12, tzinfo=UTC)


def identify(engine: Engine, user: str, **traits: Any) -> int:
    with engine.begin() as conn:
        process_events(
            conn,
            [
                CanonicalEvent(
                    type="identify",
                    message_id=f"id-{user}",
                    timestamp=T0,
                    received_at=datetime.now(UTC),
                    source_id=1,
                    user_id=user,
                    traits=traits,
                )
            ],
        )
        return int(
            conn.scalar(
                select(identifiers.c.profile_id).where(
                    identifiers.c.kind == "user_id", identifiers.c.key == user
                )
            )
        )


Api = tuple[TestClient, dict[str, str], int]


@pytest.fixture
def api(engine: Engine, db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Api]:
    monkeypatch.setenv("GUESTLIST_PUBLIC_URL", PUBLIC_URL)
    monkeypatch.setenv("GUESTLIST_SHOP_NAME", "Bottle Shop")
    get_settings.cache_clear()
    clear_key_cache()
    keys: dict[str, str] = {}
    with engine.begin() as conn:
        for kind in ("write", "read", "admin"):
            keys[kind] = create_key(conn, kind, "web" if kind == "write" else None)[1]
    ann = identify(engine, "ann", email="Ann.Lee+news@Gmail.com", phone="4155550100")
    with TestClient(create_app(db_url)) as client:
        yield client, keys, ann


def start(api: Api, key: str = "admin", **body: Any) -> Any:
    client, keys, _ = api
    payload = {"email": "ann.lee@gmail.com", "text": WORDING, **body}
    return client.post(
        "/api/consent/double-opt-in",
        headers={"Authorization": f"Bearer {keys[key]}"} if key else {},
        json=payload,
    )


def path_of(url: str) -> str:
    return urlsplit(url).path


def email_status(engine: Engine, profile_id: int) -> str:
    with engine.connect() as conn:
        return channel_status(current_consent(conn, profile_id), "email")


def records(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(consent_records).order_by(consent_records.c.id)))


def nonce_of(token: str) -> str:
    segment = token.split(".")[0]
    return str(json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))["n"])


def test_pending_until_the_click_which_is_its_own_proof(engine: Engine, api: Api) -> None:  # C-8
    client, _, ann = api
    response = start(
        api, url="https://shop.example/join", ip="203.0.113.9", user_agent="Signup Browser"
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "pending" and body["profile_id"] == ann
    assert body["identifier"] == ANN
    assert body["confirm_url"].startswith(f"{PUBLIC_URL}/c/")
    assert datetime.fromisoformat(body["expires_at"]) - datetime.now(UTC) > timedelta(days=6)
    assert email_status(engine, ann) == "pending"  # C-4: pending is not consent
    (pending,) = records(engine)
    assert (pending.status, pending.identifier, pending.url, pending.ip, pending.user_agent) == (
        "pending",
        ANN,
        "https://shop.example/join",
        "203.0.113.9",
        "Signup Browser",
    )
    token = path_of(body["confirm_url"]).removeprefix("/c/")
    assert pending.message_id == nonce_of(token)

    page = client.get(path_of(body["confirm_url"]))
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert '<form method="post"' in page.text and ANN in page.text
    assert "Bottle Shop" in page.text and "Yes, email me offers" in page.text
    assert page.headers["referrer-policy"] == "no-referrer"

    click = client.post(path_of(body["confirm_url"]), headers={"User-Agent": "Click Browser"})
    assert click.status_code == 200, click.text
    assert "confirmed" in click.text
    assert email_status(engine, ann) == "granted"
    pending, granted = records(engine)
    assert granted.status == "granted" and granted.kind == "express"
    assert granted.identifier == ANN
    assert (granted.ip, granted.user_agent) == ("testclient", "Click Browser")  # the click's
    assert granted.message_id == pending.message_id  # the token's nonce
    assert granted.recorded_by == "double-opt-in"
    assert granted.text_hash == pending.text_hash  # what was agreed to
    assert granted.proof == {"confirms_record": pending.id}
    with engine.connect() as conn:
        assert conn.scalar(select(consent_texts.c.text)) == WORDING
        assert verify_ledger(conn)[1] == []


def test_a_get_never_confirms(engine: Engine, api: Api) -> None:  # C-8: mail scanners
    client, _, ann = api
    url = start(api).json()["confirm_url"]
    for _ in range(3):
        assert client.get(path_of(url)).status_code == 200
    assert client.head(path_of(url)).status_code in (200, 405)
    assert [r.status for r in records(engine)] == ["pending"]
    assert email_status(engine, ann) == "pending"


def test_replaying_a_confirmation_stores_it_once(engine: Engine, api: Api) -> None:  # C-8
    client, _, ann = api
    path = path_of(start(api).json()["confirm_url"])
    first = client.post(path, headers={"Accept": "application/json"})
    second = client.post(path, headers={"Accept": "application/json"})
    assert first.status_code == second.status_code == 200
    assert first.json()["record_id"] == second.json()["record_id"]
    assert [r.status for r in records(engine)] == ["pending", "granted"]
    page = client.get(path)
    assert "Already confirmed" in page.text and "<form" not in page.text
    # Unsubscribed later: the old confirmation link does not subscribe again.
    with engine.begin() as conn:
        append(
            conn,
            ann,
            ConsentStatement(
                channel="email",
                purpose="marketing",
                status="withdrawn",
                kind="express",
                event_time=datetime.now(UTC),
                identifier=ANN,
            ),
        )
    assert client.post(path).status_code == 200
    assert email_status(engine, ann) == "withdrawn"


def _forge(token: str, **changes: Any) -> str:
    segment, signature = token.split(".")
    payload = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    payload.update(changes)
    raw = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode() + "." + signature


def test_forged_tokens_are_refused_and_store_nothing(engine: Engine, api: Api) -> None:  # C-8
    client, _, _ = api
    identify(engine, "bob", email="bob@shop.ca")
    token = path_of(start(api).json()["confirm_url"]).removeprefix("/c/")
    forged = [
        _forge(token, id="bob@shop.ca"),  # another address, signature kept
        token[:-2] + ("AA" if not token.endswith("AA") else "BB"),  # signature changed
        issue_token(
            b"x" * 32,
            purpose="confirm",
            profile_id=1,
            channel="email",
            identifier=ANN,
            nonce=nonce_of(token),
        ),  # another key
        "not-a-token",
    ]
    for bad in forged:
        for method in (client.get, client.post):
            response = method(f"/c/{bad}")
            assert response.status_code == 400, (bad, response.text)
            assert "not valid" in response.text
    json_answer = client.post(f"/c/{forged[0]}", headers={"Accept": "application/json"})
    assert json_answer.json()["error"]["code"] == "invalid_link"
    assert [r.status for r in records(engine)] == ["pending"]


def test_a_signed_token_for_another_address_is_refused(engine: Engine, api: Api) -> None:  # C-8
    client, _, ann = api
    bob = identify(engine, "bob", email="bob@shop.ca")
    token = path_of(start(api).json()["confirm_url"]).removeprefix("/c/")
    with engine.begin() as conn:
        key = installation_secret(conn, LINKS_SECRET)
    # Our signature, Ann's nonce, but Bob's address: no confirmation was sent for it.
    for other in (
        issue_token(
            key,
            purpose="confirm",
            profile_id=ann,
            channel="email",
            identifier="bob@shop.ca",
            nonce=nonce_of(token),
        ),
        issue_token(
            key,
            purpose="confirm",
            profile_id=bob,
            channel="email",
            identifier="bob@shop.ca",
            nonce=nonce_of(token),
        ),
        issue_token(
            key,
            purpose="confirm",
            profile_id=bob,
            channel="email",
            identifier=ANN,
            nonce=nonce_of(token),
        ),  # Ann's address, Bob's chain
        issue_token(
            key, purpose="confirm", profile_id=ann, channel="email", identifier=ANN
        ),  # never sent: no pending record has its nonce
        issue_token(
            key,
            purpose="unsubscribe",
            profile_id=ann,
            channel="email",
            identifier=ANN,
            nonce=nonce_of(token),
        ),  # the other purpose
    ):
        for method in (client.get, client.post):
            assert 400 <= method(f"/c/{other}").status_code < 500
    assert [r.status for r in records(engine)] == ["pending"]
    assert email_status(engine, bob) == "unknown"


def test_an_expired_confirmation_is_refused(engine: Engine, api: Api) -> None:  # C-8
    client, _, ann = api
    with engine.begin() as conn:
        started = start_double_opt_in(
            conn,
            profile_id=ann,
            text=WORDING,
            public_url=PUBLIC_URL,
            now=datetime.now(UTC) - timedelta(days=8),
        )
    assert started.confirm_url is not None
    for method in (client.get, client.post):
        response = method(path_of(started.confirm_url))
        assert response.status_code == 410
        assert "expired" in response.text
    assert [r.status for r in records(engine)] == ["pending"]
    assert email_status(engine, ann) == "pending"


def test_start_by_profile_id_and_an_address_it_does_not_hold(engine: Engine, api: Api) -> None:
    _, _, ann = api
    response = start(api, email=None, profile_id=ann)
    assert response.status_code == 201 and response.json()["identifier"] == ANN
    response = start(api, email="someone@else.ca", profile_id=ann)
    assert response.status_code == 400
    assert response.json()["detail"]["field"] == "email"
    assert len(records(engine)) == 1


def test_an_address_with_express_consent_gets_no_new_pending_record(
    engine: Engine, api: Api
) -> None:  # C-3: a pending record would outrank the grant
    client, _, ann = api
    client.post(path_of(start(api).json()["confirm_url"]))
    again = start(api)
    assert again.status_code == 200
    assert again.json()["status"] == "granted" and again.json()["confirm_url"] is None
    assert email_status(engine, ann) == "granted"
    assert len(records(engine)) == 2


@pytest.mark.parametrize(
    ("body", "status_code", "field"),
    [
        ({"email": None}, 422, None),  # neither profile nor address
        ({"text": ""}, 422, "text"),
        ({"email": "nobody@shop.ca"}, 404, "email"),
        ({"email": "not-an-address"}, 400, "email"),
        ({"email": None, "profile_id": 999_999}, 404, "profile_id"),
        ({"purpose": "transactional"}, 400, "purpose"),
        ({"colour": "red"}, 422, "colour"),
    ],
)
def test_bad_requests_are_4xx_and_store_nothing(
    engine: Engine, api: Api, body: dict[str, Any], status_code: int, field: str | None
) -> None:
    response = start(api, **body)
    assert response.status_code == status_code, response.text
    error = response.json()
    if field is not None:
        named = error["error"]["field"] or error["detail"].get("field")
        assert named == field
    assert records(engine) == []


def test_an_address_two_profiles_hold_needs_the_profile_id(engine: Engine, api: Api) -> None:
    identify(engine, "ann-2", email="ann.lee@gmail.com")  # another account, same address
    response = start(api)
    assert response.status_code == 409
    assert records(engine) == []


@pytest.mark.parametrize(("key", "expected"), [("", 401), ("write", 403), ("read", 403)])
def test_double_opt_in_needs_an_admin_key(
    engine: Engine, api: Api, key: str, expected: int
) -> None:
    assert start(api, key=key).status_code == expected
    assert records(engine) == []
