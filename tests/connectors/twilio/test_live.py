"""Against a live `guestlist serve` (a subprocess: uvicorn, the worker, real HTTP),
requests signed with the official SDK's RequestValidator, as Twilio signs them.

The server sits "behind a proxy": GUESTLIST_PUBLIC_URL is https://shop.example, the
URL Twilio would call, while the test reaches it on http://127.0.0.1:<port>. So a
signature made for the public URL (with or without :443) passes, and one made for the
address the server actually listens on fails. One server per backend: starting one
costs seconds.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, select

from guestlist.consent.twiml import EMPTY_RESPONSE
from guestlist.keys import create_key
from guestlist.store.tables import inbox
from tests.conftest import LiveServer
from tests.connectors.helpers import add_connection
from tests.connectors.twilio.helpers import (
    PHONE,
    customer,
    form,
    inbound_events,
    message,
    profile_with,
    records_for,
    settings,
    signed,
    status_of,
)

PUBLIC = "https://shop.example"


@pytest.mark.slow
def test_keywords_and_messages_on_a_live_server(
    engine: Engine, live_server_factory: type[LiveServer]
) -> None:  # SMS-2, SMS-2a, SMS-3, SMS-4, SMS-5, SMS-7, C-1
    with engine.begin() as conn:
        admin = create_key(conn, "admin", None)[1]
    ann = customer(engine, "ann", PHONE, "sms", "whatsapp")
    server = live_server_factory(env={"GUESTLIST_PUBLIC_URL": PUBLIC}).start()
    http = httpx.Client(base_url=server.url, timeout=30)
    cid = add_connection(
        http,
        {"Authorization": f"Bearer {admin}"},
        "twilio",
        "Short code",
        settings(twilio_answers_keywords=False),  # we answer every keyword
    )["id"]
    path = f"/hooks/twilio/{cid}"

    def text(body: str, sid: str, *, signed_for: str = PUBLIC + path, **kw: Any) -> Any:
        params = message(body, sid=sid, **kw)
        return http.post(path, content=form(params), headers=signed(signed_for, params))

    def reply(r: Any) -> str:
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("application/xml")
        return str(r.text)

    # Behind the proxy: the public URL signs, with or without its default port; the
    # server's own address does not.
    internal = text("STOP", "SM" + "0" * 32, signed_for=f"{server.url}{path}")
    assert internal.status_code == 401
    assert records_for(engine) == [] or status_of(engine, ann, "sms") == "granted"

    stop = reply(text("STOP", "SM" + "1" * 32, signed_for=f"{PUBLIC}:443{path}"))
    assert "You are unsubscribed" in stop and "Reply START to resubscribe" in stop  # SMS-5
    assert status_of(engine, ann, "sms") == "withdrawn"  # SMS-2
    assert status_of(engine, ann, "whatsapp") == "granted"  # SMS-7
    assert reply(text("STOP", "SM" + "1" * 32)) == stop  # a redelivery: same answer...
    assert len(records_for(engine, "SM" + "1" * 32)) == 2  # ...recorded once

    start = reply(text("START", "SM" + "2" * 32))
    assert "You are subscribed to marketing messages" in start  # SMS-3
    assert status_of(engine, ann, "sms") == "granted"

    help_text = reply(text("HELP", "SM" + "3" * 32))  # SMS-4
    assert "Reply STOP to opt out" in help_text and "rates may apply" in help_text

    plain = reply(text("stop texting me", "SM" + "4" * 32))  # SMS-2a
    assert "You are unsubscribed" in plain
    assert status_of(engine, ann, "sms") == "withdrawn"
    assert all(r.needs_review for r in records_for(engine, "SM" + "4" * 32))

    wa = reply(text("STOP", "SM" + "5" * 32, whatsapp=True))
    assert "You are unsubscribed" in wa
    assert status_of(engine, ann, "whatsapp") == "withdrawn"  # SMS-7

    assert reply(text("Open on Sunday?", "SM" + "6" * 32, sender="+14155550142")) == (
        EMPTY_RESPONSE
    )
    deadline = time.monotonic() + 30  # the server's own worker builds the profile
    while time.monotonic() < deadline and profile_with(engine, "+14155550142") is None:
        time.sleep(0.2)
    pid = profile_with(engine, "+14155550142")
    assert pid is not None
    (event,) = inbound_events(engine, pid)
    assert event.properties["body"] == "Open on Sunday?"
    assert records_for(engine, "SM" + "6" * 32) == []  # an inquiry grants nothing
    # Keyword messages became events too, and added no record of their own (C-1).
    while time.monotonic() < deadline and len(inbound_events(engine, ann)) < 5:
        time.sleep(0.2)
    assert len(inbound_events(engine, ann)) == 5  # SM1..SM5; the refused SM0 is not
    assert len(records_for(engine, "SM" + "1" * 32)) == 2

    # Deliveries arriving together are stored together (group commit): each still gets
    # its own answer, and a retry racing its original is stored once.
    def concurrent(i: int) -> tuple[int, str]:
        keyword = i % 4 == 0
        body = "HELP" if keyword else f"question {i}"
        r = text(body, f"SM{i % 30:032d}", sender=f"+1415555{i % 30:04d}")
        return i, reply(r)

    with ThreadPoolExecutor(max_workers=16) as pool:
        answers = dict(pool.map(concurrent, range(100, 160)))
    for i, answer in answers.items():
        assert ("Reply STOP to opt out" in answer) == (i % 4 == 0), (i, answer)
    with engine.connect() as conn:
        keys = list(conn.scalars(select(inbox.c.idempotency_key).where(
            inbox.c.idempotency_key.like("SM000%"))))
    assert sorted(keys) == sorted({f"SM{i % 30:032d}" for i in range(100, 160)})
    http.close()
