"""The leads stream (bulk read) against the fake: whole, resumed, incremental, and the
same lead by webhook and by pull applied once."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from sqlalchemy import Engine

from guestlist.connectors import connections
from guestlist.connectors._http.client import VendorClient, VendorError
from guestlist.connectors._http.ratelimit import Unlimited
from guestlist.connectors.backfill import backfill
from guestlist.connectors.facebook_lead_ads import client as api
from guestlist.connectors.facebook_lead_ads.settings import FacebookLeadAdsSettings
from guestlist.pipeline import process_all
from tests.connectors.facebook_lead_ads.helpers import (
    consent_of,
    count_events,
    live_profiles,
    profile_of,
    settings,
)
from tests.connectors.helpers import stream_row
from tests.fakes import serve
from tests.fakes.facebook import PAGE, GraphFake

FORMS, PER_FORM, LIMIT = 3, 7, 3  # 21 leads, three pages a form


@pytest.fixture
def graph() -> Iterator[tuple[GraphFake, str]]:
    fake = GraphFake()
    with serve(fake.app) as url:
        yield fake, url


@pytest.fixture(autouse=True)
def small_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(api, "PAGE_LIMIT", LIMIT)


def config(url: str) -> dict[str, Any]:
    return settings(base_url=url, page_id=PAGE["id"])


@pytest.fixture
def client(graph: tuple[GraphFake, str]) -> Iterator[VendorClient]:
    made = FacebookLeadAdsSettings.model_validate(config(graph[1]))
    with api.make_client(made, limiter=Unlimited(), sleep=lambda s: None) as c:
        yield c


def lead_calls(fake: GraphFake) -> list[dict[str, str]]:
    return [q for path, q in fake.requests if path.endswith("/leads")]


def test_full_backfill_then_an_incremental_run(
    engine: Engine, graph: tuple[GraphFake, str], client: VendorClient
) -> None:
    fake, url = graph
    fake.seed(FORMS, PER_FORM)
    info, _ = connections.add(engine, "facebook_lead_ads", "Cellar ads", config(url))
    (done,) = backfill(engine, info.id, client=client)
    assert (done.records, done.status) == (FORMS * PER_FORM, "done")
    process_all(engine)
    assert live_profiles(engine) == FORMS * PER_FORM
    assert count_events(engine, "Lead Submitted") == FORMS * PER_FORM
    # Each form's wording read once per run; every lead's two ticked boxes recorded (C-2).
    assert [p for p, _ in fake.requests].count(f"/v24.0/{fake.page_forms[0]}") == 1
    pid = profile_of(engine, "email", "lead4@example.com")
    assert pid is not None and {r.channel for r in consent_of(engine, pid)} == {"email"}
    newest = 1_778_000_000 + (FORMS * PER_FORM - 1) * 60
    assert orjson.loads(stream_row(engine, info.id).checkpoint) == {
        "since": newest - api.OVERLAP}
    assert "filtering" not in lead_calls(fake)[0]

    before = len(lead_calls(fake))
    (done,) = backfill(engine, info.id, client=client)
    asked = lead_calls(fake)[before:]
    assert {q["filtering"] for q in asked} == {orjson.dumps([{
        "field": "time_created", "operator": "GREATER_THAN",
        "value": newest - api.OVERLAP}]).decode()}
    assert done.records == 10  # the overlap again: applied once (the same message ids)
    process_all(engine)
    assert count_events(engine, "Lead Submitted") == FORMS * PER_FORM


def test_killed_midway_then_resumed_has_no_gap_and_no_duplicate(
    engine: Engine, graph: tuple[GraphFake, str], client: VendorClient
) -> None:
    fake, url = graph
    fake.seed(FORMS, PER_FORM)
    info, _ = connections.add(engine, "facebook_lead_ads", "Cellar ads", config(url))
    second = fake.page_forms[1]
    fake.fail[f"{second}/leads"] = [500] * 20  # the second form fails beyond retries
    with pytest.raises(VendorError):
        backfill(engine, info.id, client=client)
    row = stream_row(engine, info.id)
    assert (row.status, row.records) == ("failed", PER_FORM)
    saved = orjson.loads(row.checkpoint)
    assert saved["index"] == 1 and saved["forms"] == fake.page_forms
    fake.fail.clear()
    (done,) = backfill(engine, info.id, client=client)
    assert done.status == "done"
    process_all(engine)
    assert live_profiles(engine) == FORMS * PER_FORM
    assert count_events(engine, "Lead Submitted") == FORMS * PER_FORM


def test_a_pull_without_page_id_is_refused(graph: tuple[GraphFake, str],
                                           client: VendorClient) -> None:
    from guestlist.connectors.base import ConnectorError

    made = FacebookLeadAdsSettings.model_validate(settings(base_url=graph[1]))
    with pytest.raises(ConnectorError, match="page_id"):
        next(api.lead_pages(client, made, None))
