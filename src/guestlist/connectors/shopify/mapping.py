"""Shopify records → canonical events (webhook bodies and pulled pages alike: both are
the REST representation).

| record | events |
|---|---|
| customer | `identify`; `Consent Updated` per channel Shopify holds a statement for |
| order, paid | `Order Completed` (once per order) |
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import orjson

from guestlist.canonical import CanonicalEvent, ExternalId
from guestlist.capture.tracking_parse import parse_timestamp
from guestlist.connectors.base import pulled_page, topic_of
from guestlist.inbox.parsers import EnvelopeError
from guestlist.inbox.store import InboxEnvelope

SLUG = "shopify"
CUSTOMER_NS = "shopify:customer"

# Orders that are a completed purchase. `pending`/`authorized` are not paid yet (the
# `orders/paid` webhook, or a later pull, brings them); `refunded` and `voided` were
# undone; a partially refunded order was still a sale.
COMPLETED_STATUSES = frozenset({"paid", "partially_paid", "partially_refunded"})

# Shopify's marketing consent states → ledger statuses. `not_subscribed` is silence,
# not a statement (C-4: unknown is never consent, and a denial nobody made is not
# proof of anything); `invalid` (bounced address) and `redacted` say nothing about
# the person's wishes either.
CONSENT_STATUS = {"subscribed": "granted", "unsubscribed": "withdrawn", "pending": "pending"}
CONSENT_CHANNELS = (
    ("email", "email_marketing_consent", "email"),
    ("sms", "sms_marketing_consent", "phone"),
)


class RecordError(EnvelopeError):
    """A Shopify record without a field the mapping needs."""

    def __init__(self, what: str, field: str) -> None:
        super().__init__(f"shopify {what} without {field!r}")
        self.field = field


def _required(record: dict[str, Any], field: str, what: str) -> Any:
    value = record.get(field)
    if value is None or value == "":
        raise RecordError(what, field)
    return value


def _time(value: Any, what: str, field: str) -> datetime:
    if not isinstance(value, str):
        raise RecordError(what, field)
    try:
        return parse_timestamp(value)
    except ValueError:
        raise EnvelopeError(f"shopify {what}: {field} {value[:40]!r} is not ISO 8601") from None


def _utc_id(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def _number(value: Any) -> float | None:
    if value is None or value == "":
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _address(a: Any) -> dict[str, Any] | None:
    if not isinstance(a, dict):
        return None
    street = ", ".join(p for p in (a.get("address1"), a.get("address2")) if p)
    out = {
        "street": street or None,
        "city": a.get("city"),
        "state": a.get("province_code") or a.get("province"),
        "postal_code": a.get("zip"),
        "country": a.get("country_code") or a.get("country"),
    }
    kept = {k: v for k, v in out.items() if v}
    return kept or None


def _tags(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(t).strip() for t in value if str(t).strip()]
    if isinstance(value, str):
        return [t.strip() for t in value.split(",") if t.strip()]
    return []


def _base(envelope: InboxEnvelope, message_id: str, when: datetime) -> dict[str, Any]:
    return {
        "message_id": message_id,
        "timestamp": when,
        "received_at": envelope.received_at,
        "source_id": envelope.source_id,
        "inbox_id": envelope.id,
        "default_region": envelope.default_region,
    }


def customer_events(customer: dict[str, Any], envelope: InboxEnvelope) -> list[CanonicalEvent]:
    what = "customer"
    cid = str(_required(customer, "id", what))
    updated_raw = customer.get("updated_at") or customer.get("created_at")
    updated = _time(updated_raw, what, "updated_at")
    traits: dict[str, Any] = {
        "email": customer.get("email"),
        "phone": customer.get("phone"),
        "first_name": customer.get("first_name"),
        "last_name": customer.get("last_name"),
        "address": _address(customer.get("default_address")),
        "created_at": customer.get("created_at"),
        "tags": _tags(customer.get("tags")),
        "orders_count": customer.get("orders_count"),
        "total_spent": _number(customer.get("total_spent")),
        "currency": customer.get("currency"),
        "verified_email": customer.get("verified_email"),
        "state": customer.get("state"),
    }
    traits = {k: v for k, v in traits.items() if v is not None and v != ""}
    ext = [ExternalId(CUSTOMER_NS, cid)]
    events = [
        CanonicalEvent(
            type="identify",
            traits=traits,
            external_ids=ext,
            # UTC in the id: REST says -05:00 where GraphQL says Z for the same instant.
            **_base(envelope, f"{SLUG}:customer:{cid}:{_utc_id(updated)}", updated),
        )
    ]
    who = {k: traits[k] for k in ("email", "phone") if k in traits}
    for channel, field, identifier_trait in CONSENT_CHANNELS:
        consent = _consent_of(customer, field)
        if consent is None:
            continue
        state = consent.get("state")
        status = CONSENT_STATUS.get(str(state))
        if status is None:
            continue
        at_raw = consent.get("consent_updated_at") or updated_raw
        at = _time(at_raw, f"customer {field}", "consent_updated_at")
        props: dict[str, Any] = {
            "channel": channel,
            "status": status,
            "kind": "express",
            "recorded_by": SLUG,
            "shopify_state": state,
        }
        if identifier_trait in traits:
            props["identifier"] = traits[identifier_trait]
        for evidence in ("opt_in_level", "consent_collected_from", "consent_updated_at"):
            if consent.get(evidence) is not None:
                props[evidence] = consent[evidence]
        events.append(
            CanonicalEvent(
                type="track",
                name="Consent Updated",
                properties=props,
                context={"traits": dict(who)},
                external_ids=list(ext),
                **_base(envelope, f"{SLUG}:consent:{cid}:{channel}:{_utc_id(at)}:{state}", at),
            )
        )
    return events


def _consent_of(customer: dict[str, Any], field: str) -> dict[str, Any] | None:
    consent = customer.get(field)
    if isinstance(consent, dict):
        return consent
    if field == "email_marketing_consent" and customer.get("accepts_marketing") is True:
        # Before 2022-04 Shopify said only accepts_marketing; false is silence (C-4).
        return {
            "state": "subscribed",
            "opt_in_level": customer.get("marketing_opt_in_level"),
            "consent_updated_at": customer.get("accepts_marketing_updated_at"),
        }
    return None


def _products(order: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for item in order.get("line_items") or []:
        if not isinstance(item, dict):
            continue
        product = {
            "product_id": str(item["product_id"]) if item.get("product_id") is not None else None,
            "variant_id": str(item["variant_id"]) if item.get("variant_id") is not None else None,
            "sku": item.get("sku") or None,
            "name": item.get("title") or item.get("name"),
            "variant": item.get("variant_title") or None,
            "brand": item.get("vendor") or None,
            "price": _number(item.get("price")),
            "quantity": item.get("quantity"),
        }
        out.append({k: v for k, v in product.items() if v is not None})
    return out


def _shipping(order: dict[str, Any]) -> float | None:
    shipping_set = order.get("total_shipping_price_set")
    if isinstance(shipping_set, dict):
        amount = (shipping_set.get("shop_money") or {}).get("amount")
        if amount is not None:
            return _number(amount)
    lines = [line for line in order.get("shipping_lines") or [] if isinstance(line, dict)]
    if lines:
        return sum(_number(line.get("price")) or 0.0 for line in lines)
    return None


def is_completed(order: dict[str, Any]) -> bool:
    return (
        order.get("financial_status") in COMPLETED_STATUSES
        and not order.get("cancelled_at")
        and not order.get("test")
    )


def order_events(order: dict[str, Any], envelope: InboxEnvelope) -> list[CanonicalEvent]:
    what = "order"
    oid = str(_required(order, "id", what))
    _required(order, "financial_status", what)
    if not is_completed(order):
        return []
    when_raw = order.get("processed_at") or order.get("created_at")
    when = _time(when_raw, what, "processed_at")
    customer = order.get("customer") if isinstance(order.get("customer"), dict) else None
    source_name = order.get("source_name")
    props: dict[str, Any] = {
        "order_id": oid,
        "order_number": order.get("name"),
        "total": _number(_required(order, "total_price", what)),
        "subtotal": _number(order.get("subtotal_price")),
        "tax": _number(order.get("total_tax")),
        "discount": _number(order.get("total_discounts")),
        "shipping": _shipping(order),
        "currency": _required(order, "currency", what),
        "financial_status": order.get("financial_status"),
        "source_name": source_name,
        "products": _products(order),
    }
    if source_name == "pos":  # Shopify POS: a sale in the shop
        props["in_store"] = True
        if order.get("location_id") is not None:
            props["location_id"] = str(order["location_id"])
    props = {k: v for k, v in props.items() if v is not None}
    # The customer's own identifiers: an order's phone is often a delivery contact.
    if customer is not None:
        who = {"email": customer.get("email"), "phone": customer.get("phone")}
    else:
        who = {"email": order.get("email") or order.get("contact_email"),
               "phone": order.get("phone")}
    who = {k: v for k, v in who.items() if v}
    ext = []
    if customer is not None and customer.get("id") is not None:
        ext.append(ExternalId(CUSTOMER_NS, str(customer["id"])))
    anonymous = None if (who or ext) else f"shopify-order:{oid}"  # a walk-in POS sale
    return [
        CanonicalEvent(
            type="track",
            name="Order Completed",
            properties=props,
            context={"traits": who},
            external_ids=ext,
            anonymous_id=anonymous,
            # Once per order: orders/create, orders/paid and later pulls of the same
            # order (updated by a fulfilment or a refund) are one purchase.
            **_base(envelope, f"{SLUG}:order:{oid}:completed", when),
        )
    ]


RecordMapper = Callable[[dict[str, Any], InboxEnvelope], list[CanonicalEvent]]

# Topic (webhook) or stream (pull) → mapper. An unknown one raises: it was never
# accepted by `verify_webhook`, so something is wrong.
BY_TOPIC: dict[str, RecordMapper] = {
    "customers/create": customer_events,
    "customers/update": customer_events,
    "orders/create": order_events,
    "orders/paid": order_events,
}
BY_STREAM: dict[str, RecordMapper] = {"customers": customer_events, "orders": order_events}


def parse_envelope(envelope: InboxEnvelope) -> list[CanonicalEvent]:
    topic = topic_of(envelope, SLUG)
    if topic.startswith("pull."):
        stream, records = pulled_page(envelope)
        mapper = BY_STREAM.get(stream)
        if mapper is None:
            raise EnvelopeError(f"shopify has no stream {stream!r}")
    else:
        mapper = BY_TOPIC.get(topic)
        if mapper is None:
            raise EnvelopeError(f"shopify topic {topic!r} is not mapped")
        try:
            record = orjson.loads(envelope.body)
        except orjson.JSONDecodeError as exc:
            raise EnvelopeError(f"shopify {topic} body is not JSON: {exc}") from None
        records = [record]
    events: list[CanonicalEvent] = []
    for record in records:
        if not isinstance(record, dict):
            raise EnvelopeError(f"shopify {topic}: a record is not an object")
        events.extend(mapper(record, envelope))
    return events
