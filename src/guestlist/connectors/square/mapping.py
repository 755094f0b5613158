"""Square payloads → canonical events.

A customer (webhook `customer.created`/`customer.updated`, or a pulled page) is one
`identify`, plus a `Consent Updated` (email withdrawn) when Square holds the customer
as unsubscribed; a birthday with a year is the `birthday` trait (a dob_provided age
statement). Message ids come
from the customer id and its `version` (which Square raises on every change and which
is the same in webhooks and API answers, where `updated_at` is not always written to
the same precision), so one version arriving by webhook and by pull is applied once.
A completed order with a customer is one `Order Completed`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

import orjson

from guestlist.canonical import CanonicalEvent, ExternalId
from guestlist.capture.tracking_parse import parse_timestamp
from guestlist.connectors._mapping import event_maker
from guestlist.connectors.base import PULL_KIND, pulled_page, topic_of
from guestlist.inbox.store import InboxEnvelope

SLUG = "square"
CUSTOMER_NS = "square:customer"
ORDER_EVENT = "Order Completed"
DELETED_EVENT = "Square Customer Deleted"
CUSTOMER_TOPICS = ("customer.created", "customer.updated")
TOPICS = (*CUSTOMER_TOPICS, "customer.deleted", "webhooks.test_notification")

# Square writes a birthday without a year as 0000-MM-DD; older versions wrote a
# date-time at midnight.
_BIRTHDAY = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(?:T00:00:00(?:\.0+)?(?:Z|[+-]00:?00))?$")


class SquarePayloadError(ValueError):
    """A stored Square payload that lacks what the mapping needs; `field` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def _time(value: Any, field: str) -> datetime:
    if not isinstance(value, str) or not value:
        raise SquarePayloadError(field, "missing")
    try:
        return parse_timestamp(value)
    except ValueError:
        raise SquarePayloadError(field, f"{value!r} is not an RFC 3339 time") from None


def _version_key(customer: dict[str, Any]) -> str:
    """What tells one version of a customer from another: `version`, else `updated_at`."""
    version = customer.get("version")
    if isinstance(version, int) and not isinstance(version, bool):
        return f"v{version}"
    return _time(customer.get("updated_at"), "customer.updated_at").isoformat()


def _address(raw: Any) -> dict[str, Any] | None:
    if not isinstance(raw, dict):
        return None
    names = {
        "street": "address_line_1",
        "street2": "address_line_2",
        "city": "locality",
        "state": "administrative_district_level_1",
        "postal_code": "postal_code",
        "country": "country",
    }
    out = {ours: raw[theirs] for ours, theirs in names.items() if raw.get(theirs)}
    return out or None


def _birthday(raw: Any) -> tuple[str | None, str | None, bool]:
    """(the `birthday` trait, a month-day without a year, whether the trait is a date)
    from Square's `birthday`."""
    if not isinstance(raw, str) or not raw:
        return None, None, False
    match = _BIRTHDAY.match(raw.strip())
    if match is None:
        return raw, None, False  # kept as sent: the pipeline flags an unreadable birthday
    year, month, day = match.groups()
    if year == "0000":
        return None, f"{month}-{day}", False
    return f"{year}-{month}-{day}", None, True


def customer_traits(customer: dict[str, Any]) -> dict[str, Any]:
    """The traits a customer record states (fields Square left out are not cleared)."""
    traits: dict[str, Any] = {}
    plain = {
        "first_name": "given_name",
        "last_name": "family_name",
        "email": "email_address",
        "phone": "phone_number",
        "nickname": "nickname",
        "created_at": "created_at",
        "square_reference_id": "reference_id",
        "square_creation_source": "creation_source",
    }
    for ours, theirs in plain.items():
        value = customer.get(theirs)
        if value not in (None, ""):
            traits[ours] = value
    if customer.get("company_name"):
        traits["company"] = {"name": customer["company_name"]}
    address = _address(customer.get("address"))
    if address:
        traits["address"] = address
    dob, month_day, _ = _birthday(customer.get("birthday"))
    if dob is not None:
        traits["birthday"] = dob
    if month_day is not None:
        # Not a date of birth: a trait for birthday greetings, never an age.
        traits["birthday_month_day"] = month_day
    for ours, theirs in (("square_group_ids", "group_ids"), ("square_segment_ids", "segment_ids")):
        if isinstance(customer.get(theirs), list):
            traits[ours] = list(customer[theirs])
    return traits


def customer_events(customer: Any, envelope: InboxEnvelope) -> list[CanonicalEvent]:
    if not isinstance(customer, dict):
        raise SquarePayloadError("customer", "expected an object")
    customer_id = customer.get("id")
    if not isinstance(customer_id, str) or not customer_id:
        raise SquarePayloadError("customer.id", "missing")
    when = _time(customer.get("updated_at") or customer.get("created_at"), "customer.updated_at")
    base = f"{CUSTOMER_NS}:{customer_id}:{_version_key(customer)}"
    external = [ExternalId(CUSTOMER_NS, customer_id)]
    traits = customer_traits(customer)
    contact = {k: traits[k] for k in ("email", "phone") if k in traits}

    event = event_maker(envelope, when, external)

    events = [event("identify", base, traits=traits)]
    preferences = customer.get("preferences")
    if isinstance(preferences, dict) and preferences.get("email_unsubscribed") is True:
        # C-5: an unsubscribe recorded at Square reaches the ledger. `false` is only
        # the absence of an unsubscribe, never a grant (C-4), so it records nothing.
        # Square gives no time for it: the version's time is the latest it is known.
        props: dict[str, Any] = {
            "channel": "email",
            "status": "withdrawn",
            "kind": "express",
            "recorded_by": SLUG,
            "square_customer_id": customer_id,
            "square_preference": "email_unsubscribed",
        }
        if "email" in traits:
            props["identifier"] = traits["email"]
        events.append(
            event(
                "track",
                f"{base}:email_unsubscribed",
                name="Consent Updated",
                properties=props,
                context={"traits": contact},
            )
        )
    # A birthday with a year is in the identify's `birthday` trait, which the pipeline
    # records as the customer's own statement (dob_provided; docs/age.md): an `Age
    # Verified` beside it would record the same date twice.
    return events


# Currencies without minor units, and with three (ISO 4217); the rest have two.
_EXPONENT = {
    **dict.fromkeys(
        ("BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "VND",
         "VUV", "XAF", "XOF", "XPF"),
        0,
    ),
    **dict.fromkeys(("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"), 3),
}


def _money(raw: Any) -> tuple[float, str] | None:
    """Square's `Money` (an integer of the currency's smallest unit) as (amount, currency)."""
    if not isinstance(raw, dict) or not isinstance(raw.get("amount"), int):
        return None
    currency = str(raw.get("currency") or "")
    return raw["amount"] / 10 ** _EXPONENT.get(currency, 2), currency


def _amount(raw: Any) -> float | None:
    money = _money(raw)
    return None if money is None else money[0]


def _product(item: dict[str, Any]) -> dict[str, Any]:
    product: dict[str, Any] = {"name": item.get("name") or item.get("variation_name") or ""}
    if item.get("catalog_object_id"):
        product["product_id"] = item["catalog_object_id"]
    if item.get("variation_name"):
        product["variant"] = item["variation_name"]
    price = _amount(item.get("base_price_money"))
    if price is not None:
        product["price"] = price
    try:
        product["quantity"] = float(item.get("quantity") or 0)
    except ValueError:
        raise SquarePayloadError("line_items.quantity", f"{item.get('quantity')!r}") from None
    return product


# Fulfilment types that mean the goods left the shop some other way than over the
# counter; an order with none of them was a sale at the till (Square POS).
_REMOTE_FULFILMENTS = frozenset({"SHIPMENT", "DELIVERY", "PICKUP", "DIGITAL"})


def order_events(order: Any, envelope: InboxEnvelope) -> list[CanonicalEvent]:
    """A completed order with a customer and line items → `Order Completed`.

    Open, draft and cancelled orders are no purchase. A walk-in sale without a
    customer on it names nobody: there is no profile to put it on.
    """
    if not isinstance(order, dict):
        raise SquarePayloadError("order", "expected an object")
    order_id = order.get("id")
    if not isinstance(order_id, str) or not order_id:
        raise SquarePayloadError("order.id", "missing")
    items = order.get("line_items") or []
    customer_id = order.get("customer_id")
    if order.get("state") != "COMPLETED" or not customer_id or not items:
        return []
    total = _money(order.get("total_money"))
    if total is None:
        raise SquarePayloadError("order.total_money", "missing")
    when = _time(order.get("closed_at") or order.get("updated_at"), "order.closed_at")
    gross = [_amount(i.get("gross_sales_money")) for i in items]
    kinds = {f.get("type") for f in order.get("fulfillments") or [] if isinstance(f, dict)}
    props: dict[str, Any] = {
        "order_id": order_id,
        "total": total[0],
        "currency": total[1],
        "products": [_product(i) for i in items],
        "in_store": not (kinds & _REMOTE_FULFILMENTS),
    }
    if all(g is not None for g in gross):
        props["subtotal"] = round(sum(g for g in gross if g is not None), 6)
    for name, field in (
        ("tax", "total_tax_money"), ("discount", "total_discount_money"),
        ("tip", "total_tip_money"),
    ):
        value = _amount(order.get(field))
        if value is not None:
            props[name] = value
    source = order.get("source")
    if isinstance(source, dict) and source.get("name"):
        props["source_name"] = source["name"]
    if order.get("location_id"):
        props["square_location_id"] = order["location_id"]
    event = event_maker(envelope, when, [ExternalId(CUSTOMER_NS, str(customer_id))])
    # An order completes once: a later update (a refund, a note) is not a second
    # purchase, so the id names the state rather than the version.
    return [event("track", f"{SLUG}:order:{order_id}:COMPLETED", name=ORDER_EVENT,
                  properties=props)]


def _deleted(body: dict[str, Any], envelope: InboxEnvelope) -> list[CanonicalEvent]:
    """We never erase a profile because Square deleted its record (erasure is our own
    request, P-2): the deletion is an event on the profile's timeline."""
    data = _data(body)
    customer = _object(data).get("customer")
    customer_id = data.get("id") or (customer or {}).get("id")
    if not isinstance(customer_id, str) or not customer_id:
        raise SquarePayloadError("data.id", "missing")
    props: dict[str, Any] = {"square_customer_id": customer_id}
    if isinstance(customer, dict) and isinstance(customer.get("version"), int):
        props["version"] = customer["version"]
    context = _object(data).get("event_context")
    merge = context.get("merge") if isinstance(context, dict) else None
    if isinstance(merge, dict) and merge.get("to_customer_id"):
        props["merged_into_square_customer_id"] = merge["to_customer_id"]
    when = _time(body.get("created_at"), "created_at")
    event = event_maker(envelope, when, [ExternalId(CUSTOMER_NS, customer_id)])
    return [event("track", f"{CUSTOMER_NS}:{customer_id}:deleted", name=DELETED_EVENT,
                  properties=props)]


def _data(body: dict[str, Any]) -> dict[str, Any]:
    data = body.get("data")
    if not isinstance(data, dict):
        raise SquarePayloadError("data", "missing")
    return data


def _object(data: dict[str, Any]) -> dict[str, Any]:
    obj = data.get("object")
    return obj if isinstance(obj, dict) else {}


def _customer_changed(body: dict[str, Any], envelope: InboxEnvelope) -> list[CanonicalEvent]:
    customer = _object(_data(body)).get("customer")
    if customer is None:
        raise SquarePayloadError("data.object.customer", "missing")
    return customer_events(customer, envelope)


def _nothing(body: dict[str, Any], envelope: InboxEnvelope) -> list[CanonicalEvent]:
    return []  # webhooks.test_notification: proves the subscription works, states nothing


WebhookHandler = Callable[[dict[str, Any], InboxEnvelope], list[CanonicalEvent]]
WEBHOOK_HANDLERS: dict[str, WebhookHandler] = {
    "customer.created": _customer_changed,
    "customer.updated": _customer_changed,
    "customer.deleted": _deleted,
    "webhooks.test_notification": _nothing,
}


RecordMapper = Callable[[Any, InboxEnvelope], list[CanonicalEvent]]
STREAM_MAPPERS: dict[str, RecordMapper] = {"customers": customer_events, "orders": order_events}


def parse_envelope(envelope: InboxEnvelope) -> list[CanonicalEvent]:
    topic = topic_of(envelope, SLUG)
    if topic.startswith(f"{PULL_KIND}."):
        stream, records = pulled_page(envelope)
        mapper = STREAM_MAPPERS.get(stream)
        if mapper is None:
            raise SquarePayloadError("stream", f"unknown Square stream {stream!r}")
        return [e for record in records for e in mapper(record, envelope)]
    handler = WEBHOOK_HANDLERS.get(topic)
    if handler is None:
        raise SquarePayloadError("type", f"unknown Square topic {topic!r}")
    try:
        body = orjson.loads(envelope.body)
    except orjson.JSONDecodeError:
        raise SquarePayloadError("body", "not JSON") from None
    if not isinstance(body, dict):
        raise SquarePayloadError("body", "expected a JSON object")
    return handler(body, envelope)
