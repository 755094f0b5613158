"""Magento records → canonical events (pulled pages only: Magento sends no webhooks).

customers/search item → `identify` (+ `Age Verified` for a dob, + `Consent Updated`
for the newsletter flag); orders item → `Order Completed` / `Order Refunded` /
`Order Cancelled` by state. The choices are argued in docs/connectors/magento.md.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from guestlist.age.places import PlaceError, jurisdiction_of
from guestlist.canonical import CanonicalEvent, ExternalId
from guestlist.connectors.base import pulled_page, topic_of
from guestlist.connectors.magento.client import SLUG, parse_time
from guestlist.inbox.store import InboxEnvelope

CUSTOMER_NS = f"{SLUG}:customer"
# Order states (sales_order.state, not the shop's configurable `status` labels).
COMPLETED_STATES = frozenset({"processing", "complete"})  # paid (invoiced) or shipped
REFUNDED_STATES = frozenset({"closed"})  # fully refunded by credit memo
CANCELLED_STATES = frozenset({"canceled"})
# new, pending_payment, payment_review, holded: not (yet) a purchase; nothing recorded.
GENDERS = {1: "male", 2: "female"}  # 3 = "Not Specified"


class MagentoRecordError(ValueError):
    """A pulled record lacks what we need; `field` names it (`records[3].updated_at`)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class _Record:
    """One record with the field paths errors should name."""

    def __init__(self, where: str, data: Any) -> None:
        if not isinstance(data, dict):
            raise MagentoRecordError(where, "expected an object")
        self.where = where
        self.data: dict[str, Any] = data

    def fail(self, name: str, message: str) -> MagentoRecordError:
        return MagentoRecordError(f"{self.where}.{name}", message)

    def id(self, name: str) -> str:
        value = self.data.get(name)
        if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).isdigit():
            raise self.fail(name, "required, a numeric id")
        return str(int(value))

    def text(self, name: str, *, required: bool = False) -> str | None:
        value = self.data.get(name)
        if value is None or value == "":
            if required:
                raise self.fail(name, "required")
            return None
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise self.fail(name, f"expected text, got {type(value).__name__}")
        return str(value).strip() or None

    def time(self, name: str) -> datetime:
        value = self.text(name, required=True)
        assert value is not None
        try:
            return parse_time(value)
        except ValueError:
            raise self.fail(name, f"not a Magento time: {value[:40]!r}") from None

    def money(self, name: str, *, required: bool = False) -> float | None:
        value = self.data.get(name)
        if value is None or value == "":
            if required:
                raise self.fail(name, "required")
            return None
        try:
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        except (TypeError, ValueError):
            raise self.fail(name, f"not a number: {str(value)[:40]!r}") from None


def _iso(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


def _address(raw: dict[str, Any]) -> dict[str, Any]:
    region = raw.get("region")
    state = None
    if isinstance(region, dict):
        state = region.get("region_code") or region.get("region")
    elif isinstance(region, str):
        state = region
    street = raw.get("street")
    lines = [str(s) for s in street if s] if isinstance(street, list) else []
    out = {
        "street": "\n".join(lines) or None,
        "city": raw.get("city"),
        "state": state,
        "postal_code": raw.get("postcode"),
        "country": raw.get("country_id"),
    }
    return {k: v for k, v in out.items() if v}


def _main_address(addresses: list[Any]) -> dict[str, Any] | None:
    """The default billing address, else the default shipping one, else the first."""
    found = [a for a in addresses if isinstance(a, dict)]
    for flag in ("default_billing", "default_shipping"):
        for a in found:
            if a.get(flag) is True:
                return a
    return found[0] if found else None


def _place(address: dict[str, Any] | None) -> dict[str, str]:
    """`country`/`region` for an `Age Verified`, where the age table can place them."""
    if not address:
        return {}
    country = address.get("country_id")
    region = address.get("region")
    # A customer address has region{region_code}; an order address a flat region_code.
    code = region.get("region_code") if isinstance(region, dict) else address.get("region_code")
    if not isinstance(country, str) or not country:
        return {}
    tries: list[dict[str, str]] = [{"country": country}]
    if isinstance(code, str) and code:
        tries.insert(0, {"country": country, "region": code})
    for place in tries:
        try:
            if jurisdiction_of(place["country"], place.get("region")):
                return place
        except PlaceError:
            continue
    return {}


def _base(envelope: InboxEnvelope) -> dict[str, Any]:
    return {
        "received_at": envelope.received_at,
        "source_id": envelope.source_id,
        "inbox_id": envelope.id,
        "default_region": envelope.default_region,
    }


def customer_events(envelope: InboxEnvelope, rec: _Record) -> list[CanonicalEvent]:
    cid = rec.id("id")
    email = rec.text("email", required=True)
    assert email is not None
    updated = rec.time("updated_at")
    updated_raw = rec.text("updated_at")
    created = rec.time("created_at") if rec.data.get("created_at") else None
    raw_addresses = rec.data.get("addresses") or []
    if not isinstance(raw_addresses, list):
        raise rec.fail("addresses", "expected a list")
    main = _main_address(raw_addresses)
    phone = next(
        (a.get("telephone") for a in ([main] if main else []) + raw_addresses
         if isinstance(a, dict) and a.get("telephone")),
        None,
    )
    traits: dict[str, Any] = {
        "email": email,
        "first_name": rec.text("firstname"),
        "last_name": rec.text("lastname"),
        "phone": phone,
        "address": _address(main) if main else None,
        "created_at": _iso(created) if created else None,
        "gender": GENDERS.get(rec.data["gender"]) if isinstance(rec.data.get("gender"), int)
        else None,
        "magento_group_id": rec.data.get("group_id"),
        "magento_website_id": rec.data.get("website_id"),
        "magento_store_id": rec.data.get("store_id"),
        "magento_created_in": rec.text("created_in"),
    }
    traits = {k: v for k, v in traits.items() if v is not None and v != {}}
    external = [ExternalId(CUSTOMER_NS, f"{envelope.source_id}:{cid}")]
    base = _base(envelope)
    who = {"traits": {"email": email, **({"phone": phone} if phone else {})}}
    events = [
        CanonicalEvent(
            type="identify",
            message_id=f"{SLUG}:customer:{cid}:{updated_raw}",
            timestamp=updated,
            traits=traits,
            external_ids=list(external),
            **base,
        )
    ]
    dob = rec.text("dob")
    if dob:
        # A date the customer typed into the account form (A-3: dob_provided, no more).
        events.append(
            CanonicalEvent(
                type="track",
                name="Age Verified",
                message_id=f"{SLUG}:customer:{cid}:dob:{dob[:10]}",
                timestamp=updated,
                properties={
                    "birthday": dob[:10],
                    "level": "dob_provided",
                    "method": "vendor_profile",
                    "provider": SLUG,
                    "reference": f"customer:{cid}",
                    **_place(main),
                },
                context=dict(who),
                external_ids=list(external),
                **base,
            )
        )
    extension = rec.data.get("extension_attributes")
    subscribed = extension.get("is_subscribed") if isinstance(extension, dict) else None
    if isinstance(subscribed, bool):
        events.append(_newsletter(envelope, rec, cid, email, subscribed, created, updated,
                                  updated_raw, external, who))
    return events


def _newsletter(
    envelope: InboxEnvelope,
    rec: _Record,
    cid: str,
    email: str,
    subscribed: bool,
    created: datetime | None,
    updated: datetime,
    updated_raw: str | None,
    external: list[ExternalId],
    who: dict[str, Any],
) -> CanonicalEvent:
    """`extension_attributes.is_subscribed` → one `Consent Updated` per customer and
    address for each value (C-2/C-3/C-4/C-5; see the docs for why these times)."""
    status = "granted" if subscribed else "withdrawn"
    # A grant is dated at the account's creation, so any later statement elsewhere (a
    # one-click unsubscribe, a STOP) still wins (C-3, C-5); a withdrawal is dated when
    # first seen.
    when = (created or updated) if subscribed else updated
    return CanonicalEvent(
        type="track",
        name="Consent Updated",
        message_id=f"{SLUG}:customer:{cid}:newsletter:{status}:{email.lower()}",
        timestamp=when,
        properties={
            "channel": "email",
            "purpose": "marketing",
            "status": status,
            "kind": "express",
            "identifier": email,
            "recorded_by": SLUG,
            # The vendor's evidence, as it is: no disclosure text is known (C-2).
            "vendor_field": "extension_attributes.is_subscribed",
            "vendor_value": subscribed,
            "vendor_customer_id": cid,
            "vendor_updated_at": updated_raw,
            "store_id": rec.data.get("store_id"),
            "website_id": rec.data.get("website_id"),
        },
        context=dict(who),
        external_ids=list(external),
        **_base(envelope),
    )


def _products(rec: _Record) -> list[dict[str, Any]]:
    items = rec.data.get("items") or []
    if not isinstance(items, list):
        raise rec.fail("items", "expected a list")
    out = []
    for n, raw in enumerate(items):
        item = _Record(f"{rec.where}.items[{n}]", raw)
        if item.data.get("parent_item_id") or item.data.get("parent_item"):
            continue  # the child row of a configurable/bundle: its parent carries the line
        qty = item.money("qty_ordered")
        product = {
            "product_id": item.text("product_id"),
            "sku": item.text("sku"),
            "name": item.text("name"),
            "price": item.money("price"),
            "quantity": int(qty) if qty is not None and qty.is_integer() else qty,
            "category": item.text("product_type"),
        }
        out.append({k: v for k, v in product.items() if v is not None})
    return out


def order_events(envelope: InboxEnvelope, rec: _Record) -> list[CanonicalEvent]:
    oid = rec.id("entity_id")
    state = rec.text("state", required=True)
    if state in COMPLETED_STATES:
        name, suffix = "Order Completed", "completed"
    elif state in REFUNDED_STATES:
        name, suffix = "Order Refunded", "refunded"
    elif state in CANCELLED_STATES:
        name, suffix = "Order Cancelled", "cancelled"
    else:
        return []
    created = rec.time("created_at")
    updated = rec.time("updated_at")
    email = rec.text("customer_email")
    billing = rec.data.get("billing_address")
    phone = billing.get("telephone") if isinstance(billing, dict) else None
    guest = rec.data.get("customer_is_guest") in (True, 1, "1")
    customer_id = None if guest else rec.data.get("customer_id")
    external = []
    if customer_id not in (None, "", 0):
        external = [ExternalId(CUSTOMER_NS, f"{envelope.source_id}:{rec.id('customer_id')}")]
    if not email and not phone and not external:
        raise rec.fail("customer_email", "the order names no customer, email or phone")
    discount = rec.money("discount_amount")
    properties: dict[str, Any] = {
        "order_id": rec.text("increment_id") or oid,
        "magento_order_id": oid,
        "total": rec.money("grand_total", required=True),
        "subtotal": rec.money("subtotal"),
        "tax": rec.money("tax_amount"),
        "discount": abs(discount) if discount is not None else None,
        "shipping": rec.money("shipping_amount"),
        "currency": rec.text("order_currency_code", required=True),
        "products": _products(rec),
        "state": state,
        "status": rec.text("status"),
        "store_id": rec.data.get("store_id"),
        "source_name": SLUG,
    }
    if name == "Order Refunded":
        properties["refunded"] = rec.money("total_refunded")
    properties = {k: v for k, v in properties.items() if v is not None}
    who = {k: v for k, v in (("email", email), ("phone", phone)) if v}
    base = _base(envelope)
    events = [
        CanonicalEvent(
            type="track",
            name=name,
            # One event per order and outcome: processing → complete is one purchase.
            message_id=f"{SLUG}:order:{oid}:{suffix}",
            timestamp=created if name == "Order Completed" else updated,
            properties=properties,
            context={"traits": who},
            external_ids=list(external),
            **base,
        )
    ]
    dob = rec.text("customer_dob")
    if dob and guest:
        # A guest typed a date of birth at checkout; account holders' come with the customer.
        events.append(
            CanonicalEvent(
                type="track",
                name="Age Verified",
                message_id=f"{SLUG}:order:{oid}:dob:{dob[:10]}",
                timestamp=created,
                properties={
                    "birthday": dob[:10],
                    "level": "dob_provided",
                    "method": "vendor_checkout",
                    "provider": SLUG,
                    "reference": f"order:{properties['order_id']}",
                    **_place(billing if isinstance(billing, dict) else None),
                },
                context={"traits": who},
                **base,
            )
        )
    return events


MAPPERS: dict[str, Callable[[InboxEnvelope, _Record], list[CanonicalEvent]]] = {
    "pull.customers": customer_events,
    "pull.orders": order_events,
}


def parse(envelope: InboxEnvelope) -> list[CanonicalEvent]:
    topic = topic_of(envelope, SLUG)
    mapper = MAPPERS.get(topic)
    if mapper is None:
        raise MagentoRecordError("kind", f"no magento mapping for {envelope.kind!r}")
    _, records = pulled_page(envelope)
    events: list[CanonicalEvent] = []
    for n, raw in enumerate(records):
        events.extend(mapper(envelope, _Record(f"records[{n}]", raw)))
    return events
