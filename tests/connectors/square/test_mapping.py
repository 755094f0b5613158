"""Square payloads → canonical events, without a database (the samples replayed)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from guestlist.connectors.square.mapping import SquarePayloadError, parse_envelope
from guestlist.inbox.store import InboxEnvelope
from tests.connectors.square.helpers import sample, sample_bytes

RECEIVED = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)


def envelope(kind: str, body: bytes) -> InboxEnvelope:
    return InboxEnvelope(
        id=7, source_id=3, kind=f"square.{kind}", headers={}, body=body, received_at=RECEIVED
    )


def pulled(records: list[dict[str, Any]]) -> InboxEnvelope:
    return envelope("pull.customers", orjson.dumps({"stream": "customers", "records": records}))


def test_customer_created_sample() -> None:
    events = parse_envelope(
        envelope("customer.created", sample_bytes("customer.created__from_api_json_example.json"))
    )
    identify = events[0]
    assert identify.type == "identify"
    assert identify.message_id == "square:customer:QPTXM8PQNX3Q726ZYHPMNP46XC:v0"
    assert identify.timestamp == datetime(2022, 11, 9, 21, 23, 25, tzinfo=UTC)
    assert identify.received_at == RECEIVED and identify.source_id == 3 and identify.inbox_id == 7
    assert [e.key for e in identify.external_ids] == ["square:customer:QPTXM8PQNX3Q726ZYHPMNP46XC"]
    assert identify.traits == {
        "first_name": "Jenkins",
        "last_name": "Smorly",
        "email": "jenkins+smorly@squareup.com",
        "phone": "+12126668929",
        "created_at": "2022-11-09T21:23:25.519Z",
        "square_creation_source": "DIRECTORY",
        "address": {"street": "1018 40th Street", "city": "Oakland", "state": "CA",
                    "postal_code": "94608"},
        "birthday": "1962-03-04",
        "square_group_ids": ["JGJCW9S0G68NE.APPOINTMENTS"],
    }
    # A birthday with a year is the trait alone: the pipeline records it as the
    # customer's dob_provided statement; an Age Verified beside it would be a second.
    assert [e.name for e in events if e.type == "track"] == []


def test_email_unsubscribed_false_is_not_a_grant() -> None:  # C-4
    events = parse_envelope(
        envelope("customer.updated", sample_bytes("customer.updated__from_api_json_example.json"))
    )
    assert [e.type for e in events] == ["identify"]  # no birthday, and `false` states nothing


def test_unsubscribed_and_yearless_birthday() -> None:  # C-5
    events = parse_envelope(
        envelope(
            "customer.updated",
            sample_bytes("customer.updated__unsubscribed_yearless_birthday.CONSTRUCTED.json"),
        )
    )
    identify, consent = events  # no Age Verified: 0000-07-14 is not a date of birth
    assert "birthday" not in identify.traits
    assert identify.traits["birthday_month_day"] == "07-14"
    assert identify.traits["square_reference_id"] == "LOYALTY-2231"
    assert consent.name == "Consent Updated"
    assert consent.message_id == "square:customer:7XKQ2M4Z8C1RZ0ATB3N5PVQ9YW:v4:email_unsubscribed"
    assert consent.timestamp == datetime(2024, 5, 2, 10, 14, 59, tzinfo=UTC)
    assert consent.properties == {
        "channel": "email", "status": "withdrawn", "kind": "express", "recorded_by": "square",
        "identifier": "rosa.delgado@example.com",
        "square_customer_id": "7XKQ2M4Z8C1RZ0ATB3N5PVQ9YW",
        "square_preference": "email_unsubscribed",
    }


def test_deleted_is_an_event_not_an_erasure() -> None:
    (event,) = parse_envelope(
        envelope("customer.deleted", sample_bytes("customer.deleted__from_api_json_example.json"))
    )
    assert (event.type, event.name) == ("track", "Square Customer Deleted")
    assert event.properties == {"square_customer_id": "QPTXM8PQNX3Q726ZYHPMNP46XC", "version": 3}
    assert event.traits == {} and event.context == {}  # nothing personal from a deletion
    assert event.timestamp == datetime(2022, 11, 9, 21, 26, 50, tzinfo=UTC)


def test_deleted_by_a_merge_names_the_new_customer() -> None:
    body = sample("customer.deleted__from_api_json_example.json")
    body["data"]["object"]["event_context"] = {
        "merge": {"from_customer_ids": ["QPTXM8PQNX3Q726ZYHPMNP46XC", "B"], "to_customer_id": "C"}
    }
    (event,) = parse_envelope(envelope("customer.deleted", orjson.dumps(body)))
    assert event.properties["merged_into_square_customer_id"] == "C"


def test_test_notification_states_nothing() -> None:
    kind = "webhooks.test_notification"
    assert parse_envelope(envelope(kind, sample_bytes("webhook_test_notification.json"))) == []


def test_pulled_page_from_the_list_and_search_examples() -> None:
    listed = sample("list_customers_response__from_api_json_example.json")["customers"]
    searched = sample("search_customers_response__from_api_json_example.json")["customers"]
    events = parse_envelope(pulled(listed + searched))
    assert [e.message_id for e in events] == [
        "square:customer:JDKYHBWT1D4F8MFH63DBMEN8Y4:v1",
        "square:customer:JDKYHBWT1D4F8MFH63DBMEN8Y4:v7",
        "square:customer:A9641GZW2H7Z56YYSD41Q12HDW:v1",
    ]
    first = events[0].traits
    assert first["square_segment_ids"] == ["1KB9JE5EGJXCW.REACHABLE"]
    assert first["address"]["street2"] == "Suite 600" and first["address"]["country"] == "US"


def test_same_version_by_webhook_and_by_pull_has_one_message_id() -> None:
    body = sample("customer.updated__from_api_json_example.json")
    customer = body["data"]["object"]["customer"]
    by_hook = parse_envelope(envelope("customer.updated", orjson.dumps(body)))[0]
    as_listed = {**customer, "updated_at": "2022-11-09T21:38:30.000Z"}  # other precision
    by_pull = parse_envelope(pulled([as_listed]))[0]
    assert by_hook.message_id == by_pull.message_id


@pytest.mark.parametrize(
    ("birthday", "trait"),
    [
        ("1990-01-18", {"birthday": "1990-01-18"}),
        ("1990-01-18T00:00:00-00:00", {"birthday": "1990-01-18"}),
        ("0000-02-29", {"birthday_month_day": "02-29"}),  # no year: no date of birth
        ("18/01/1990", {"birthday": "18/01/1990"}),  # kept; the pipeline flags it
    ],
)
def test_birthdays(birthday: str, trait: dict[str, str]) -> None:
    customer = {"id": "X", "version": 1, "updated_at": "2024-01-01T00:00:00Z",
                "birthday": birthday}
    events = parse_envelope(pulled([customer]))
    assert {k: v for k, v in events[0].traits.items() if "birthday" in k} == trait
    assert sum(e.name == "Age Verified" for e in events) == 0  # the trait is the statement


@pytest.mark.parametrize(
    ("kind", "body", "field"),
    [
        ("customer.updated", b"not json", "body"),
        ("customer.updated", b'{"type": "customer.updated", "data": {"id": "A"}}',
         "data.object.customer"),
        ("customer.updated", b'{"data": {"object": {"customer": {"version": 1}}}}',
         "customer.id"),
        ("customer.updated", b'{"data": {"object": {"customer": {"id": "A"}}}}',
         "customer.updated_at"),
        ("customer.deleted", b'{"data": {"object": {}}, "created_at": "2024-01-01T00:00:00Z"}',
         "data.id"),
        ("order.updated", b"{}", "type"),
    ],
)
def test_stored_payload_without_what_we_need_raises(kind: str, body: bytes, field: str) -> None:
    with pytest.raises(SquarePayloadError) as caught:
        parse_envelope(envelope(kind, body))
    assert caught.value.field == field


# -- orders ----------------------------------------------------------------------------


def pulled_orders(orders: list[dict[str, Any]]) -> InboxEnvelope:
    return envelope("pull.orders", orjson.dumps({"stream": "orders", "records": orders}))


def test_completed_order_sample() -> None:
    order = {**sample("pay_order_response__from_api_json_example.json")["order"],
             "customer_id": "JDKYHBWT1D4F8MFH63DBMEN8Y4"}
    (event,) = parse_envelope(pulled_orders([order]))
    assert (event.type, event.name) == ("track", "Order Completed")
    assert event.message_id == "square:order:lgwOlEityYPJtcuvKTVKT1pA986YY:COMPLETED"
    assert event.timestamp == datetime(2019, 8, 6, 2, 47, 37, 140000, tzinfo=UTC)  # closed_at
    assert [e.key for e in event.external_ids] == ["square:customer:JDKYHBWT1D4F8MFH63DBMEN8Y4"]
    assert event.properties == {
        "order_id": "lgwOlEityYPJtcuvKTVKT1pA986YY",
        "total": 20.0, "subtotal": 20.0, "tax": 0.0, "discount": 0.0, "currency": "USD",
        "products": [
            {"name": "Item 1", "price": 5.0, "quantity": 1.0},
            {"name": "Item 2", "price": 7.5, "quantity": 2.0},
        ],
        "in_store": True, "source_name": "Source Name", "square_location_id": "P3CCK6HSNDAS7",
    }


@pytest.mark.parametrize(
    "change",
    [{"state": "OPEN"}, {"state": "CANCELED"}, {"customer_id": None}, {"line_items": []}],
    ids=["open", "canceled", "walk-in without a customer", "no line items"],
)
def test_orders_that_are_no_purchase_by_a_known_customer(change: dict[str, Any]) -> None:
    order = {**sample("pay_order_response__from_api_json_example.json")["order"],
             "customer_id": "C1", **change}
    assert parse_envelope(pulled_orders([order])) == []


def test_order_money_in_the_currency_s_units_and_pickup_is_not_in_store() -> None:
    order = {**sample("pay_order_response__from_api_json_example.json")["order"],
             "customer_id": "C1", "fulfillments": [{"type": "PICKUP"}],
             "total_money": {"amount": 2000, "currency": "JPY"}}
    (event,) = parse_envelope(pulled_orders([order]))
    assert event.properties["total"] == 2000.0 and event.properties["currency"] == "JPY"
    assert event.properties["in_store"] is False
