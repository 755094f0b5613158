"""RFC 8058 one-click unsubscribe over HTTP (both databases): E-1, E-2, C-5."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from guestlist.api.app import create_app
from guestlist.canonical import CanonicalEvent
from guestlist.consent.ledger import channel_status, current_consent, verify_ledger
from guestlist.consent.links import LINKS_SECRET
from guestlist.consent.optout import is_suppressed
from guestlist.consent.tokens import issue_token
from guestlist.consent.unsubscribe import list_unsubscribe
from guestlist.keys import clear_key_cache, create_key
from guestlist.pipeline import process_events
from guestlist.settings import get_settings
from guestlist.store.secrets import installation_secret
from guestlist.store.tables import consent_records, identifiers, suppressions

PUBLIC_URL = "https://shop.example"
ANN = "ann@shop.ca"
T0 = datetime(2026, 5, 1, 12, tzinfo=UTC)
ONE_CLICK = {"List-Unsubscribe": "One-Click"}


def _event(message_id: str, user: str, **fields: Any) -> CanonicalEvent:
    return CanonicalEvent(
        message_id=message_id,
        timestamp=T0,
        received_at=datetime.now(UTC),
        source_id=1,
        user_id=user,
        **fields,
    )


def identify(engine: Engine, user: str, message_id: str = "", **traits: Any) -> int:
    with engine.begin() as conn:
        event = _event(message_id or f"id-{user}", user, type="identify", traits=traits)
        process_events(conn, [event])
        return int(
            conn.scalar(
                select(identifiers.c.profile_id).where(
                    identifiers.c.kind == "user_id", identifiers.c.key == user
                )
            )
        )


def subscribe(engine: Engine, user: str, address: str = ANN, message_id: str = "") -> None:
    for purpose in ("marketing", "sale_sharing"):
        props = {
            "channel": "email",
            "purpose": purpose,
            "status": "granted",
            "identifier": address,
            "text": "Email me offers",
        }
        event = _event(
            message_id or f"sub-{user}-{purpose}",
            user,
            type="track",
            name="Consent Updated",
            properties=props,
        )
        with engine.begin() as conn:
            process_events(conn, [event])


Api = tuple[TestClient, dict[str, str], int]


@pytest.fixture
def api(engine: Engine, db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Api]:
    monkeypatch.setenv("GUESTLIST_PUBLIC_URL", PUBLIC_URL)
    get_settings.cache_clear()
    clear_key_cache()
    keys: dict[str, str] = {}
    with engine.begin() as conn:
        for kind in ("write", "read", "admin"):
            keys[kind] = create_key(conn, kind, "web" if kind == "write" else None)[1]
    ann = identify(engine, "ann", email="Ann@Shop.ca")
    subscribe(engine, "ann")
    with TestClient(create_app(db_url)) as client:
        yield client, keys, ann


def headers_for(api: Api, profile_id: int, key: str = "read", **params: str) -> Any:
    client, keys, _ = api
    return client.get(
        f"/api/profiles/{profile_id}/list-unsubscribe",
        params={"channel": "email", **params},
        headers={"Authorization": f"Bearer {keys[key]}"} if key else {},
    )


def token_of(header: str) -> str:
    assert header.startswith(f"<{PUBLIC_URL}/u/") and header.endswith(">")
    return header[len(f"<{PUBLIC_URL}/u/") : -1]


def status(engine: Engine, profile_id: int, purpose: str = "marketing") -> str:
    with engine.connect() as conn:
        return channel_status(current_consent(conn, profile_id), "email", purpose)


def withdrawals(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                select(consent_records)
                .where(consent_records.c.status == "withdrawn")
                .order_by(consent_records.c.id)
            )
        )


def test_list_unsubscribe_headers(engine: Engine, api: Api) -> None:  # E-2
    _, _, ann = api
    response = headers_for(api, ann)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"List-Unsubscribe", "List-Unsubscribe-Post"}
    assert body["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    token = token_of(body["List-Unsubscribe"])
    segment = token.split(".")[0]
    payload = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    assert (payload["p"], payload["pid"], payload["ch"], payload["id"]) == (
        "unsubscribe",
        ann,
        "email",
        ANN,
    )


@pytest.mark.parametrize("encoding", ["urlencoded", "multipart"])
def test_one_click_post_unsubscribes_without_login_or_cookies(
    engine: Engine, api: Api, encoding: str
) -> None:  # E-2, E-1, C-5
    client, _, ann = api
    token = token_of(headers_for(api, ann).json()["List-Unsubscribe"])
    client.cookies.clear()
    if encoding == "urlencoded":
        response = client.post(f"/u/{token}", data=ONE_CLICK)
    else:
        response = client.post(f"/u/{token}", files={"List-Unsubscribe": (None, "One-Click")})
    assert response.status_code == 200, response.text
    assert "set-cookie" not in response.headers
    assert status(engine, ann) == "withdrawn"  # at once (E-1)
    assert status(engine, ann, "sale_sharing") == "withdrawn"
    rows = withdrawals(engine)
    assert [r.purpose for r in rows] == ["marketing", "sale_sharing"]
    for row in rows:
        assert (row.identifier, row.recorded_by, row.ip) == (
            ANN,
            "one-click-unsubscribe",
            "testclient",
        )
        assert row.proof == {"one_click": True}
        assert row.message_id  # the token's nonce
    with engine.connect() as conn:
        assert verify_ledger(conn)[1] == []


def test_a_get_shows_a_button_and_changes_nothing(engine: Engine, api: Api) -> None:  # E-2
    client, _, ann = api
    token = token_of(headers_for(api, ann).json()["List-Unsubscribe"])
    page = client.get(f"/u/{token}")
    assert page.status_code == 200
    assert f'<form method="post" action="/u/{token}">' in page.text
    assert 'name="List-Unsubscribe" value="One-Click"' in page.text
    assert status(engine, ann) == "granted" and withdrawals(engine) == []
    # The page's button posts the same form.
    assert client.post(f"/u/{token}", data=ONE_CLICK).status_code == 200
    assert status(engine, ann) == "withdrawn"


def test_a_post_without_the_one_click_body_still_unsubscribes(
    engine: Engine, api: Api
) -> None:  # C-5: the conservative side
    client, _, ann = api
    token = token_of(headers_for(api, ann).json()["List-Unsubscribe"])
    assert client.post(f"/u/{token}").status_code == 200
    assert status(engine, ann) == "withdrawn"
    assert withdrawals(engine)[0].proof == {"one_click": False}


def test_replayed_post_records_once_but_works_again_after_resubscribing(
    engine: Engine, api: Api
) -> None:  # E-2
    client, _, ann = api
    token = token_of(headers_for(api, ann).json()["List-Unsubscribe"])
    first = client.post(f"/u/{token}", data=ONE_CLICK, headers={"Accept": "application/json"})
    again = client.post(f"/u/{token}", data=ONE_CLICK, headers={"Accept": "application/json"})
    assert first.json()["already"] is False and again.json()["already"] is True
    assert len(withdrawals(engine)) == 2
    subscribe(engine, "ann", message_id="resubscribed")  # T0 is older than the withdrawal
    assert status(engine, ann) == "withdrawn"  # C-3: the late, older grant changes nothing
    with engine.begin() as conn:
        process_events(
            conn,
            [
                CanonicalEvent(
                    type="track",
                    name="Consent Updated",
                    message_id="really-resubscribed",
                    timestamp=datetime.now(UTC),  # after the first unsubscribe
                    received_at=datetime.now(UTC),
                    source_id=1,
                    user_id="ann",
                    properties={"channel": "email", "status": "granted", "identifier": ANN},
                )
            ],
        )
    assert status(engine, ann) == "granted"
    assert client.post(f"/u/{token}", data=ONE_CLICK).status_code == 200
    assert status(engine, ann) == "withdrawn"


def test_every_profile_holding_the_address_is_withdrawn(engine: Engine, api: Api) -> None:  # C-6
    client, _, ann = api
    other = identify(engine, "ann-work", email="ann@shop.ca")  # a second account, same address
    assert other != ann
    subscribe(engine, "ann-work")
    token = token_of(headers_for(api, ann).json()["List-Unsubscribe"])
    client.post(f"/u/{token}", data=ONE_CLICK)
    assert status(engine, ann) == status(engine, other) == "withdrawn"


@pytest.mark.parametrize("age_days", [61, 364])
def test_links_keep_working_for_at_least_60_days(
    engine: Engine, api: Api, age_days: int
) -> None:  # E-1
    client, _, ann = api
    with engine.begin() as conn:
        headers = list_unsubscribe(
            conn, ann, public_url=PUBLIC_URL, now=datetime.now(UTC) - timedelta(days=age_days)
        )
    response = client.post(f"/u/{token_of(headers['List-Unsubscribe'])}", data=ONE_CLICK)
    assert response.status_code == 200
    assert status(engine, ann) == "withdrawn"


def test_an_expired_link_is_refused(engine: Engine, api: Api) -> None:  # E-1
    client, _, ann = api
    with engine.begin() as conn:
        headers = list_unsubscribe(
            conn, ann, public_url=PUBLIC_URL, now=datetime.now(UTC) - timedelta(days=400)
        )
    token = token_of(headers["List-Unsubscribe"])
    for response in (client.get(f"/u/{token}"), client.post(f"/u/{token}", data=ONE_CLICK)):
        assert response.status_code == 410 and "expired" in response.text
    assert withdrawals(engine) == []


def test_forged_and_other_purpose_tokens_are_refused(engine: Engine, api: Api) -> None:  # E-2
    client, _, ann = api
    bob = identify(engine, "bob", email="bob@shop.ca")
    subscribe(engine, "bob", address="bob@shop.ca")
    token = token_of(headers_for(api, ann).json()["List-Unsubscribe"])
    segment, signature = token.split(".")
    payload = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    payload.update(pid=bob, id="bob@shop.ca")  # Ann's link turned against Bob
    raw = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
    forged = base64.urlsafe_b64encode(raw).rstrip(b"=").decode() + "." + signature
    with engine.begin() as conn:
        key = installation_secret(conn, LINKS_SECRET)
    for bad in (
        forged,
        issue_token(
            b"z" * 32,
            purpose="unsubscribe",
            profile_id=bob,
            channel="email",
            identifier="bob@shop.ca",
        ),  # not our key
        issue_token(
            key, purpose="confirm", profile_id=bob, channel="email", identifier="bob@shop.ca"
        ),  # a confirmation link
        "garbage",
    ):
        response = client.post(f"/u/{bad}", data=ONE_CLICK)
        assert response.status_code == 400, bad
        assert client.get(f"/u/{bad}").status_code == 400
    assert withdrawals(engine) == []
    assert status(engine, bob) == status(engine, ann) == "granted"


def test_an_address_nobody_holds_any_more_is_suppressed(engine: Engine, api: Api) -> None:  # P-3
    client, _, _ = api
    with engine.begin() as conn:
        key = installation_secret(conn, LINKS_SECRET)
    token = issue_token(
        key, purpose="unsubscribe", profile_id=999_999, channel="email", identifier="gone@shop.ca"
    )
    assert client.post(f"/u/{token}", data=ONE_CLICK).status_code == 200
    with engine.connect() as conn:
        row = conn.execute(select(suppressions)).one()
    assert (row.kind, row.channel, row.reason) == ("email", "email", "email_unsubscribe")
    with engine.begin() as conn:
        assert is_suppressed(conn, "email", "gone@shop.ca")


@pytest.mark.parametrize(("key", "expected"), [("", 401), ("write", 403), ("admin", 200)])
def test_list_unsubscribe_needs_a_read_key(api: Api, key: str, expected: int) -> None:
    _, _, ann = api
    assert headers_for(api, ann, key=key).status_code == expected


def test_list_unsubscribe_bad_requests(engine: Engine, api: Api) -> None:
    _, _, ann = api
    assert headers_for(api, 999_999).status_code == 404
    response = headers_for(api, ann, channel="sms")
    assert response.status_code == 400 and response.json()["detail"]["field"] == "channel"
    identify(engine, "ann", "id-ann-2", email="ann.lee@example.org")  # a second address
    response = headers_for(api, ann)
    assert response.status_code == 400 and response.json()["detail"]["field"] == "email"
    response = headers_for(api, ann, email="Ann.Lee@Example.org")
    assert response.status_code == 200
    assert response.json()["List-Unsubscribe"].startswith(f"<{PUBLIC_URL}/u/")
    response = headers_for(api, ann, email="bob@shop.ca")
    assert response.status_code == 400


def test_list_unsubscribe_needs_an_https_public_url(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:  # E-2: RFC 8058 one-click is https only
    _, _, ann = api
    monkeypatch.setenv("GUESTLIST_PUBLIC_URL", "http://127.0.0.1:8000")
    get_settings.cache_clear()
    response = headers_for(api, ann)
    assert response.status_code == 500
    assert "https" in response.json()["error"]["message"]
