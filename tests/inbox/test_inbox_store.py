"""Inbox writes on SQLite and PostgreSQL: one row per accept, a redelivery stored once."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine, func, select

from guestlist.inbox.store import (
    InboxEnvelope,
    NewEnvelope,
    accept,
    accept_many,
    load_envelopes,
)
from guestlist.keys import ensure_source
from guestlist.store.tables import inbox

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(inbox)).scalar_one())


def test_accept_stores_a_pending_row_as_given(engine: Engine) -> None:
    with engine.begin() as conn:
        source_id = ensure_source(conn, "web", default_region="GB")
        inbox_id = accept(
            conn,
            source_id=source_id,
            kind="tracking.track",
            headers={"user-agent": "test/1"},
            body=b'{"event":"x"}',
            received_at=T0,
        )
    assert isinstance(inbox_id, int)
    with engine.connect() as conn:
        row = conn.execute(select(inbox)).one()
        [env] = load_envelopes(conn, [inbox_id])
    assert row.status == "pending"
    assert row.attempts == 0
    assert row.idempotency_key is None
    assert env == InboxEnvelope(
        id=inbox_id,
        source_id=source_id,
        kind="tracking.track",
        headers={"user-agent": "test/1"},
        body=b'{"event":"x"}',
        received_at=T0,
        default_region="GB",
    )


def test_accept_defaults_received_at_to_now(engine: Engine) -> None:
    before = datetime.now(UTC)
    with engine.begin() as conn:
        source_id = ensure_source(conn, "web")
        inbox_id = accept(conn, source_id=source_id, kind="k", headers={}, body=b"{}")
        [env] = load_envelopes(conn, [inbox_id or 0])
    assert before <= env.received_at <= datetime.now(UTC)


def test_a_redelivery_with_the_same_idempotency_key_is_stored_once(engine: Engine) -> None:
    with engine.begin() as conn:
        web = ensure_source(conn, "web")
        shop = ensure_source(conn, "shop")
        first = accept(conn, source_id=web, kind="k", headers={}, body=b"1",
                       idempotency_key="evt_1")
    with engine.begin() as conn:
        again = accept(conn, source_id=web, kind="k", headers={}, body=b"2",
                       idempotency_key="evt_1")
        other_source = accept(conn, source_id=shop, kind="k", headers={}, body=b"3",
                              idempotency_key="evt_1")
        other_key = accept(conn, source_id=web, kind="k", headers={}, body=b"4",
                           idempotency_key="evt_2")
    assert first is not None
    assert again is None
    assert other_source is not None and other_key is not None
    assert count(engine) == 3
    with engine.connect() as conn:
        bodies = conn.execute(
            select(inbox.c.body).where(inbox.c.idempotency_key == "evt_1").order_by(inbox.c.id)
        ).scalars().all()
    assert [bytes(b) for b in bodies] == [b"1", b"3"]


def test_envelopes_without_idempotency_key_are_never_deduplicated(engine: Engine) -> None:
    with engine.begin() as conn:
        web = ensure_source(conn, "web")
        ids = [accept(conn, source_id=web, kind="k", headers={}, body=b"{}") for _ in range(3)]
    assert len(set(ids)) == 3 and None not in ids
    assert count(engine) == 3


def test_load_envelopes_returns_the_requested_ones_in_id_order(engine: Engine) -> None:
    with engine.begin() as conn:
        web = ensure_source(conn, "web")
        ids = [
            accept(conn, source_id=web, kind=f"k{i}", headers={}, body=b"{}") for i in range(4)
        ]
        assert load_envelopes(conn, []) == []
        loaded = load_envelopes(conn, [ids[3] or 0, ids[1] or 0])
    assert [e.kind for e in loaded] == ["k1", "k3"]


def test_accept_many_answers_as_accept_would(engine: Engine) -> None:
    with engine.begin() as conn:
        web = ensure_source(conn, "web")
        shop = ensure_source(conn, "shop")
        accept(conn, source_id=web, kind="k", headers={}, body=b"old", idempotency_key="a")

    def envelope(source_id: int, key: str | None, body: bytes) -> NewEnvelope:
        return NewEnvelope(source_id, "k", {"x-id": str(key)}, body, key, T0)

    with engine.begin() as conn:
        ids = accept_many(
            conn,
            [
                envelope(web, "a", b"redelivered"),  # stored before
                envelope(web, "b", b"b1"),
                envelope(shop, "a", b"other source"),  # keys are per source
                envelope(web, None, b"no key 1"),
                envelope(web, "b", b"b2"),  # again in the same call
                envelope(web, None, b"no key 2"),
            ],
        )
    assert ids[0] is None and ids[4] is None
    new = [i for i in ids if i is not None]
    assert len(new) == len(set(new)) == 4
    with engine.connect() as conn:
        bodies = {
            int(r.id): (r.source_id, r.idempotency_key, bytes(r.body), r.headers)
            for r in conn.execute(select(inbox))
        }
    assert [bodies[i][:3] for i in new] == [
        (web, "b", b"b1"),
        (shop, "a", b"other source"),
        (web, None, b"no key 1"),
        (web, None, b"no key 2"),
    ]
    assert bodies[new[0]][3] == {"x-id": "b"}
    assert len(bodies) == 5  # with the earlier "a"
    with engine.connect() as conn:
        assert [e.received_at for e in load_envelopes(conn, new)] == [T0] * 4
