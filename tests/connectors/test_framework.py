"""The connector framework with a small connector of our own (registered for these
tests only under an unused slug): connections over the API and the CLI, encrypted
credentials, webhook refusals and de-duplication, and backfills that resume exactly
after a failure. Platform connectors have their own tests beside this one."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, ClassVar

import orjson
import pytest
from pydantic import SecretStr
from sqlalchemy import Engine, func, select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from typer.testing import CliRunner

from guestlist.canonical import CanonicalEvent, ExternalId
from guestlist.cli import app as cli
from guestlist.connectors import registry
from guestlist.connectors._http.client import VendorClient, VendorError
from guestlist.connectors._http.paginate import numbered_pages
from guestlist.connectors._signing import hmac_base64, signatures_match
from guestlist.connectors.backfill import BackfillConflict, backfill
from guestlist.connectors.base import (
    Capability,
    Connector,
    ConnectorSettings,
    Delivery,
    Page,
    WebhookRequest,
    bad_signature,
    missing_header,
    no_secret,
    pulled_page,
)
from guestlist.connectors.connections import add
from guestlist.inbox import parsers
from guestlist.inbox.store import InboxEnvelope
from guestlist.pipeline import process_all
from guestlist.store.tables import connection_streams, connections, events, inbox, profiles
from tests.connectors.conftest import App
from tests.fakes import serve

SLUG = "zapier"  # a platform without a connector yet: free for a test connector


class ToySettings(ConnectorSettings):
    api_key: SecretStr
    page_size: int = 10


class Toy(Connector):
    slug: ClassVar[str] = SLUG
    title = "Toy"
    capabilities = frozenset({Capability.WEBHOOK, Capability.PULL})
    settings_model = ToySettings
    streams = ("people",)
    generates_webhook_secret = True

    def verify_webhook(self, settings: Any, request: WebhookRequest) -> Delivery:
        if settings.webhook_secret is None:
            raise no_secret()
        given = request.header("x-toy-signature")
        if given is None:
            raise missing_header("X-Toy-Signature")
        expected = hmac_base64(settings.webhook_secret.get_secret_value(), request.body)
        if not signatures_match(expected, given):
            raise bad_signature("X-Toy-Signature")
        return Delivery(topic="person", delivery_id=request.header("x-toy-delivery"))

    def parse(self, envelope: InboxEnvelope) -> list[CanonicalEvent]:
        if envelope.kind.startswith(f"{SLUG}.pull."):
            _stream, records = pulled_page(envelope)
        else:
            records = [orjson.loads(envelope.body)]
        return [
            CanonicalEvent(
                type="identify",
                message_id=f"{SLUG}:person:{r['id']}:{r['updated']}",
                timestamp=datetime.fromisoformat(r["updated"]),
                received_at=envelope.received_at,
                source_id=envelope.source_id,
                traits={"email": r["email"]},
                external_ids=[ExternalId(f"{SLUG}:person", str(r["id"]))],
                inbox_id=envelope.id,
            )
            for r in records
        ]

    def client(self, settings: Any, *, connection_id: int | None = None) -> VendorClient:
        assert settings.base_url
        key = settings.api_key.get_secret_value()
        return VendorClient(
            settings.base_url, headers={"X-Key": key}, attempts=2, sleep=lambda _s: None
        )

    def pull(
        self, client: VendorClient, settings: Any, stream: str, checkpoint: str | None
    ) -> Iterator[Page]:
        since = json.loads(checkpoint)["since"] if checkpoint and "since" in checkpoint else ""
        start = json.loads(checkpoint)["page"] if checkpoint and "page" in checkpoint else None
        newest = since
        for response, resume in numbered_pages(
            client,
            "/people",
            params={"per_page": settings.page_size, "since": since},
            start=start,
        ):
            records = response.json()
            newest = max([newest, *(r["updated"] for r in records)])
            done = resume is None
            yield Page(
                records=records,
                checkpoint=None if done else json.dumps({"page": resume, "since": since}),
                total=int(response.headers["X-WP-Total"]),
                next_run=json.dumps({"since": newest}) if done else None,
            )

    def check(self, client: VendorClient, settings: Any) -> str:
        total = client.get("/people", params={"per_page": 1}).headers["X-WP-Total"]
        return f"{total} people"


class ToyApi:
    def __init__(self) -> None:
        self.people = [self.person(i, "2026-01-01T00:00:00+00:00") for i in range(1, 26)]
        self.fail_page: int | None = None
        self.calls: list[dict[str, str]] = []

    @staticmethod
    def person(i: int, updated: str) -> dict[str, Any]:
        return {"id": i, "email": f"person{i}@toy.example", "updated": updated}

    async def endpoint(self, request: Request) -> Response:
        if request.headers.get("x-key") != "toy-key":
            return JSONResponse({"error": "bad key"}, status_code=401)
        q = dict(request.query_params)
        self.calls.append(q)
        page, size = int(q.get("page", 1)), int(q["per_page"])
        if self.fail_page == page:
            return JSONResponse({"error": "down"}, status_code=503)
        since = q.get("since", "")
        rows = [p for p in self.people if p["updated"] > since]
        pages = max(1, -(-len(rows) // size))
        return JSONResponse(
            rows[(page - 1) * size : page * size],
            headers={"X-WP-Total": str(len(rows)), "X-WP-TotalPages": str(pages)},
        )


@pytest.fixture(autouse=True)
def toy_connector(monkeypatch: pytest.MonkeyPatch) -> None:
    toy = Toy()
    monkeypatch.setitem(registry._connectors, SLUG, toy)
    monkeypatch.setitem(parsers._parsers, f"{SLUG}.", toy.parse)


@pytest.fixture(scope="module")
def toy_api() -> Iterator[tuple[str, ToyApi]]:
    api = ToyApi()
    starlette = Starlette(routes=[Route("/people", api.endpoint)])
    with serve(starlette) as url:
        yield url, api


@pytest.fixture
def api(toy_api: tuple[str, ToyApi]) -> ToyApi:
    toy_api[1].__init__()  # type: ignore[misc]
    return toy_api[1]


def _add(app: App, **settings: Any) -> dict[str, Any]:
    response = app.client.post(
        "/api/connections",
        json={"platform": SLUG, "name": "toy", "settings": {"api_key": "toy-key", **settings}},
        headers=app.admin,
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def test_add_returns_the_webhook_url_and_generated_secret_once(app: App) -> None:
    body = _add(app)
    assert body["webhook_url"] == f"https://guestlist.example/hooks/{SLUG}/{body['id']}"
    assert len(body["webhook_secret"]) >= 40
    shown = app.client.get(f"/api/connections/{body['id']}", headers=app.read).json()
    listed = app.client.get("/api/connections", headers=app.read).json()["data"]
    for view in (shown, *listed):
        assert view["secrets_set"] == ["api_key", "webhook_secret"]
        assert "toy-key" not in json.dumps(view)
        assert body["webhook_secret"] not in json.dumps(view)
    # At rest: one encrypted blob, no plaintext credential in the row.
    with app.engine.connect() as conn:
        row = conn.execute(select(connections)).one()
    assert b"toy-key" not in bytes(row.secrets)
    assert "toy-key" not in json.dumps(row.settings)


@pytest.mark.parametrize(
    ("payload", "status", "field"),
    [
        ({"platform": "myspace", "name": "x", "settings": {}}, 422, "platform"),
        ({"platform": SLUG, "name": "x", "settings": {}}, 422, "settings.api_key"),
        (
            {"platform": SLUG, "name": "x", "settings": {"api_key": "k", "colour": "red"}},
            422,
            "settings.colour",
        ),
        (
            {"platform": SLUG, "name": "x", "settings": {"api_key": "k", "base_url": "ftp://x"}},
            422,
            "settings.base_url",
        ),
        ({"platform": SLUG, "name": "", "settings": {"api_key": "k"}}, 422, "name"),
    ],
)
def test_bad_settings_are_refused_naming_the_field(
    app: App, payload: dict[str, Any], status: int, field: str
) -> None:
    response = app.client.post("/api/connections", json=payload, headers=app.admin)
    assert response.status_code == status, response.text
    assert response.json()["error"]["field"] == field
    assert app.client.get("/api/connections", headers=app.read).json()["data"] == []


def test_a_taken_name_is_a_conflict_and_keys_are_checked(app: App) -> None:
    _add(app)
    again = app.client.post(
        "/api/connections",
        json={"platform": SLUG, "name": "toy", "settings": {"api_key": "k"}},
        headers=app.admin,
    )
    assert again.status_code == 409
    as_reader = app.client.post(
        "/api/connections", json={"platform": SLUG, "name": "t2", "settings": {}}, headers=app.read
    )
    assert as_reader.status_code == 403


def _deliver(app: App, conn_id: int, body: bytes, secret: str, delivery: str) -> Any:
    return app.client.post(
        f"/hooks/{SLUG}/{conn_id}",
        content=body,
        headers={"X-Toy-Signature": hmac_base64(secret, body), "X-Toy-Delivery": delivery},
    )


def test_webhooks_verified_stored_once_and_refusals_logged(app: App) -> None:
    body = _add(app)
    conn_id, secret = body["id"], body["webhook_secret"]
    person = orjson.dumps(ToyApi.person(7, "2026-02-01T00:00:00+00:00"))

    assert _deliver(app, conn_id, person, secret, "d-1").json() == {
        "status": "accepted",
        "delivery_id": "d-1",
    }
    assert _deliver(app, conn_id, person, secret, "d-1").json()["status"] == "duplicate"
    bad = _deliver(app, conn_id, person, "wrong", "d-2")
    assert bad.status_code == 401
    assert bad.json()["error"] == {
        "code": "invalid_signature",
        "message": "the X-Toy-Signature header does not match the body",
        "field": "X-Toy-Signature",
    }
    missing = app.client.post(f"/hooks/{SLUG}/{conn_id}", content=person)
    assert missing.status_code == 400 and missing.json()["error"]["field"] == "X-Toy-Signature"
    assert app.client.post(f"/hooks/{SLUG}/999", content=person).status_code == 404
    assert app.client.post(f"/hooks/shopify/{conn_id}", content=person).status_code == 404
    assert app.client.post("/hooks/myspace/1", content=person).json()["error"]["field"] == (
        "platform"
    )

    with app.engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(inbox)) == 1
    log = app.client.get(f"/api/connections/{conn_id}/log", headers=app.read).json()["data"]
    assert [(e["outcome"], e["delivery_id"]) for e in log] == [
        ("rejected", None),
        ("rejected", None),
        ("duplicate", "d-1"),
        ("accepted", "d-1"),
    ]
    process_all(app.engine)
    with app.engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(profiles)) == 1


def _profiles(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(profiles)) or 0)


def _stream(engine: Engine) -> Any:
    with engine.connect() as conn:
        return conn.execute(select(connection_streams)).one()


def test_a_backfill_failing_mid_way_resumes_without_gap_or_duplicate(
    engine: Engine, toy_api: tuple[str, ToyApi], api: ToyApi
) -> None:
    info, _ = add(engine, SLUG, "toy", {"api_key": "toy-key", "base_url": toy_api[0]})
    api.fail_page = 2
    with pytest.raises(VendorError):
        backfill(engine, info.id)
    state = _stream(engine)
    assert (state.status, state.pages, state.records) == ("failed", 1, 10)
    assert "503" in state.error

    api.fail_page = None
    seen: list[tuple[str, int, int | None]] = []
    result = backfill(engine, "toy", progress=lambda s: seen.append((s.status, s.records, s.total)))
    assert [(s.stream, s.status, s.records) for s in result] == [("people", "done", 25)]
    assert seen[-1] == ("done", 25, 25)
    # Page 2 failed twice (two attempts); the resumed run asked for page 2 first:
    # page 1 was not fetched again.
    assert [c.get("page") for c in api.calls] == ["1", "2", "2", "2", "3"]
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(inbox)) == 3
    process_all(engine)
    assert _profiles(engine) == 25
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(events)) == 25


def test_the_next_run_is_incremental_and_restart_starts_over(
    engine: Engine, toy_api: tuple[str, ToyApi], api: ToyApi
) -> None:
    info, _ = add(engine, SLUG, "toy", {"api_key": "toy-key", "base_url": toy_api[0]})
    backfill(engine, info.id)
    api.people[3] = ToyApi.person(4, "2026-03-01T00:00:00+00:00")
    api.calls.clear()
    (again,) = backfill(engine, info.id)
    assert (again.run, again.records) == (2, 1)
    assert api.calls[0]["since"] == "2026-01-01T00:00:00+00:00"
    (over,) = backfill(engine, info.id, restart=True)
    assert (over.run, over.records) == (3, 25)
    process_all(engine)
    assert _profiles(engine) == 25


def test_two_backfills_cannot_interleave(
    engine: Engine, toy_api: tuple[str, ToyApi], api: ToyApi
) -> None:
    info, _ = add(engine, SLUG, "toy", {"api_key": "toy-key", "base_url": toy_api[0]})
    stop = threading.Event()

    def other_runner_moves_on(state: Any) -> None:
        if state.pages == 1:  # another process stored a page meanwhile
            with engine.begin() as conn:
                conn.execute(
                    connection_streams.update().values(pages=connection_streams.c.pages + 1)
                )

    with pytest.raises(BackfillConflict):
        backfill(engine, info.id, progress=other_runner_moves_on, stop=stop)


def test_stop_between_pages_keeps_what_was_stored(
    engine: Engine, toy_api: tuple[str, ToyApi], api: ToyApi
) -> None:
    info, _ = add(engine, SLUG, "toy", {"api_key": "toy-key", "base_url": toy_api[0]})
    stop = threading.Event()
    stop.set()
    (state,) = backfill(engine, info.id, stop=stop)
    assert (state.status, state.pages) == ("running", 1)
    (state,) = backfill(engine, info.id)  # the same run, resumed: its counts go on
    assert (state.status, state.run, state.pages, state.records) == ("done", 1, 3, 25)
    process_all(engine)
    assert _profiles(engine) == 25


def test_cli_add_test_backfill_show_log_remove(
    engine: Engine, toy_api: tuple[str, ToyApi], api: ToyApi
) -> None:
    runner = CliRunner()
    added = runner.invoke(
        cli,
        [
            "connections",
            "add",
            SLUG,
            "--name",
            "toy",
            "--set",
            "api_key=toy-key",
            "--set",
            f"base_url={toy_api[0]}",
            "--json",
        ],
    )
    assert added.exit_code == 0, added.output
    data = json.loads(added.stdout)
    assert {"id", "webhook_url", "webhook_secret"} <= set(data)

    bad = runner.invoke(
        cli,
        ["connections", "add", SLUG, "--name", "t2", "--set", "api_key=k", "--set", "page_size=x"],
    )
    assert bad.exit_code == 2 and "page_size" in bad.output
    malformed = runner.invoke(cli, ["connections", "add", SLUG, "--name", "t3", "--set", "nokey"])
    assert malformed.exit_code == 2 and "key=value" in malformed.output

    tested = runner.invoke(cli, ["connections", "test", "toy"])
    assert tested.exit_code == 0 and "25 people" in tested.output
    # In a thread: a spawned process would not see this test's connector.
    filled = runner.invoke(cli, ["connections", "backfill", "toy", "--fetch-thread"])
    assert filled.exit_code == 0, filled.output
    assert _profiles(engine) == 25  # the CLI builds profiles as it fetches
    shown = runner.invoke(cli, ["connections", "show", "toy", "--json"])
    assert json.loads(shown.stdout)["streams"][0]["records"] == 25
    log = runner.invoke(cli, ["connections", "log", "toy", "--json"])
    assert [e["outcome"] for e in json.loads(log.stdout)] == ["done", "ok"]
    removed = runner.invoke(cli, ["connections", "remove", "toy", "--yes"])
    assert removed.exit_code == 0
    assert runner.invoke(cli, ["connections", "show", "toy"]).exit_code == 2
    assert _profiles(engine) == 25  # what it brought stays


def test_the_api_queues_a_backfill_and_shows_progress(
    app: App, toy_api: tuple[str, ToyApi], api: ToyApi
) -> None:
    body = _add(app, base_url=toy_api[0])
    started = app.client.post(f"/api/connections/{body['id']}/backfill", headers=app.admin)
    assert started.status_code == 202 and started.json()["streams"] == ["people"]
    again = app.client.post(f"/api/connections/{body['id']}/backfill", headers=app.admin)
    assert again.status_code == 409
    unknown = app.client.post(
        f"/api/connections/{body['id']}/backfill", json={"streams": ["pets"]}, headers=app.admin
    )
    assert unknown.status_code == 422 and unknown.json()["error"]["field"] == "streams[0]"
    from guestlist.jobs.worker import Worker

    Worker(app.engine, process_inbox=lambda e, n: 0).run_once()
    shown = app.client.get(f"/api/connections/{body['id']}", headers=app.read).json()
    assert shown["streams"][0]["status"] == "done"
    assert shown["streams"][0]["records"] == 25
    assert datetime.fromisoformat(shown["streams"][0]["finished_at"]) <= datetime.now(UTC)


def test_retries_are_logged_on_the_connection(
    app: App, toy_api: tuple[str, ToyApi], api: ToyApi
) -> None:
    body = _add(app, base_url=toy_api[0])
    api.fail_page = 3
    with pytest.raises(VendorError):
        backfill(app.engine, body["id"])
    log = app.client.get(f"/api/connections/{body['id']}/log", headers=app.read).json()["data"]
    assert [e["outcome"] for e in log] == ["failed", "retried"]
    assert log[1]["status"] == 503
    assert log[1]["detail"].startswith(f"GET {toy_api[0]}/people: HTTP 503; retrying in")
    shown = app.client.get(f"/api/connections/{body['id']}", headers=app.read).json()
    assert shown["streams"][0]["status"] == "failed"
    assert shown["inbox"] == {"pending": 2, "failed": 0}


def test_a_delivery_that_cannot_be_read_is_kept_shown_and_can_be_retried(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = _add(app)
    conn_id, secret = body["id"], body["webhook_secret"]
    good = orjson.dumps(ToyApi.person(1, "2026-02-01T00:00:00+00:00"))
    unreadable = orjson.dumps({"id": 2, "updated": "2026-02-01T00:00:00+00:00"})  # no email
    assert _deliver(app, conn_id, good, secret, "d-1").status_code == 200
    assert _deliver(app, conn_id, unreadable, secret, "d-2").status_code == 200
    process_all(app.engine)
    assert _profiles(app.engine) == 1  # the good one went through
    shown = app.client.get(f"/api/connections/{conn_id}", headers=app.read).json()
    assert shown["inbox"] == {"pending": 0, "failed": 1}
    (failed,) = app.client.get(f"/api/connections/{conn_id}/failures", headers=app.read).json()[
        "data"
    ]
    assert (failed["delivery_id"], failed["kind"]) == ("d-2", f"{SLUG}.person")
    assert "KeyError" in failed["error"] and "email" in failed["error"]

    # A fixed parser reads it: retry puts it back in line for the worker.
    original = registry._connectors[SLUG].parse

    def lenient(envelope: InboxEnvelope) -> list[CanonicalEvent]:
        record = orjson.loads(envelope.body)
        if "email" not in record:
            record["email"] = "two@toy.example"
            envelope = InboxEnvelope(
                envelope.id,
                envelope.source_id,
                envelope.kind,
                envelope.headers,
                orjson.dumps(record),
                envelope.received_at,
            )
        return original(envelope)

    monkeypatch.setitem(parsers._parsers, f"{SLUG}.", lenient)
    retried = app.client.post(f"/api/connections/{conn_id}/retry", headers=app.admin)
    assert retried.json() == {"requeued": 1}
    process_all(app.engine)
    assert _profiles(app.engine) == 2
    assert app.client.get(f"/api/connections/{conn_id}", headers=app.read).json()["inbox"] == {
        "pending": 0,
        "failed": 0,
    }


def test_a_connector_may_answer_in_its_own_format_and_shake_hands(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    from guestlist.connectors.base import Reply

    body = _add(app)
    conn_id, secret = body["id"], body["webhook_secret"]
    toy = registry._connectors[SLUG]
    assert app.client.get(f"/hooks/{SLUG}/{conn_id}").status_code == 405

    def reply(conn: Any, settings: Any, request: Any, delivery: Any, source_id: int) -> Reply:
        return Reply(b"<Response/>", "application/xml")

    def handshake(settings: Any, request: WebhookRequest) -> Reply:
        return Reply(request.url.rsplit("=", 1)[-1].encode())

    monkeypatch.setattr(toy, "reply", reply)
    monkeypatch.setattr(toy, "handshake", handshake)
    person = orjson.dumps(ToyApi.person(1, "2026-02-01T00:00:00+00:00"))
    answered = _deliver(app, conn_id, person, secret, "d-1")
    assert answered.status_code == 200
    assert answered.headers["content-type"].startswith("application/xml")
    assert answered.text == "<Response/>"
    shake = app.client.get(f"/hooks/{SLUG}/{conn_id}?hub.challenge=1158201444")
    assert (shake.status_code, shake.text) == (200, "1158201444")
    assert app.client.get(f"/hooks/{SLUG}/99?x=1").status_code == 404


def test_a_sender_that_cannot_sign_puts_the_secret_in_the_path(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    toy = registry._connectors[SLUG]

    def verify(settings: Any, request: WebhookRequest) -> Delivery:
        if not signatures_match(settings.webhook_secret.get_secret_value(), request.path_token):
            raise bad_signature("path")
        return Delivery(topic="person", delivery_id=None)

    monkeypatch.setattr(toy, "secret_in_path", True)
    monkeypatch.setattr(toy, "verify_webhook", verify)
    body = _add(app)
    secret = body["webhook_secret"]
    assert body["webhook_url"] == f"https://guestlist.example/hooks/{SLUG}/{body['id']}/{secret}"
    shown = app.client.get(f"/api/connections/{body['id']}", headers=app.read).json()
    assert secret not in shown["webhook_url"]  # shown once, on creation
    person = orjson.dumps(ToyApi.person(1, "2026-02-01T00:00:00+00:00"))
    path = body["webhook_url"].removeprefix("https://guestlist.example")
    assert app.client.post(path, content=person).status_code == 200
    assert app.client.post(path[:-3] + "xyz", content=person).status_code == 401
    assert app.client.post(f"/hooks/{SLUG}/{body['id']}", content=person).status_code == 401
