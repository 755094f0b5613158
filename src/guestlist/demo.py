"""Sample data for `guestlist demo`: a liquor and vape shop's customers, arriving by
several doors (web checkout, the till, a newsletter form, text messages), with the
same people showing up under different spellings so that merges really happen."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from rich.console import Console
from sqlalchemy import Engine, func, select

from guestlist.inbox.store import accept
from guestlist.keys import create_key, ensure_source
from guestlist.pipeline import process_all
from guestlist.segments.catalog import SegmentInput, create_segment, get_segment
from guestlist.segments.membership import evaluate_segment
from guestlist.segments.text import text_to_json
from guestlist.store.engine import get_engine
from guestlist.store.tables import profile_merges, profiles

FIRST = """Ava Liam Noah Emma Olivia Mia Lucas Ethan Zoe Chloe Jack Leo Grace Ruby Owen Ella
Henry Isla Mason Nora Aria Caleb Maya Theo Ivy Jonah Luna Eli Hazel Finn""".split()
LAST = """Smith Johnson Brown Tremblay Martin Roy Garcia Miller Wilson Moore Taylor Lee White
Harris Clark Lewis Walker Young King Wright Scott Green Baker Adams Nelson Hill Campbell
Mitchell Roberts Carter""".split()
DOMAINS = ("gmail.com", "yahoo.com", "outlook.com", "icloud.com", "shaw.ca", "hotmail.com")
PLACES = (
    ("Toronto", "ON", "CA", "416"),
    ("Vancouver", "BC", "CA", "604"),
    ("Austin", "TX", "US", "512"),
    ("Denver", "CO", "US", "303"),
    ("Portland", "OR", "US", "503"),
    ("Chicago", "IL", "US", "312"),
)
PRODUCTS = (
    ("Buffalo Trace", "bourbon", 34.99),
    ("Espolon Blanco", "tequila", 29.99),
    ("Malbec Reserve", "wine", 18.5),
    ("Hazy IPA 6-pack", "beer", 14.99),
    ("Mango Pods x4", "vape", 19.99),
    ("Four Roses", "bourbon", 39.99),
    ("Casamigos Reposado", "tequila", 64.99),
    ("Prosecco", "wine", 16.0),
)
NOW = datetime(2026, 11, 1, 12, tzinfo=UTC)


def _person(rng: random.Random, n: int) -> dict[str, Any]:
    first, last = rng.choice(FIRST), rng.choice(LAST)
    city, region, country, area = rng.choice(PLACES)
    born = datetime(1950, 1, 1) + timedelta(days=rng.randrange(365 * 55))
    return {
        "n": n,
        "first_name": first,
        "last_name": last,
        "email": f"{first.lower()}.{last.lower()}{n}@{rng.choice(DOMAINS)}",
        "phone": f"+1{area}555{n % 10000:04d}",
        "birthday": born.date().isoformat(),
        "address": {"city": city, "state": region, "country": country},
    }


def _messy_email(rng: random.Random, email: str) -> str:
    """The same address as a cashier or a phone keyboard types it."""
    local, _, domain = email.partition("@")
    choice = rng.random()
    if domain == "gmail.com" and choice < 0.4:
        return local.replace(".", "") + "@" + domain
    if choice < 0.7:
        return f"{local}+shop@{domain}".upper()
    return f" {local.capitalize()}@{domain.upper()} "


def _ts(rng: random.Random, days: int = 400) -> str:
    return (NOW - timedelta(minutes=rng.randrange(days * 24 * 60))).isoformat()


def demo_batches(customers: int, seed: int = 7) -> dict[str, list[dict[str, Any]]]:
    """Segment messages per source name."""
    rng = random.Random(seed)
    people = [_person(rng, n) for n in range(customers)]
    # A tenth of households share one phone between two people with different birthdays.
    for a, b in zip(people[::20], people[1::20], strict=False):
        b["phone"], b["last_name"] = a["phone"], a["last_name"]
    web: list[dict[str, Any]] = []
    pos: list[dict[str, Any]] = []
    news: list[dict[str, Any]] = []
    sms: list[dict[str, Any]] = []
    for p in people:
        n = p["n"]
        if rng.random() < 0.6:  # has a web account
            web.append(
                {
                    "type": "identify",
                    "userId": f"web-{n}",
                    "timestamp": _ts(rng),
                    "traits": {
                        "email": p["email"],
                        "firstName": p["first_name"],
                        "lastName": p["last_name"],
                        "address": p["address"],
                    },
                }
            )
            for _ in range(rng.randrange(0, 4)):
                web.append(_order(rng, {"userId": f"web-{n}"}, "web"))
        if rng.random() < 0.5:  # bought in store; the cashier typed the email
            pos.append(
                {
                    "type": "identify",
                    "anonymousId": f"pos-card-{n}",
                    "timestamp": _ts(rng),
                    "traits": {
                        "email": _messy_email(rng, p["email"]),
                        "phone": p["phone"],
                        "first_name": p["first_name"],
                        "last_name": p["last_name"],
                        "birthday": p["birthday"],
                    },
                    "context": {
                        "externalIds": [
                            {"id": str(10_000 + n), "type": "pos:customer", "collection": "users"}
                        ]
                    },
                }
            )
            for _ in range(rng.randrange(1, 4)):
                pos.append(_order(rng, {"anonymousId": f"pos-card-{n}"}, "pos"))
        if rng.random() < 0.3:  # newsletter form, sometimes with a placeholder
            email = p["email"] if rng.random() > 0.03 else "noemail@store.com"
            news.append(
                {
                    "type": "identify",
                    "anonymousId": f"form-{n}",
                    "timestamp": _ts(rng),
                    "traits": {"email": email, "firstName": p["first_name"]},
                }
            )
        if rng.random() < 0.2:  # texted the shop
            sms.append(
                {
                    "type": "track",
                    "event": "Inbound Message",
                    "anonymousId": f"sms-{n}",
                    "timestamp": _ts(rng, 60),
                    "properties": {"body": "Open Sunday?"},
                    "context": {"traits": {"phone": p["phone"]}},
                }
            )
    # Arrival order matters for the story: people who signed up or texted first are
    # merged when the till later links their email and phone.
    return {"demo-newsletter": news, "demo-sms": sms, "demo-pos": pos, "demo-website": web}


DEMO_SEGMENTS = (
    ("recent-buyers", "Bought in the last 90 days", 'count("Order Completed" within 90d) >= 1'),
    ("big-spenders", "Spent over $150", 'sum("Order Completed".total) > 150'),
    (
        "lapsed-regulars",
        "Regulars gone quiet",
        'count("Order Completed") >= 2 and not in_segment("recent-buyers")',
    ),
)


def _order(rng: random.Random, who: dict[str, Any], channel: str) -> dict[str, Any]:
    items = [rng.choice(PRODUCTS) for _ in range(rng.randrange(1, 4))]
    return {
        "type": "track",
        "event": "Order Completed",
        "timestamp": _ts(rng),
        **who,
        "properties": {
            "order_id": f"{channel}-{rng.randrange(10**9)}",
            "total": round(sum(price for _, _, price in items), 2),
            "currency": "USD",
            "source_name": channel,
            "products": [
                {"name": name, "category": cat, "price": price} for name, cat, price in items
            ],
        },
    }


def load_demo(
    customers: int = 3000, console: Console | None = None, engine: Engine | None = None
) -> dict[str, str]:
    """Load the sample data once (a second run adds nothing) and create fresh keys."""
    engine = engine or get_engine()
    console = console or Console(stderr=True)
    batches = demo_batches(customers)
    with console.status("building profiles…"):
        for name, messages in batches.items():
            with engine.begin() as conn:
                source_id = ensure_source(conn, name)
                for i in range(0, len(messages), 500):
                    accept(
                        conn,
                        source_id=source_id,
                        kind="tracking.batch",
                        headers={"x-guestlist-demo": "1"},
                        body=orjson.dumps({"batch": messages[i : i + 500]}),
                        idempotency_key=f"demo:{customers}:{i}",
                    )
            process_all(engine)
    with console.status("evaluating segments…"), engine.begin() as conn:
        for slug, name, rule in DEMO_SEGMENTS:
            if get_segment(conn, slug) is None:
                create_segment(
                    conn,
                    SegmentInput(name=name, slug=slug, rule=text_to_json(rule)),
                    actor="demo",
                )
                evaluate_segment(conn, slug)
    with engine.begin() as conn:
        live = conn.scalar(select(func.count()).where(profiles.c.merged_into.is_(None)))
        merges = conn.scalar(select(func.count()).select_from(profile_merges))
        _, write = create_key(conn, "write", "demo-website")
        _, admin = create_key(conn, "admin", None)
    sent = sum(len(m) for m in batches.values())
    console.print(
        f"demo data: {sent} events from {len(batches)} sources → {live} profiles ({merges} merges)"
    )
    return {"write": write, "admin": admin}
