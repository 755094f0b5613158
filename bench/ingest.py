"""Ingest figures, on the embedded SQLite and on PostgreSQL.

    python bench/ingest.py [--events 100000] [--import-rows 1000000] [--backends sqlite,postgresql]
                           [--no-http]

Prints, per database:
- events/s accepted by POST /v1/batch over real HTTP (uvicorn, `guestlist serve --no-worker`),
- events/s processed into profiles by one worker (the same events),
- the raw executemany insert rate of the same rows into the events table (the ceiling),
- `guestlist import` of N customers: seconds and peak memory of the process.
Goals (issue 2): ≥ 20,000 accepted/s, ≥ 10,000 processed/s, 1,000,000 imported ≤ 120 s
in ≤ 1 GiB.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import csv
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
from sqlalchemy import create_engine, func, insert, select, text

from guestlist.inbox.store import accept
from guestlist.keys import create_key, ensure_source
from guestlist.pipeline import process_all
from guestlist.runtime import tune_gc
from guestlist.store.engine import make_engine
from guestlist.store.migrate import upgrade
from guestlist.store.tables import events, inbox, profiles
from loadgen import post_all  # type: ignore[import-not-found]

PG_ADMIN = os.environ.get("GUESTLIST_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1/test")
BATCH = 100
T0 = datetime(2026, 6, 1, tzinfo=UTC)


def make_batches(n_events: int, users: int, seed: int = 1) -> list[bytes]:
    """Realistic mixed traffic: identify with email/phone, track orders and pages."""
    rng = random.Random(seed)
    bodies = []
    for b in range(0, n_events, BATCH):
        batch: list[dict[str, Any]] = []
        for i in range(b, min(b + BATCH, n_events)):
            u = rng.randrange(users)
            ts = (T0 + timedelta(seconds=i)).isoformat()
            kind = rng.random()
            if kind < 0.3:
                msg: dict[str, Any] = {
                    "type": "identify",
                    "userId": f"u{u}",
                    "traits": {
                        "email": f"user{u}@example.org",
                        "phone": f"+1415{200 + u % 800:03d}{u % 10**4:04d}",
                        "firstName": "Sam",
                        "plan": rng.choice(["a", "b"]),
                    },
                }
            elif kind < 0.7:
                msg = {
                    "type": "track",
                    "userId": f"u{u}",
                    "event": "Order Completed",
                    "properties": {
                        "total": rng.randrange(5, 200),
                        "currency": "USD",
                        "products": [{"category": "bourbon", "price": 30}],
                    },
                }
            else:
                msg = {
                    "type": "page",
                    "anonymousId": f"a{u}",
                    "name": "Product",
                    "properties": {"url": "https://shop.example/p/1"},
                }
            msg["messageId"] = f"bench-{seed}-{i}"
            msg["timestamp"] = ts
            batch.append(msg)
        bodies.append(orjson.dumps({"batch": batch}))
    return bodies


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _send(url: str, key: str, bodies: list[bytes], concurrency: int) -> None:
    auth = base64.b64encode(f"{key}:".encode()).decode()
    headers = {"Authorization": f"Basic {auth}", "Content-Type": "application/json"}
    asyncio.run(post_all(url, [(body, headers) for body in bodies], concurrency))


def bench_accept(db_url: str, key: str, bodies: list[bytes]) -> float:
    port = free_port()
    env = {**os.environ, "GUESTLIST_DATABASE_URL": db_url}
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "guestlist.cli",
            "serve",
            "--no-worker",
            "--no-migrate",
            "--port",
            str(port),
        ],
        env=env,
        stderr=subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                if httpx.get(f"{base}/health").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        _send(f"{base}/v1/batch", key, bodies[:20], 8)  # warm up
        start = time.perf_counter()
        _send(f"{base}/v1/batch", key, bodies[20:], 16)
        elapsed = time.perf_counter() - start
    finally:
        server.terminate()
        server.wait()
    return sum(len(orjson.loads(b)["batch"]) for b in bodies[20:]) / elapsed


def bench_process(db_url: str) -> tuple[float, int]:
    engine = make_engine(db_url)
    with engine.connect() as conn:
        pending = conn.scalar(select(func.count()).where(inbox.c.status == "pending"))
    start = time.perf_counter()
    process_all(engine)
    elapsed = time.perf_counter() - start
    with engine.connect() as conn:
        n_events = int(conn.scalar(select(func.count()).select_from(events)) or 0)
        n_profiles = int(conn.scalar(select(func.count()).select_from(profiles)) or 0)
    engine.dispose()
    print(f"    ({pending} envelopes → {n_events} events, {n_profiles} profiles)")
    return n_events / elapsed, n_events


def bench_raw_insert(db_url: str, n: int) -> float:
    engine = make_engine(db_url)
    now = datetime.now(UTC)
    rows = [
        {
            "profile_id": 1,
            "source_id": 1,
            "message_id": f"raw-{uuid.uuid4().hex}",
            "type": "track",
            "name": "Order Completed",
            "properties": {"total": i % 200, "currency": "USD"},
            "traits": None,
            "context": None,
            "user_id": f"u{i}",
            "anonymous_id": None,
            "issues": None,
            "timestamp": now,
            "received_at": now,
            "inbox_id": None,
        }
        for i in range(n)
    ]
    start = time.perf_counter()
    with engine.begin() as conn:
        for i in range(0, n, 5000):
            conn.execute(insert(events), rows[i : i + 5000])
    elapsed = time.perf_counter() - start
    with engine.begin() as conn:
        conn.execute(events.delete().where(events.c.message_id.like("raw-%")))
    engine.dispose()
    return n / elapsed


def write_customers(path: Path, n: int) -> None:
    rng = random.Random(3)
    with path.open("w", newline="") as handle:
        w = csv.writer(handle)
        w.writerow(["email", "phone", "first_name", "last_name", "birthday", "city", "tier"])
        for i in range(n):
            w.writerow(
                [
                    f"Customer.{i}@Example.org",
                    # valid NANP numbers: exchange 200-999
                    f"+1{rng.choice(['416', '604', '512'])}{200 + i % 800}{i // 800 % 10**4:04d}",
                    "Alex",
                    f"Name{i}",
                    f"19{50 + i % 50}-0{1 + i % 9}-1{i % 9}",
                    rng.choice(["Austin", "Toronto"]),
                    rng.choice(["gold", "silver"]),
                ]
            )


def bench_import(db_url: str, rows: int, workdir: Path) -> tuple[float, float]:
    path = workdir / f"customers_{rows}.csv"
    if not path.exists():
        write_customers(path, rows)
    env = {**os.environ, "GUESTLIST_DATABASE_URL": db_url}
    # The import's own peak RSS, printed by the process itself as it exits.
    runner = (
        "import resource, sys\n"
        "from guestlist.cli import app\n"
        "try:\n    app(sys.argv[1:])\n"
        "finally:\n"
        "    print('PEAK', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
    )
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", runner, "import", str(path), "--source", "bench-import"],
        env=env,
        capture_output=True,
        text=True,
    )
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-2000:])
    peak_kib = int(proc.stderr.rsplit("PEAK", 1)[1].split()[0])
    return elapsed, peak_kib / 1024


def run_backend(name: str, db_url: str, args: argparse.Namespace, workdir: Path) -> None:
    print(f"== {name}")
    upgrade(db_url)
    engine = make_engine(db_url)
    with engine.begin() as conn:
        _, key = create_key(conn, "write", "bench")
    engine.dispose()
    bodies = make_batches(args.events, users=args.events // 10)
    if args.no_http:  # the same envelopes stored directly: the worker's figure alone
        engine = make_engine(db_url)
        with engine.begin() as conn:
            source_id = ensure_source(conn, "bench", kind="tracking")
            for i, body in enumerate(bodies):
                accept(conn, source_id=source_id, kind="tracking.batch", headers={},
                       body=body, idempotency_key=f"bench-{i}")  # fmt: skip
        engine.dispose()
    else:
        accepted = bench_accept(db_url, key, bodies)
        print(f"  accepted  /v1/batch over HTTP : {accepted:>10,.0f} events/s  (goal ≥ 20,000)")
    processed, n = bench_process(db_url)
    print(f"  processed by one worker        : {processed:>10,.0f} events/s  (goal ≥ 10,000)")
    raw = bench_raw_insert(db_url, n)
    print(f"  raw executemany ceiling        : {raw:>10,.0f} rows/s")
    if args.import_rows:
        seconds, peak_mib = bench_import(db_url, args.import_rows, workdir)
        print(
            f"  import {args.import_rows:,} customers     : {seconds:>10.1f} s, "
            f"peak RSS {peak_mib:,.0f} MiB  (goal ≤ 120 s, ≤ 1024 MiB)"
        )


def main() -> None:
    tune_gc()  # as `guestlist worker` does
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--import-rows", type=int, default=1_000_000)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--no-http", action="store_true",
                        help="store the events in the inbox directly (no accept figure)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        for backend in args.backends.split(","):
            if backend == "sqlite":
                run_backend(
                    "SQLite (embedded, WAL)", f"sqlite:///{workdir}/bench.db", args, workdir
                )
            else:
                name = f"guestlist_bench_{uuid.uuid4().hex[:8]}"
                admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
                with admin.connect() as conn:
                    conn.execute(text(f'CREATE DATABASE "{name}"'))
                try:
                    url = PG_ADMIN.rsplit("/", 1)[0] + "/" + name
                    run_backend("PostgreSQL", url, args, workdir)
                finally:
                    with admin.connect() as conn:
                        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


if __name__ == "__main__":
    main()
