"""The Graph client against the fake: auth, X-App-Usage read into the bucket, errors."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from guestlist.connectors._http.client import VendorError
from guestlist.connectors._http.ratelimit import TokenBucket
from guestlist.connectors.base import ConnectorError
from guestlist.connectors.facebook_lead_ads import client as api
from guestlist.connectors.facebook_lead_ads.settings import FacebookLeadAdsSettings
from tests.connectors.facebook_lead_ads.helpers import settings
from tests.connectors.helpers import FakeTime
from tests.fakes import serve
from tests.fakes.facebook import PAGE, GraphFake
from tests.fakes.facebook import sample as fake_sample


@pytest.fixture
def graph() -> Iterator[tuple[GraphFake, str]]:
    fake = GraphFake()
    fake.add_lead(fake_sample("lead__consent_and_dob.CONSTRUCTED.json"))
    with serve(fake.app) as url:
        yield fake, url


def fb_settings(url: str, **overrides: object) -> FacebookLeadAdsSettings:
    return FacebookLeadAdsSettings.model_validate(settings(base_url=url, **overrides))


def test_app_usage_near_the_ceiling_pauses_the_connection(graph: tuple[GraphFake, str]) -> None:
    fake, url = graph
    time = FakeTime()
    bucket = TokenBucket(api.BURST, api.RATE_PER_SECOND, read_budget=api.app_usage,
                         clock=time.clock, sleep=time.sleep)
    with api.make_client(fb_settings(url), limiter=bucket, sleep=time.sleep) as client:
        assert api.fetch_lead(client, "1204587763310921")["form_id"] == "887412096653201"
        assert time.waits == []
        fake.usage = 97  # Meta says 97 % of the app's hourly budget is used
        api.fetch_lead(client, "1204587763310921")
        api.fetch_lead(client, "1204587763310921")
        assert time.waits and sum(time.waits) >= api.USAGE_PAUSE
    assert fake.requests[0][1]["fields"] == api.LEAD_FIELDS
    assert api.app_usage(httpx.Response(200, headers={"x-app-usage": "nonsense"})) is None
    assert api.app_usage(httpx.Response(200)) is None


def test_check_and_a_wrong_token(graph: tuple[GraphFake, str]) -> None:
    _, url = graph
    with api.make_client(fb_settings(url)) as client:
        assert api.check(client, fb_settings(url)) == f"Page 'Cellar & Co' ({PAGE['id']})"
        with pytest.raises(ConnectorError, match="not page_id 42"):
            api.check(client, fb_settings(url, page_id="42"))
    with api.make_client(fb_settings(url, page_access_token="EAAG-wrong")) as wrong, \
            pytest.raises(VendorError) as failed:
        api.fetch_lead(wrong, "1204587763310921")
    assert failed.value.status == 400 and "EAAG-wrong" not in str(failed.value)
