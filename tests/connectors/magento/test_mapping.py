"""Magento records → canonical events, from the CONSTRUCTED samples (no database)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from guestlist.connectors.magento.client import parse_time
from guestlist.connectors.magento.mapping import MagentoRecordError, parse
from guestlist.inbox.store import InboxEnvelope

SAMPLES = Path(__file__).parents[3] / "src/guestlist/connectors/magento/samples"
RECEIVED = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


def sample(name: str) -> dict[str, Any]:
    data: dict[str, Any] = orjson.loads((SAMPLES / name).read_bytes())
    return data


def envelope(stream: str, records: list[Any], source_id: int = 7) -> InboxEnvelope:
    return InboxEnvelope(
        id=1,
        source_id=source_id,
        kind=f"magento.pull.{stream}",
        headers={},
        body=orjson.dumps({"stream": stream, "records": records}),
        received_at=RECEIVED,
    )


def customers() -> list[dict[str, Any]]:
    return list(sample("customers_search__page.CONSTRUCTED.json")["items"])


def orders() -> list[dict[str, Any]]:
    return list(sample("orders_search__page.CONSTRUCTED.json")["items"])


def test_times_without_a_zone_are_utc() -> None:
    assert parse_time("2024-01-15 10:20:30") == datetime(2024, 1, 15, 10, 20, 30, tzinfo=UTC)
    assert parse_time("2024-01-15T10:20:30+02:00") == datetime(2024, 1, 15, 8, 20, 30, tzinfo=UTC)


def test_customer_becomes_identify_with_site_scoped_id() -> None:
    out = parse(envelope("customers", customers()[:1]))
    identify = out[0]
    assert identify.type == "identify"
    assert identify.message_id == "magento:customer:3:2024-03-02 08:15:00"
    assert identify.timestamp == datetime(2024, 3, 2, 8, 15, tzinfo=UTC)
    assert identify.received_at == RECEIVED
    assert [e.key for e in identify.external_ids] == ["magento:customer:7:3"]
    assert identify.traits == {
        "email": "jdoe@example.com",
        "first_name": "Jane",
        "last_name": "Doe",
        "phone": "512-555-1111",
        "address": {
            "street": "123 Oak Ave\nApt 4",
            "city": "Purchase",
            "state": "NY",
            "postal_code": "10577",
            "country": "US",
        },
        "created_at": "2024-01-15T10:20:30Z",
        "gender": "female",
        "magento_group_id": 1,
        "magento_website_id": 1,
        "magento_store_id": 1,
        "magento_created_in": "Default Store View",
    }


def test_dob_is_an_age_statement_at_dob_provided() -> None:
    age = [e for e in parse(envelope("customers", customers())) if e.name == "Age Verified"]
    assert len(age) == 1
    assert age[0].properties == {
        "birthday": "1990-04-05",
        "level": "dob_provided",
        "method": "vendor_profile",
        "provider": "magento",
        "reference": "customer:3",
        "country": "US",
        "region": "NY",  # where the age table can place the default billing address
    }
    assert age[0].context == {"traits": {"email": "jdoe@example.com", "phone": "512-555-1111"}}


def test_newsletter_flag_becomes_consent_without_invented_text() -> None:  # C-2, C-4, C-5
    by_email = {
        e.properties["identifier"]: e
        for e in parse(envelope("customers", customers()))
        if e.name == "Consent Updated"
    }
    granted, withdrawn = by_email["jdoe@example.com"], by_email["sam.lee@example.org"]
    assert granted.properties["status"] == "granted"
    assert "text" not in granted.properties
    assert granted.properties["recorded_by"] == "magento"
    assert granted.properties["vendor_field"] == "extension_attributes.is_subscribed"
    # Dated at the account's creation, so a later withdrawal anywhere wins (C-3, C-5).
    assert granted.timestamp == datetime(2024, 1, 15, 10, 20, 30, tzinfo=UTC)
    assert withdrawn.properties["status"] == "withdrawn"
    assert withdrawn.timestamp == datetime(2024, 3, 2, 8, 15, tzinfo=UTC)
    # One statement per customer, address and value: a re-save repeats nothing.
    again = dict(customers()[0], updated_at="2024-05-01 00:00:00")
    repeat = [e for e in parse(envelope("customers", [again])) if e.name == "Consent Updated"]
    assert repeat[0].message_id == granted.message_id


def test_no_newsletter_flag_no_consent() -> None:  # C-4
    record = dict(customers()[0])
    record.pop("extension_attributes")
    assert not [e for e in parse(envelope("customers", [record])) if e.name == "Consent Updated"]


def test_completed_order_skips_configurable_children() -> None:
    first = parse(envelope("orders", orders()[:1]))
    assert len(first) == 1  # an account holder's dob comes with the customer, not the order
    order = first[0]
    assert (order.type, order.name) == ("track", "Order Completed")
    assert order.message_id == "magento:order:3:completed"
    assert order.timestamp == datetime(2024, 3, 2, 9, 0, 12, tzinfo=UTC)
    assert order.context == {"traits": {"email": "jdoe@example.com", "phone": "512-555-1111"}}
    assert [e.key for e in order.external_ids] == ["magento:customer:7:3"]
    props = order.properties
    assert props["order_id"] == "000000003"
    assert (props["total"], props["subtotal"], props["tax"]) == (118.0, 78.0, 35.0)
    assert (props["discount"], props["shipping"], props["currency"]) == (5.0, 10.0, "USD")
    assert props["products"] == [
        {"product_id": "1542", "sku": "BRB-SB-750", "name": "Small Batch Bourbon 750ml",
         "price": 54.0, "quantity": 1, "category": "configurable"},
        {"product_id": "88", "sku": "GLS-ROCKS", "name": "Rocks Glass", "price": 12.0,
         "quantity": 2, "category": "simple"},
    ]


def test_guest_order_has_no_customer_id_and_states_the_dob() -> None:
    out = parse(envelope("orders", orders()[1:2]))
    order, age = out
    assert order.external_ids == []
    assert order.context["traits"]["email"] == "walkin@example.net"
    assert age.name == "Age Verified"
    assert age.properties["birthday"] == "1985-11-30"
    assert age.properties["method"] == "vendor_checkout"
    assert age.properties["reference"] == "order:000000004"


@pytest.mark.parametrize(
    ("state", "name"),
    [
        ("processing", "Order Completed"),
        ("complete", "Order Completed"),
        ("closed", "Order Refunded"),
        ("canceled", "Order Cancelled"),
        ("new", None),
        ("pending_payment", None),
        ("payment_review", None),
        ("holded", None),
    ],
)
def test_which_states_are_purchases(state: str, name: str | None) -> None:
    record = dict(orders()[0], state=state)
    out = [e.name for e in parse(envelope("orders", [record]))]
    assert out == ([name] if name else [])


def test_processing_then_complete_is_one_purchase() -> None:
    processing = parse(envelope("orders", [dict(orders()[0], state="processing")]))
    complete = parse(
        envelope("orders", [dict(orders()[0], state="complete", updated_at="2024-04-01 00:00:00")])
    )
    assert processing[0].message_id == complete[0].message_id
    assert processing[0].timestamp == complete[0].timestamp


@pytest.mark.parametrize(
    ("stream", "index", "change", "field"),
    [
        ("customers", 0, {"updated_at": None}, "records[0].updated_at"),
        ("customers", 0, {"email": ""}, "records[0].email"),
        ("customers", 0, {"id": "x"}, "records[0].id"),
        ("customers", 0, {"updated_at": "yesterday"}, "records[0].updated_at"),
        ("orders", 0, {"grand_total": "lots"}, "records[0].grand_total"),
        ("orders", 0, {"order_currency_code": None}, "records[0].order_currency_code"),
        ("orders", 0, {"state": None}, "records[0].state"),
        ("orders", 0, {"items": [{"price": "x", "qty_ordered": 1}]}, "records[0].items[0].price"),
    ],
)
def test_a_record_missing_what_we_need_is_an_error_naming_it(
    stream: str, index: int, change: dict[str, Any], field: str
) -> None:
    records = customers() if stream == "customers" else orders()
    records[index] = {**records[index], **change}
    with pytest.raises(MagentoRecordError) as caught:
        parse(envelope(stream, records))
    assert caught.value.field == field


def test_not_an_object() -> None:
    with pytest.raises(MagentoRecordError) as caught:
        parse(envelope("customers", [customers()[0], "oops"]))
    assert caught.value.field == "records[1]"


def test_unknown_kind() -> None:
    env = envelope("customers", [])
    env = InboxEnvelope(env.id, env.source_id, "magento.customers/create", {}, b"{}", RECEIVED)
    with pytest.raises(MagentoRecordError):
        parse(env)
