"""The mapping of the real samples, without a database."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from guestlist.canonical import CanonicalEvent, ExternalId
from guestlist.connectors.shopify.mapping import parse_envelope
from guestlist.inbox.parsers import EnvelopeError
from guestlist.inbox.store import InboxEnvelope
from tests.fakes.shopify import FakeShopify, sample

RECEIVED = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def envelope(kind: str, body: Any) -> InboxEnvelope:
    return InboxEnvelope(
        id=7, source_id=3, kind=kind, headers={}, body=orjson.dumps(body), received_at=RECEIVED
    )


def customer() -> dict[str, Any]:
    return sample("rest_2023-01_get_customers.json")["customers"][0]  # type: ignore[no-any-return]


def order() -> dict[str, Any]:
    return sample("rest_2023-01_get_order.json")["order"]  # type: ignore[no-any-return]


def by_name(evs: list[CanonicalEvent]) -> dict[str, list[CanonicalEvent]]:
    out: dict[str, list[CanonicalEvent]] = {}
    for e in evs:
        out.setdefault(e.name or e.type, []).append(e)
    return out


def test_customer_sample_is_one_identify() -> None:
    (event,) = parse_envelope(envelope("shopify.customers/create", customer()))
    assert event.type == "identify"
    assert event.message_id == "shopify:customer:207119551:2024-01-02T14:15:20Z"
    assert event.timestamp == datetime(2024, 1, 2, 14, 15, 20, tzinfo=UTC)
    assert event.received_at == RECEIVED and event.source_id == 3 and event.inbox_id == 7
    assert event.external_ids == [ExternalId("shopify:customer", "207119551")]
    assert event.traits == {
        "email": "bob.norman@mail.example.com",
        "phone": "+16136120707",
        "first_name": "Bob",
        "last_name": "Norman",
        "address": {"street": "Chestnut Street 92", "city": "Louisville", "state": "KY",
                    "postal_code": "40202", "country": "US"},
        "created_at": "2024-01-02T09:15:20-05:00",
        "tags": ["Léon", "Noël"],
        "orders_count": 1,
        "total_spent": 199.65,
        "currency": "USD",
        "verified_email": True,
        "state": "disabled",
    }


def test_not_subscribed_records_no_consent() -> None:  # C-4
    # Both samples are not_subscribed: silence, not a statement.
    evs = parse_envelope(envelope("shopify.customers/create", customer()))
    assert [e.name for e in evs] == [None]
    created = sample("rest_2023-01_post_customers_response.json")["customer"]
    assert len(parse_envelope(envelope("shopify.customers/create", created))) == 1


@pytest.mark.parametrize(
    ("state", "status"),
    [("subscribed", "granted"), ("unsubscribed", "withdrawn"), ("pending", "pending"),  # C-8
     ("not_subscribed", None), ("invalid", None), ("redacted", None)],
)
def test_consent_states(state: str, status: str | None) -> None:
    c = customer()
    c["email_marketing_consent"] = {
        "state": state, "opt_in_level": "confirmed_opt_in",
        "consent_updated_at": "2024-03-01T10:00:00-05:00",
    }
    consents = by_name(parse_envelope(envelope("shopify.customers/update", c))).get(
        "Consent Updated", [])
    if status is None:
        assert consents == []
        return
    (event,) = consents
    assert event.properties == {
        "channel": "email",
        "status": status,
        "kind": "express",
        "recorded_by": "shopify",
        "shopify_state": state,
        "identifier": "bob.norman@mail.example.com",
        "opt_in_level": "confirmed_opt_in",
        "consent_updated_at": "2024-03-01T10:00:00-05:00",
    }
    assert "text" not in event.properties  # C-2: never invented
    assert event.timestamp == datetime(2024, 3, 1, 15, 0, tzinfo=UTC)  # C-3: the vendor's time
    assert event.context == {"traits": {"email": "bob.norman@mail.example.com",
                                        "phone": "+16136120707"}}
    assert event.external_ids == [ExternalId("shopify:customer", "207119551")]


def test_sms_consent_keeps_where_it_was_collected() -> None:  # C-2, C-6
    c = customer()
    c["sms_marketing_consent"]["state"] = "subscribed"
    (event,) = by_name(parse_envelope(envelope("shopify.customers/update", c)))["Consent Updated"]
    assert event.properties["channel"] == "sms"
    assert event.properties["identifier"] == "+16136120707"
    assert event.properties["consent_collected_from"] == "OTHER"
    assert event.properties["opt_in_level"] == "single_opt_in"


def test_older_accepts_marketing_when_no_consent_object() -> None:
    c = customer()
    del c["email_marketing_consent"]
    c["accepts_marketing"] = True
    (event,) = by_name(parse_envelope(envelope("shopify.customers/update", c)))["Consent Updated"]
    assert event.properties["status"] == "granted"
    assert event.timestamp == datetime(2005, 6, 12, 15, 57, 11, tzinfo=UTC)
    c["accepts_marketing"] = False  # C-4: false is silence
    assert "Consent Updated" not in by_name(
        parse_envelope(envelope("shopify.customers/update", c)))


def test_order_sample_is_order_completed() -> None:
    (event,) = parse_envelope(envelope("shopify.orders/paid", order()))
    assert event.type == "track" and event.name == "Order Completed"
    assert event.message_id == "shopify:order:450789469:completed"
    assert event.timestamp == datetime(2008, 1, 10, 16, 0, tzinfo=UTC)
    p = event.properties
    assert p["order_id"] == "450789469"
    assert p["order_number"] == "#1001"
    assert (p["total"], p["subtotal"], p["tax"], p["discount"], p["shipping"]) == (
        598.94, 597.0, 11.94, 10.0, 0.0)
    assert p["currency"] == "USD"
    assert p["source_name"] == "web" and "in_store" not in p
    assert p["financial_status"] == "partially_refunded"
    assert p["products"][0] == {
        "product_id": "632910392", "variant_id": "39072856", "sku": "IPOD2008GREEN",
        "name": "IPod Nano - 8gb", "variant": "green", "price": 199.0, "quantity": 1,
    }
    assert len(p["products"]) == 3
    # The customer's identifiers, not the order's contact phone.
    assert event.context == {"traits": {"email": "bob.norman@mail.example.com",
                                        "phone": "+16136120707"}}
    assert event.external_ids == [ExternalId("shopify:customer", "207119551")]


@pytest.mark.parametrize("status", ["pending", "authorized", "refunded", "voided", "expired"])
def test_unpaid_or_undone_orders_are_not_purchases(status: str) -> None:
    o = order()
    o["financial_status"] = status
    assert parse_envelope(envelope("shopify.orders/create", o)) == []


def test_cancelled_and_test_orders_are_not_purchases() -> None:
    o = order()
    o["financial_status"] = "paid"
    o["cancelled_at"] = "2008-01-11T11:00:00-05:00"
    assert parse_envelope(envelope("shopify.orders/paid", o)) == []
    o = order()
    o["test"] = True
    assert parse_envelope(envelope("shopify.orders/paid", o)) == []


def test_pos_order_is_in_store() -> None:
    o = order()
    o.update(source_name="pos", location_id=655441491, financial_status="paid")
    (event,) = parse_envelope(envelope("shopify.orders/create", o))
    assert event.properties["in_store"] is True
    assert event.properties["source_name"] == "pos"
    assert event.properties["location_id"] == "655441491"


def test_walk_in_sale_without_customer_is_anonymous() -> None:
    o = order()
    o.update(customer=None, email="", contact_email=None, phone=None, financial_status="paid")
    (event,) = parse_envelope(envelope("shopify.orders/create", o))
    assert event.anonymous_id == "shopify-order:450789469"
    assert event.external_ids == [] and event.context == {"traits": {}}


def test_pulled_pages_map_like_webhooks() -> None:
    fake = FakeShopify(customers=4, orders=8)
    page = {"stream": "customers", "records": [fake.customer(i) for i in range(4)]}
    evs = parse_envelope(envelope("shopify.pull.customers", page))
    assert sum(e.type == "identify" for e in evs) == 4
    page = {"stream": "orders", "records": [fake.order(j) for j in range(8)]}
    evs = parse_envelope(envelope("shopify.pull.orders", page))
    assert len(evs) == 8
    assert sum(bool(e.properties.get("in_store")) for e in evs) == 2


@pytest.mark.parametrize(
    ("kind", "body", "field"),
    [("shopify.customers/create", {"email": "x@example.com"}, "id"),
     ("shopify.orders/paid", {"id": 1}, "financial_status"),
     ("shopify.customers/update", {"id": 1}, "updated_at")],
)
def test_stored_record_without_a_field_raises(kind: str, body: Any, field: str) -> None:
    with pytest.raises(EnvelopeError, match=field):
        parse_envelope(envelope(kind, body))


def test_unknown_kind_raises() -> None:
    with pytest.raises(EnvelopeError):
        parse_envelope(envelope("shopify.products/create", {"id": 1}))
