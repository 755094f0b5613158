"""Large backfills through the GraphQL Admin API's bulk operations.

https://shopify.dev/docs/api/usage/bulk-operations/queries: `bulkOperationRunQuery`
starts a query that Shopify runs on its side; we poll the operation until it is
`COMPLETED` and download its result, a JSONL file in which each nested connection's
nodes are lines of their own pointing at their parent (`__parentId`). One request per
few seconds instead of one per 250 records, and no leaky-bucket waits.

Each record is translated to the REST representation, so the stored pages, their
mapping and the incremental runs after it are the same as for a REST pull.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import orjson
import structlog

from guestlist.connectors._http.client import VendorClient
from guestlist.connectors.base import ConnectorError, Page
from guestlist.connectors.shopify.settings import ShopifySettings

log = structlog.get_logger(__name__)

POLL_SECONDS = 2.0
POLL_LIMIT = 3 * 3600 / POLL_SECONDS  # give up after three hours

_MONEY = "{ shopMoney { amount currencyCode } }"
QUERIES = {
    "customers": """{ customers { edges { node {
  id email phone firstName lastName state verifiedEmail tags numberOfOrders
  createdAt updatedAt amountSpent { amount currencyCode }
  defaultAddress { address1 address2 city province provinceCode zip country countryCodeV2 }
  emailMarketingConsent { marketingState marketingOptInLevel consentUpdatedAt }
  smsMarketingConsent { marketingState marketingOptInLevel consentUpdatedAt
                        consentCollectedFrom }
} } } }""",
    "orders": f"""{{ orders {{ edges {{ node {{
  id name email phone createdAt processedAt updatedAt cancelledAt test
  displayFinancialStatus sourceName currencyCode
  totalPriceSet {_MONEY} subtotalPriceSet {_MONEY} totalTaxSet {_MONEY}
  totalDiscountsSet {_MONEY} totalShippingPriceSet {_MONEY}
  retailLocation {{ id }}
  customer {{ id email phone }}
  lineItems {{ edges {{ node {{
    id title variantTitle sku vendor quantity originalUnitPriceSet {_MONEY}
    product {{ id }} variant {{ id }}
  }} }} }}
}} }} }} }}""",
}

RUN = """mutation run($query: String!) {
  bulkOperationRunQuery(query: $query) {
    bulkOperation { id status }
    userErrors { field message }
  }
}"""
POLL = """query poll($id: ID!) {
  node(id: $id) { ... on BulkOperation { id status errorCode objectCount url } }
}"""


def graphql(
    client: VendorClient, settings: ShopifySettings, query: str, variables: dict[str, Any]
) -> dict[str, Any]:
    response = client.post(
        f"/admin/api/{settings.api_version}/graphql.json",
        json={"query": query, "variables": variables},
    )
    body = orjson.loads(response.content)
    if body.get("errors"):
        raise ConnectorError(f"shopify graphql: {str(body['errors'])[:300]}")
    data: dict[str, Any] = body.get("data") or {}
    return data


def run_bulk_query(
    client: VendorClient,
    settings: ShopifySettings,
    stream: str,
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> str | None:
    """Start the stream's bulk query and wait for it; its JSONL URL (None: no records)."""
    started = graphql(client, settings, RUN, {"query": QUERIES[stream]})
    outcome = started.get("bulkOperationRunQuery") or {}
    if outcome.get("userErrors"):
        raise ConnectorError(f"shopify bulk {stream}: {outcome['userErrors']}")
    operation = outcome.get("bulkOperation") or {}
    op_id = operation.get("id")
    if not op_id:
        raise ConnectorError(f"shopify bulk {stream}: no operation id in {started}")
    polls = 0
    while True:
        node = graphql(client, settings, POLL, {"id": op_id}).get("node") or {}
        status = node.get("status")
        if status == "COMPLETED":
            log.info("shopify bulk operation done", stream=stream, id=op_id,
                     objects=node.get("objectCount"))
            url = node.get("url")
            return str(url) if url else None
        if status in ("FAILED", "CANCELED", "CANCELING", "EXPIRED"):
            raise ConnectorError(
                f"shopify bulk {stream} {op_id}: {status} {node.get('errorCode') or ''}".strip()
            )
        polls += 1
        if polls > POLL_LIMIT:
            raise ConnectorError(f"shopify bulk {stream} {op_id}: still {status}, gave up")
        sleep(POLL_SECONDS)


def _numeric_id(gid: Any) -> int | None:
    if not isinstance(gid, str) or not gid:
        return None
    tail = gid.rsplit("/", 1)[-1].split("?", 1)[0]
    return int(tail) if tail.isdigit() else None


def _amount(money_set: Any) -> str | None:
    if not isinstance(money_set, dict):
        return None
    amount = (money_set.get("shopMoney") or {}).get("amount")
    return str(amount) if amount is not None else None


def _consent(consent: Any, *, sms: bool) -> dict[str, Any] | None:
    if not isinstance(consent, dict):
        return None
    out = {
        "state": str(consent.get("marketingState") or "").lower() or None,
        "opt_in_level": str(consent.get("marketingOptInLevel") or "").lower() or None,
        "consent_updated_at": consent.get("consentUpdatedAt"),
    }
    if sms:
        out["consent_collected_from"] = consent.get("consentCollectedFrom")
    return out


def rest_customer(node: dict[str, Any]) -> dict[str, Any]:
    """A GraphQL `Customer` in the REST representation the mapping reads."""
    address = node.get("defaultAddress")
    spent = node.get("amountSpent") or {}
    return {
        "id": _numeric_id(node.get("id")),
        "email": node.get("email"),
        "phone": node.get("phone"),
        "first_name": node.get("firstName"),
        "last_name": node.get("lastName"),
        "state": str(node.get("state") or "").lower() or None,
        "verified_email": node.get("verifiedEmail"),
        "tags": ", ".join(node.get("tags") or []),
        "orders_count": int(node["numberOfOrders"]) if node.get("numberOfOrders") else 0,
        "total_spent": spent.get("amount"),
        "currency": spent.get("currencyCode"),
        "created_at": node.get("createdAt"),
        "updated_at": node.get("updatedAt"),
        "default_address": None if not isinstance(address, dict) else {
            "address1": address.get("address1"),
            "address2": address.get("address2"),
            "city": address.get("city"),
            "province": address.get("province"),
            "province_code": address.get("provinceCode"),
            "zip": address.get("zip"),
            "country": address.get("country"),
            "country_code": address.get("countryCodeV2"),
        },
        "email_marketing_consent": _consent(node.get("emailMarketingConsent"), sms=False),
        "sms_marketing_consent": _consent(node.get("smsMarketingConsent"), sms=True),
    }


def rest_line_item(node: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": _numeric_id(node.get("id")),
        "title": node.get("title"),
        "variant_title": node.get("variantTitle"),
        "sku": node.get("sku"),
        "vendor": node.get("vendor"),
        "quantity": node.get("quantity"),
        "price": _amount(node.get("originalUnitPriceSet")),
        "product_id": _numeric_id((node.get("product") or {}).get("id")),
        "variant_id": _numeric_id((node.get("variant") or {}).get("id")),
    }


def rest_order(node: dict[str, Any]) -> dict[str, Any]:
    """A GraphQL `Order` (its line items gathered) in the REST representation."""
    customer = node.get("customer")
    location = node.get("retailLocation")
    return {
        "id": _numeric_id(node.get("id")),
        "name": node.get("name"),
        "email": node.get("email"),
        "phone": node.get("phone"),
        "created_at": node.get("createdAt"),
        "processed_at": node.get("processedAt"),
        "updated_at": node.get("updatedAt"),
        "cancelled_at": node.get("cancelledAt"),
        "test": node.get("test"),
        "financial_status": str(node.get("displayFinancialStatus") or "").lower() or None,
        "source_name": node.get("sourceName"),
        "currency": node.get("currencyCode"),
        "total_price": _amount(node.get("totalPriceSet")),
        "subtotal_price": _amount(node.get("subtotalPriceSet")),
        "total_tax": _amount(node.get("totalTaxSet")),
        "total_discounts": _amount(node.get("totalDiscountsSet")),
        "total_shipping_price_set": node.get("totalShippingPriceSet"),
        "location_id": _numeric_id(location.get("id")) if isinstance(location, dict) else None,
        "customer": None if not isinstance(customer, dict) else {
            "id": _numeric_id(customer.get("id")),
            "email": customer.get("email"),
            "phone": customer.get("phone"),
        },
        "line_items": [rest_line_item(item) for item in node.get("lineItems", [])],
    }


def jsonl_records(lines: Iterator[str], stream: str) -> Iterator[dict[str, Any]]:
    """The stream's top-level records in REST form; child lines (`__parentId`) follow
    their parent in the file, so a parent is complete when the next one starts."""
    current: dict[str, Any] | None = None
    for raw in lines:
        if not raw.strip():
            continue
        node = orjson.loads(raw)
        if stream == "orders" and node.get("__parentId"):
            if current is None or node["__parentId"] != current.get("id"):
                raise ConnectorError("shopify bulk orders: a line item before its order")
            current.setdefault("lineItems", []).append(node)
            continue
        if current is not None:
            yield _translate(current, stream)
        current = node
    if current is not None:
        yield _translate(current, stream)


def _translate(node: dict[str, Any], stream: str) -> dict[str, Any]:
    return rest_customer(node) if stream == "customers" else rest_order(node)


def bulk_pages(
    client: VendorClient,
    settings: ShopifySettings,
    stream: str,
    *,
    url: str | None,
    skip: int,
    page_size: int,
    checkpoint: Callable[[str, int], str],
) -> Iterator[Page]:
    """Pages of a finished bulk operation's file, from record `skip` on. `checkpoint(url,
    records done)` says how to resume; the last page hands on to REST runs."""
    if url is None:
        yield Page([], None)
        return
    # The file is on Shopify's storage (a signed URL): no access token, no rate limit.
    with httpx.Client(timeout=60.0) as storage, storage.stream("GET", url) as response:
        if response.status_code != 200:
            raise ConnectorError(
                f"shopify bulk {stream}: the result file answered {response.status_code}"
            )
        page: list[dict[str, Any]] = []
        done = 0
        for record in jsonl_records(response.iter_lines(), stream):
            done += 1
            if done <= skip:
                continue
            page.append(record)
            if len(page) == page_size:
                yield Page(page, checkpoint(url, done))
                page = []
        yield Page(page, None)
