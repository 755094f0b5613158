"""The Square client against the fake: auth, spec checks, limits, customers and groups."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

from guestlist.connectors._http.client import VendorError
from guestlist.connectors.square import client as api
from guestlist.connectors.square.client import make_client
from tests.connectors.square.conftest import FakeTime, Served, square_settings
from tests.fakes.square import EPOCH, make_order


def test_check_sends_bearer_and_square_version(square: Served, client: api.VendorClient) -> None:
    square.fake.seed(2)
    assert api.check(client) == "Square answered: customers readable (1 on a first page of 1)"
    (call,) = square.fake.calls("GET", "/v2/customers")
    assert call["query"] == [("limit", "1")]


def test_wrong_token_is_square_401(square: Served, fake_time: FakeTime) -> None:
    settings = square_settings(square.url, access_token="EAAA-revoked")
    with make_client(settings, sleep=fake_time.sleep) as bad, pytest.raises(VendorError) as err:
        api.check(bad)
    assert err.value.status == 401
    assert '"AUTHENTICATION_ERROR"' in err.value.detail and '"UNAUTHORIZED"' in err.value.detail
    assert "EAAA-revoked" not in str(err.value)


def test_the_fake_refuses_and_records_what_the_spec_does_not_allow(
    square: Served, client: api.VendorClient
) -> None:
    with pytest.raises(VendorError) as err:
        client.get("/v2/customers", params={"limit": 1, "page": 2})
    assert err.value.status == 400 and "undeclared query parameter 'page'" in err.value.detail
    with pytest.raises(VendorError):
        client.post("/v2/customers/search", json={"query": {"sort": {"field": "UPDATED_AT"}}})
    with pytest.raises(VendorError):
        client.post("/v2/customers", json={"given_name": "A", "version": 1})
    with pytest.raises(VendorError):
        client.request("PATCH", "/v2/customers/groups")
    problems = list(square.fake.violations)
    square.fake.violations.clear()  # seen: the fixture would fail the test otherwise
    assert len(problems) == 4
    assert "'UPDATED_AT' is not one of DEFAULT, CREATED_AT" in problems[1]
    assert "unknown property 'version'" in problems[2]
    assert "method not in the document" in problems[3]


def test_retry_after_is_honoured(square: Served, client: api.VendorClient,
                                 fake_time: FakeTime) -> None:
    square.fake.seed(3)
    square.fake.fail("POST", "/v2/customers/search", 429, times=2, retry_after="7")
    pages = list(api.customer_pages(client, None))
    assert sum(len(p.records) for p in pages) == 3
    assert fake_time.waits.count(7.0) >= 2  # the retry waits and the paused limiter
    assert len(square.fake.calls("POST", "/v2/customers/search")) == 3


def test_429_without_retry_after_backs_off(square: Served, client: api.VendorClient,
                                           fake_time: FakeTime) -> None:
    square.fake.seed(3)
    square.fake.fail("POST", "/v2/customers/search", 429, times=2)
    list(api.customer_pages(client, None))
    backoff = [w for w in fake_time.waits if w > 0]
    assert len(backoff) == 2 and all(0 < w <= 30 for w in backoff)


def test_a_slow_page_is_waited_for(square: Served, client: api.VendorClient) -> None:
    square.fake.seed(3)
    square.fake.fail("POST", "/v2/customers/search", 200, after=1, delay=0.3)
    pages = list(api.customer_pages(client, None, limit=1))
    assert [len(p.records) for p in pages] == [1, 1, 1]


def test_a_malformed_record_is_passed_on_not_a_crash(
    square: Served, client: api.VendorClient
) -> None:
    # Stored as it came; its parse fails in the pipeline, which keeps the rest.
    square.fake.seed(2)
    square.fake.customers["ODD"] = {"id": "ODD", "created_at": "2023-01-01T00:00:00Z",
                                    "updated_at": "yesterday"}
    (page,) = list(api.customer_pages(client, None))
    assert page.records[0]["id"] == "ODD" and len(page.records) == 3


def test_the_client_never_exceeds_the_limit(square: Served) -> None:
    # The real bucket and clock: 10 a second with bursts of 10 is at most 20 in any
    # second; the fake refuses a 22nd (one of slack for network jitter).
    square.fake.seed(25)
    square.fake.limit, square.fake.window = 21, 1.0
    started = time.monotonic()
    with make_client(square_settings(square.url)) as real:
        pages = list(api.customer_pages(real, None, limit=1))
    elapsed = time.monotonic() - started
    assert len(pages) == 25 and square.fake.rate_limited == 0
    assert elapsed >= (25 - api.BURST) / api.RATE_PER_SECOND - 0.2


# -- customers -------------------------------------------------------------------------


def test_upsert_creates_then_updates_with_version(square: Served,
                                                  client: api.VendorClient) -> None:
    made = api.upsert_customer(client, {"email_address": "ana@example.com", "given_name": "Ana"})
    assert made.created and made.customer["version"] == 0
    (create,) = square.fake.calls("POST", "/v2/customers")
    assert create["json"]["idempotency_key"]
    again = api.upsert_customer(client, {"email_address": "ana@example.com", "family_name": "Ruiz"})
    assert not again.created and again.customer["id"] == made.customer["id"]
    (update,) = square.fake.calls("PUT", f"/v2/customers/{made.customer['id']}")
    assert update["json"] == {"email_address": "ana@example.com", "family_name": "Ruiz",
                              "version": 0}
    assert square.fake.customers[made.customer["id"]]["family_name"] == "Ruiz"


def test_stale_version_is_reread_and_retried(square: Served, client: api.VendorClient) -> None:
    (customer,) = square.fake.seed(1)
    square.fake.concurrent_edits = 1  # someone edits at the till just before our update
    updated = api.update_customer(client, customer, {"nickname": "Max"})
    assert updated["nickname"] == "Max" and updated["note"] == "edited at the till meanwhile"
    puts = square.fake.calls("PUT", f"/v2/customers/{customer['id']}")
    assert [p["json"]["version"] for p in puts] == [0, 1]
    assert square.fake.calls("GET", f"/v2/customers/{customer['id']}")  # re-read


def test_conflicts_that_do_not_stop_give_up(square: Served, client: api.VendorClient) -> None:
    (customer,) = square.fake.seed(1)
    square.fake.concurrent_edits = 5
    with pytest.raises(VendorError) as err:
        api.update_customer(client, customer, {"nickname": "Max"}, attempts=3)
    assert err.value.status == 409 and api.is_version_conflict(err.value)
    assert len(square.fake.calls("PUT", f"/v2/customers/{customer['id']}")) == 3


def test_search_lag_does_not_duplicate_a_customer(square: Served,
                                                  client: api.VendorClient) -> None:
    # Search lags writes: a second upsert right after the first does not find the new
    # customer, creates again, and the same idempotency key returns the same one.
    square.fake.search_lag = True
    fields = {"email_address": "lee@example.com", "given_name": "Lee"}
    first = api.upsert_customer(client, fields)
    second = api.upsert_customer(client, fields)
    assert second.created and second.customer["id"] == first.customer["id"]
    assert len(square.fake.customers) == 1


def test_only_writable_fields(client: api.VendorClient) -> None:
    with pytest.raises(ValueError, match="segment_ids"):
        api.create_customer(client, {"email_address": "a@example.com", "segment_ids": []})
    with pytest.raises(ValueError, match="email_address"):
        api.upsert_customer(client, {"given_name": "A"})


# -- groups (our tags) -----------------------------------------------------------------


def test_groups_list_create_add_remove(square: Served, client: api.VendorClient) -> None:
    (customer,) = square.fake.seed(1)
    for i in range(55):  # more than one page of 50
        square.fake.groups[f"G{i:03d}"] = {
            "id": f"G{i:03d}", "name": f"Group {i}", "created_at": f"2024-01-01T00:00:{i:02d}Z",
        }
    assert len(api.list_groups(client)) == 55
    assert len(square.fake.calls("GET", "/v2/customers/groups")) == 2

    vip = api.ensure_group(client, "VIP 21+")
    assert api.ensure_group(client, "VIP 21+")["id"] == vip["id"]  # found, not made twice
    assert len(square.fake.calls("POST", "/v2/customers/groups")) == 1
    api.add_to_group(client, customer["id"], vip["id"])
    api.add_to_group(client, customer["id"], vip["id"])  # idempotent
    assert square.fake.customers[customer["id"]]["group_ids"] == [vip["id"]]
    api.remove_from_group(client, customer["id"], vip["id"])
    assert square.fake.customers[customer["id"]]["group_ids"] == []
    with pytest.raises(VendorError) as err:
        api.add_to_group(client, customer["id"], "NO-SUCH-GROUP")
    assert err.value.status == 404


def test_orders_search_ten_locations_at_a_time_and_resume(
    square: Served, client: api.VendorClient
) -> None:
    locations = square.fake.seed_locations(12)
    for i, location in enumerate(locations):
        square.fake.add_order(make_order(i, EPOCH + timedelta(hours=i), location, "C1"))
    pages = list(api.order_pages(client, None, limit=4))
    assert [len(p.records) for p in pages] == [4, 4, 2, 2]
    asked = [r["json"] for r in square.fake.calls("POST", "/v2/orders/search")]
    assert [len(a["location_ids"]) for a in asked] == [10, 10, 10, 2]
    assert len(square.fake.calls("GET", "/v2/locations")) == 1
    # Resuming at the second group neither asks for the locations again nor repeats.
    again = list(api.order_pages(client, pages[2].checkpoint, limit=4))
    assert [o["location_id"] for p in again for o in p.records] == locations[10:]
    assert len(square.fake.calls("GET", "/v2/locations")) == 1
    assert pages[-1].checkpoint is None and pages[-1].next_run is not None
