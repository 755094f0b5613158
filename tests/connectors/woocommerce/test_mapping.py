"""Records → canonical events, replaying the samples (pure: no database)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from guestlist.canonical import CanonicalEvent, ExternalId
from guestlist.connectors.woocommerce.mapping import RecordError, birth_date, parse_envelope
from guestlist.inbox.store import InboxEnvelope
from tests.connectors.woocommerce.helpers import customer, order

RECEIVED = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def envelope(kind: str, body: Any, source_id: int = 7) -> InboxEnvelope:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    return InboxEnvelope(id=1, source_id=source_id, kind=f"woocommerce.{kind}", headers={},
                         body=raw, received_at=RECEIVED)


def parse(kind: str, body: Any, source_id: int = 7) -> list[CanonicalEvent]:
    return parse_envelope(envelope(kind, body, source_id))


def test_the_customer_sample_is_one_identify() -> None:
    [event] = parse("customer.created", customer())
    assert event.type == "identify"
    assert event.message_id == "woocommerce:customer:25:2017-03-21T19:09:30"
    assert event.timestamp == datetime(2017, 3, 21, 19, 9, 30, tzinfo=UTC)  # the _gmt field
    assert event.received_at == RECEIVED
    assert event.external_ids == [ExternalId("woocommerce:customer", "7:25")]
    assert event.traits == {
        "email": "john.doe@example.com",
        "first_name": "John",
        "last_name": "Doe",
        "phone": "(555) 555-5555",
        "address": {"street": "969 Market", "city": "San Francisco", "state": "CA",
                    "postal_code": "94103", "country": "US"},
        "shipping_address": {"street": "969 Market", "city": "San Francisco", "state": "CA",
                             "postal_code": "94103", "country": "US"},
        "username": "john.doe",
        "woocommerce_role": "customer",
        "is_paying_customer": False,
        "created_at": "2017-03-21T19:09:28Z",
        "avatar": "https://secure.gravatar.com/avatar/8eb1b522f60d11fa897de1dc6351b7e8?s=96",
    }


def test_two_shops_never_share_a_customer_id() -> None:
    [a] = parse("customer.created", customer(), source_id=7)
    [b] = parse("customer.created", customer(), source_id=8)
    assert a.external_ids[0].key != b.external_ids[0].key


def test_pull_and_webhook_of_one_version_share_the_message_id() -> None:
    [hooked] = parse("customer.updated", customer())
    [pulled] = parse("pull.customers", {"stream": "customers", "records": [customer()]})
    assert hooked.message_id == pulled.message_id


def test_a_full_date_of_birth_in_meta_is_age_verified_dob_provided() -> None:
    meta = [{"id": 1, "key": "billing_birth_date", "value": "1990-04-05"}]
    identify, age = parse("customer.updated", customer(meta_data=meta))
    assert identify.type == "identify" and "birthday" not in identify.traits
    assert (age.type, age.name) == ("track", "Age Verified")
    assert age.properties == {
        "birthday": "1990-04-05",
        "level": "dob_provided",
        "method": "woocommerce_meta",
        "reference": "billing_birth_date",
        "recorded_by": "woocommerce",
    }
    assert age.external_ids == identify.external_ids
    assert age.message_id == "woocommerce:customer:25:age:1990-04-05"
    # The next version of the record (an address change) states the same date: one
    # statement, not one per edit.
    later = customer(meta_data=meta, date_modified_gmt="2018-01-01T00:00:00")
    assert parse("customer.updated", later)[1].message_id == age.message_id


@pytest.mark.parametrize(
    ("key", "value", "found"),
    [
        ("billing_birth_date", "1990-04-05", "1990-04-05"),
        ("_date_of_birth", "1990/04/05", "1990-04-05"),
        ("Birthday", "19900405", "1990-04-05"),
        ("dob", "1990-04-05 00:00:00", "1990-04-05"),
        ("_wc_age_verified", "1990-04-05", "1990-04-05"),
        ("age_verified", "yes", None),  # a flag says nothing about a date
        ("birthday", "04-05", None),  # month and day only: a birthday, not a birth date
        ("birthday", "05/04/1990", None),  # 5 April or 4 May?
        ("birthday", "1990-02-30", None),
        ("favourite_date", "1990-04-05", None),
    ],
)
def test_birth_date_keys_and_formats(key: str, value: str, found: str | None) -> None:
    result = birth_date([{"id": 1, "key": key, "value": value}])
    assert (result[0] if result else None) == found


def test_a_processing_guest_order_is_a_guest_identify_and_one_purchase() -> None:
    guest, purchase = parse("order.created", order())
    assert guest.type == "identify" and not guest.external_ids
    assert guest.traits["email"] == "john.doe@example.com"
    assert guest.traits["address"]["postal_code"] == "94103"
    assert purchase.name == "Order Completed"
    assert purchase.message_id == "woocommerce:order:727:completed"
    assert purchase.timestamp == datetime(2017, 3, 22, 19, 28, 8, tzinfo=UTC)  # date_paid_gmt
    assert purchase.context == {"traits": {"email": "john.doe@example.com",
                                           "phone": "(555) 555-5555"}}
    assert purchase.external_ids == []  # customer_id 0: nobody's account
    props = purchase.properties
    assert props["order_id"] == "727"
    assert (props["total"], props["subtotal"], props["tax"], props["shipping"],
            props["discount"]) == (29.35, 18.0, 1.35, 10.0, 0.0)
    assert props["currency"] == "USD" and props["source_name"] == "rest-api"
    assert "in_store" not in props
    assert props["products"] == [
        {"product_id": "93", "name": "Woo Single #1", "price": 3.0, "quantity": 2,
         "total": 6.0},
        {"product_id": "22", "variation_id": "23", "sku": "Bar3",
         "name": "Ship Your Idea \u2013 Color: Black, Size: M Test", "price": 12.0,
         "quantity": 1, "total": 12.0},
    ]


def test_processing_then_completed_is_one_purchase() -> None:
    first = parse("order.created", order(customer_id=25))
    later = parse("order.updated", order(customer_id=25, status="completed",
                                         date_modified_gmt="2017-03-23T10:00:00"))
    assert [e.message_id for e in first] == [e.message_id for e in later]
    assert first[0].external_ids == [ExternalId("woocommerce:customer", "7:25")]


@pytest.mark.parametrize("status", ["pending", "on-hold", "failed", "checkout-draft", "trash",
                                    "pos-open"])
def test_unpaid_statuses_are_not_purchases(status: str) -> None:
    assert parse("order.updated", order(customer_id=25, status=status)) == []


@pytest.mark.parametrize(("status", "name"), [("refunded", "Order Refunded"),
                                              ("cancelled", "Order Cancelled")])
def test_refunds_and_cancellations_have_their_own_events(status: str, name: str) -> None:
    [event] = parse("order.updated", order(customer_id=25, status=status))
    assert event.name == name
    assert event.message_id == f"woocommerce:order:727:{status}"


@pytest.mark.parametrize(
    ("created_via", "meta", "in_store"),
    [
        ("pos-rest-api", [], True),  # WooCommerce's own POS
        ("woocommerce-pos", [], True),  # the WCPOS plugin
        ("checkout", [{"id": 1, "key": "_pos", "value": "1"}], True),
        ("checkout", [], False),
        ("admin", [], False),
    ],
)
def test_point_of_sale_orders_are_in_store(
    created_via: str, meta: list[dict[str, Any]], in_store: bool
) -> None:
    [event] = parse("order.updated", order(customer_id=25, status="completed",
                                           created_via=created_via, meta_data=meta))
    assert event.properties.get("in_store", False) is in_store
    assert event.properties["source_name"] == created_via


def test_deletions_map_to_nothing() -> None:
    assert parse("customer.deleted", {"id": 25}) == []
    assert parse("order.deleted", {"id": 727}) == []
    assert parse("ping", b"webhook_id=12") == []


def test_a_pulled_page_missing_a_field_fails_naming_the_record() -> None:
    broken = customer()
    del broken["date_modified_gmt"]
    del broken["date_created_gmt"]
    with pytest.raises(RecordError) as caught:
        parse("pull.customers", {"stream": "customers", "records": [customer(), broken]})
    assert caught.value.field == "records[1].date_modified_gmt"


def test_empty_strings_never_become_trait_values() -> None:
    [event] = parse("customer.updated", customer(
        first_name="", last_name="", billing={**customer()["billing"], "phone": "",
                                              "first_name": "", "last_name": ""}))
    assert "phone" not in event.traits
    assert "first_name" not in event.traits


def test_plugin_newsletter_flags_are_not_consent() -> None:  # C-2, C-4
    meta = [{"id": 1, "key": "mailchimp_woocommerce_is_subscribed", "value": "1"},
            {"id": 2, "key": "_wc_newsletter_opt_in", "value": "yes"}]
    events = parse("customer.updated", customer(meta_data=meta))
    assert [e.type for e in events] == ["identify"]
    assert not any(e.name == "Consent Updated" for e in events)


def test_an_anonymous_sale_keeps_its_events_together() -> None:
    nobody = {**order()["billing"], "email": "", "phone": ""}
    [sale] = parse("order.created", order(billing=nobody, created_via="pos-rest-api"))
    [refund] = parse("order.updated", order(billing=nobody, status="refunded"))
    assert sale.anonymous_id == refund.anonymous_id == "woocommerce-order:7:727"
    assert sale.properties["in_store"] is True
    known = parse("order.created", order())[-1]
    assert known.anonymous_id is None
