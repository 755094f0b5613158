"""WooCommerce customers and orders (REST v3 representation) → canonical events.

Webhook bodies and pulled records are the same representation (a webhook's payload is
the REST response for the resource, `WC_Webhook::get_wp_api_payload`), so one mapping
serves both, and message ids derived from the record make a version that arrives both
ways count once.

| record | events |
|---|---|
| customer | `identify` (+ `Age Verified` when its meta holds a full date of birth) |
| order, customer_id 0 (guest) | `identify` from the billing details |
| order `processing` / `completed` | `Order Completed`, once per order |
| order `refunded` / `cancelled` | `Order Refunded` / `Order Cancelled`, once per order |
| order `pending`, `on-hold`, `failed`, drafts, `trash`, plugin statuses | nothing more |
| `*.deleted` (body `{"id": N}`) | nothing: a deletion at the shop is not an erasure here |
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Final

import orjson

from guestlist.canonical import CanonicalEvent, ExternalId
from guestlist.connectors.base import pulled_page
from guestlist.inbox.parsers import EnvelopeError
from guestlist.inbox.store import InboxEnvelope

SLUG: Final = "woocommerce"
CUSTOMER_NAMESPACE: Final = f"{SLUG}:customer"

# wc_get_is_paid_statuses(): `processing` is paid and awaiting fulfilment, `completed`
# is fulfilled. Either is a purchase; one event per order, whichever is seen first.
PAID_STATUSES: Final = frozenset({"processing", "completed"})
CLOSING_EVENTS: Final = {"refunded": "Order Refunded", "cancelled": "Order Cancelled"}
# created_via of point-of-sale orders: WooCommerce's own POS (PointOfSaleOrderUtil),
# and the WCPOS plugin (which also sets meta `_pos` = 1).
POS_CREATED_VIA: Final = frozenset({"pos-rest-api", "point-of-sale", "woocommerce-pos", "pos"})

# Customer meta keys (any case, leading underscores ignored) read as a date of birth.
BIRTH_DATE_KEYS: Final = frozenset(
    {
        "billing_birth_date",
        "billing_birthdate",
        "billing_birthday",
        "billing_dob",
        "billing_date_of_birth",
        "birth_date",
        "birthdate",
        "birthday",
        "date_of_birth",
        "dob",
        "wc_age_verified",
        "age_verified",
        "age_verified_dob",
    }
)
# Only unambiguous full dates: 1990-04-05, 1990/04/05, 19900405, or that date at
# midnight. 05/04/1990 could be either of two days and is not read.
_FULL_DATE = re.compile(
    r"(\d{4})[-/.]?(\d{2})[-/.]?(\d{2})(?:[ T]00:00(?::00(?:\.0+)?)?(?:Z|[+-]00:?00)?)?"
)


class RecordError(EnvelopeError):
    """A record that lacks a field we need; `field` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


# -- reading fields --------------------------------------------------------------------


def _record_id(record: Mapping[str, Any], name: str = "id") -> int:
    value = record.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise RecordError(name, f"expected a whole number, got {value!r}"[:200])
    return value


def gmt_time(value: Any, field: str) -> datetime:
    """A `*_gmt` field (`2017-03-21T19:09:28`, UTC without an offset) as aware UTC."""
    if not isinstance(value, str) or not value:
        raise RecordError(field, "required (a date-time in GMT)")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise RecordError(field, f"not an ISO 8601 date-time: {value[:40]!r}") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _changed_at(record: Mapping[str, Any]) -> tuple[datetime, str]:
    """The version's time and its text (for message ids): modified, else created."""
    for name in ("date_modified_gmt", "date_created_gmt"):
        value = record.get(name)
        if value:
            return gmt_time(value, name), str(value)
    raise RecordError("date_modified_gmt", "required (or date_created_gmt)")


def money(value: Any, field: str) -> float:
    if isinstance(value, bool) or value is None or value == "":
        raise RecordError(field, "required (an amount)")
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise RecordError(field, f"not an amount: {str(value)[:40]!r}") from None
    if not amount.is_finite():
        raise RecordError(field, "not an amount")
    return float(amount)


def _optional_money(record: Mapping[str, Any], name: str) -> float | None:
    value = record.get(name)
    return None if value is None or value == "" else money(value, name)


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, bool):
        return None
    text = str(value).strip()
    return text or None


def _object(record: Mapping[str, Any], name: str) -> dict[str, Any]:
    value = record.get(name)
    if value is None or value == []:  # PHP encodes an empty array as []
        return {}
    if not isinstance(value, dict):
        raise RecordError(name, "expected an object")
    return value


def _address(part: Mapping[str, Any]) -> dict[str, str]:
    street = ", ".join(s for s in (_text(part.get("address_1")), _text(part.get("address_2"))) if s)
    address = {
        "street": street,
        "city": _text(part.get("city")),
        "state": _text(part.get("state")),
        "postal_code": _text(part.get("postcode")),
        "country": _text(part.get("country")),
    }
    return {k: v for k, v in address.items() if v}


def _company(billing: Mapping[str, Any]) -> dict[str, str] | None:
    name = _text(billing.get("company"))
    return {"name": name} if name else None


def _put(traits: dict[str, Any], name: str, value: Any) -> None:
    """Empty strings are how WooCommerce writes "not set": never a trait value."""
    if isinstance(value, str):
        value = value.strip()
    if value is not None and value != "" and value != {}:
        traits[name] = value


def birth_date(meta_data: Any) -> tuple[str, str] | None:
    """(YYYY-MM-DD, meta key) of the first recognised key holding a full date."""
    if not isinstance(meta_data, list):
        return None
    for entry in meta_data:
        if not isinstance(entry, dict):
            continue
        key = entry.get("key")
        value = entry.get("value")
        if not isinstance(key, str) or not isinstance(value, str):
            continue
        if key.lower().lstrip("_") not in BIRTH_DATE_KEYS:
            continue
        found = _FULL_DATE.fullmatch(value.strip())
        if found is None:
            continue
        try:
            day = date(int(found.group(1)), int(found.group(2)), int(found.group(3)))
        except ValueError:
            continue
        return day.isoformat(), key
    return None


# -- checks (webhook bodies and pulled records) ----------------------------------------


def check_record(resource: str, event: str, record: Any) -> None:
    """Raise RecordError unless `record` has what the mapping needs."""
    if not isinstance(record, dict):
        raise RecordError("id", "the body is not a JSON object")
    _record_id(record)
    if event == "deleted":
        return
    _changed_at(record)
    if resource == "customer":
        _object(record, "billing")
        _object(record, "shipping")
        if record.get("date_created_gmt"):
            gmt_time(record["date_created_gmt"], "date_created_gmt")
        return
    if not isinstance(record.get("status"), str) or not record["status"]:
        raise RecordError("status", "required")
    _record_id(record, "customer_id")
    _object(record, "billing")
    gmt_time(record.get("date_created_gmt"), "date_created_gmt")
    if record["status"] in PAID_STATUSES or record["status"] in CLOSING_EVENTS:
        if not isinstance(record.get("currency"), str) or not record["currency"]:
            raise RecordError("currency", "required")
        money(record.get("total"), "total")
        items = record.get("line_items")
        if not isinstance(items, list):
            raise RecordError("line_items", "expected a list")
        for name in ("total_tax", "discount_total", "shipping_total"):
            _optional_money(record, name)
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                raise RecordError(f"line_items[{i}]", "expected an object")
            for name in ("price", "subtotal", "total"):
                if item.get(name) not in (None, ""):
                    money(item[name], f"line_items[{i}].{name}")


# -- events ------------------------------------------------------------------------------


def _event(env: InboxEnvelope, **fields: Any) -> CanonicalEvent:
    return CanonicalEvent(
        received_at=env.received_at,
        source_id=env.source_id,
        inbox_id=env.id,
        default_region=env.default_region,
        **fields,
    )


def customer_external_id(env: InboxEnvelope, customer_id: int) -> ExternalId:
    # WordPress user ids are per site: the connection's source keeps two shops apart.
    return ExternalId(CUSTOMER_NAMESPACE, f"{env.source_id}:{customer_id}")


def customer_events(record: dict[str, Any], env: InboxEnvelope) -> list[CanonicalEvent]:
    check_record("customer", "updated", record)
    customer_id = _record_id(record)
    changed, version = _changed_at(record)
    billing = _object(record, "billing")
    shipping = _object(record, "shipping")
    traits: dict[str, Any] = {}
    _put(traits, "email", record.get("email") or billing.get("email"))
    _put(traits, "first_name", record.get("first_name") or billing.get("first_name"))
    _put(traits, "last_name", record.get("last_name") or billing.get("last_name"))
    _put(traits, "phone", billing.get("phone"))
    _put(traits, "address", _address(billing))
    _put(traits, "company", _company(billing))
    if _text(billing.get("email")) and billing.get("email") != record.get("email"):
        _put(traits, "billing_email", billing.get("email"))
    _put(traits, "shipping_address", _address(shipping))
    _put(traits, "username", record.get("username"))
    _put(traits, "woocommerce_role", record.get("role"))
    if isinstance(record.get("is_paying_customer"), bool):
        traits["is_paying_customer"] = record["is_paying_customer"]
    if record.get("date_created_gmt"):
        created = gmt_time(record["date_created_gmt"], "date_created_gmt")
        traits["created_at"] = created.isoformat().replace("+00:00", "Z")
    _put(traits, "avatar", record.get("avatar_url"))
    # REST v1/v2 customers carried these; v3 dropped them.
    if isinstance(record.get("orders_count"), int):
        traits["orders_count"] = record["orders_count"]
    if record.get("total_spent") not in (None, ""):
        traits["total_spent"] = money(record["total_spent"], "total_spent")
    external = [customer_external_id(env, customer_id)]
    message_id = f"{SLUG}:customer:{customer_id}:{version}"
    events = [
        _event(
            env,
            type="identify",
            message_id=message_id,
            timestamp=changed,
            traits=traits,
            external_ids=external,
        )
    ]
    dob = birth_date(record.get("meta_data"))
    if dob is not None:
        birthday, key = dob
        events.append(
            _event(
                env,
                type="track",
                name="Age Verified",
                # One statement per date: a customer editing their address re-sends
                # the record, not a new date of birth.
                message_id=f"{SLUG}:customer:{customer_id}:age:{birthday}",
                timestamp=changed,
                properties={
                    "birthday": birthday,
                    "level": "dob_provided",  # typed by the person; nobody checked it
                    "method": "woocommerce_meta",
                    "reference": key,
                    "recorded_by": SLUG,
                },
                context={"traits": {k: traits[k] for k in ("email", "phone") if k in traits}},
                external_ids=list(external),
            )
        )
    return events


def _products(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    products = []
    for i, item in enumerate(items):
        product: dict[str, Any] = {}
        for id_field in ("product_id", "variation_id"):
            value = item.get(id_field)
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                product[id_field] = str(value)
        _put(product, "sku", item.get("sku"))
        title = _text(item.get("name"))
        # WooCommerce escapes product names for HTML (`&ndash;`, `&amp;`).
        _put(product, "name", html.unescape(title) if title else None)
        price = item.get("price")
        if isinstance(price, int | float) and not isinstance(price, bool):
            product["price"] = float(price)
        elif price not in (None, ""):
            product["price"] = money(price, f"line_items[{i}].price")
        quantity = item.get("quantity")
        if isinstance(quantity, int | float) and not isinstance(quantity, bool):
            product["quantity"] = quantity
        if item.get("total") not in (None, ""):
            product["total"] = money(item["total"], f"line_items[{i}].total")
        products.append(product)
    return products


def is_in_store(record: Mapping[str, Any]) -> bool:
    if str(record.get("created_via") or "").lower() in POS_CREATED_VIA:
        return True
    meta = record.get("meta_data")
    return isinstance(meta, list) and any(
        isinstance(m, dict) and m.get("key") == "_pos" and str(m.get("value")) == "1"
        for m in meta
    )


def order_events(record: dict[str, Any], env: InboxEnvelope) -> list[CanonicalEvent]:
    check_record("order", "updated", record)
    order_id = _record_id(record)
    customer_id = _record_id(record, "customer_id")
    status = str(record["status"])
    changed, version = _changed_at(record)
    billing = _object(record, "billing")
    who: dict[str, Any] = {}
    _put(who, "email", billing.get("email"))
    _put(who, "phone", billing.get("phone"))
    external = [customer_external_id(env, customer_id)] if customer_id else []
    events: list[CanonicalEvent] = []
    if not customer_id and who:
        # A guest checkout: the order is the only record of the person.
        traits = dict(who)
        _put(traits, "first_name", billing.get("first_name"))
        _put(traits, "last_name", billing.get("last_name"))
        _put(traits, "address", _address(billing))
        _put(traits, "company", _company(billing))
        events.append(
            _event(
                env,
                type="identify",
                message_id=f"{SLUG}:order:{order_id}:guest:{version}",
                timestamp=changed,
                traits=traits,
            )
        )
    name = "Order Completed" if status in PAID_STATUSES else CLOSING_EVENTS.get(status)
    if name is None:
        return events
    items = [i for i in record.get("line_items") or [] if isinstance(i, dict)]
    properties: dict[str, Any] = {
        "order_id": str(order_id),
        "order_number": _text(record.get("number")) or str(order_id),
        "status": status,
        "total": money(record["total"], "total"),
        "currency": record["currency"],
        "products": _products(items),
    }
    subtotals = [
        Decimal(str(money(item["subtotal"], f"line_items[{i}].subtotal")))
        for i, item in enumerate(items)
        if item.get("subtotal") not in (None, "")
    ]
    if subtotals:
        properties["subtotal"] = float(sum(subtotals))
    for prop, field in (("tax", "total_tax"), ("discount", "discount_total"),
                        ("shipping", "shipping_total")):
        amount = _optional_money(record, field)
        if amount is not None:
            properties[prop] = amount
    coupons = [c.get("code") for c in record.get("coupon_lines") or [] if isinstance(c, dict)]
    if any(coupons):
        properties["coupon"] = ",".join(str(c) for c in coupons if c)
    _put(properties, "payment_method", record.get("payment_method"))
    _put(properties, "source_name", record.get("created_via"))
    if is_in_store(record):
        properties["in_store"] = True
    if name == "Order Completed":
        paid = record.get("date_paid_gmt") or record.get("date_completed_gmt")
        when = gmt_time(paid, "date_paid_gmt") if paid else gmt_time(
            record["date_created_gmt"], "date_created_gmt"
        )
        key = "completed"
    else:
        when, key = changed, status
    events.append(
        _event(
            env,
            type="track",
            name=name,
            # One purchase per order: `processing` then `completed` must not count twice.
            message_id=f"{SLUG}:order:{order_id}:{key}",
            timestamp=when,
            properties=properties,
            context={"traits": who} if who else {},
            external_ids=external,
            # A walk-in sale with no account, email or phone: the order's own id keeps
            # its purchase and a later refund on one profile.
            anonymous_id=None if who or external else f"{SLUG}-order:{env.source_id}:{order_id}",
        )
    )
    return events


MAPPERS: Final[dict[str, Callable[[dict[str, Any], InboxEnvelope], list[CanonicalEvent]]]] = {
    "customer": customer_events,
    "order": order_events,
}
STREAM_RESOURCES: Final = {"customers": "customer", "orders": "order"}


def parse_envelope(env: InboxEnvelope) -> list[CanonicalEvent]:
    topic = env.kind[len(SLUG) + 1 :]
    if topic == "ping":
        return []
    if topic.startswith("pull."):
        stream, records = pulled_page(env)
        resource = STREAM_RESOURCES.get(stream)
        if resource is None:
            raise EnvelopeError(f"unknown {SLUG} stream {stream!r}")
        events: list[CanonicalEvent] = []
        for i, record in enumerate(records):
            try:
                events.extend(MAPPERS[resource](record, env))
            except RecordError as exc:
                raise RecordError(f"records[{i}].{exc.field}", exc.message) from None
        return events
    resource, _, event = topic.partition(".")
    if resource not in MAPPERS:
        raise EnvelopeError(f"unknown {SLUG} topic {topic!r}")
    try:
        record = orjson.loads(env.body)
    except orjson.JSONDecodeError:
        raise EnvelopeError(f"{SLUG} {topic} body is not JSON") from None
    if event == "deleted":
        check_record(resource, event, record)
        return []
    if not isinstance(record, dict):
        raise RecordError("id", "the body is not a JSON object")
    return MAPPERS[resource](record, env)
