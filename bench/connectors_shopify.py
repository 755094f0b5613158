"""Shopify backfill figures: the fake Admin API → `backfill()` → the pipeline → profiles.

    python bench/connectors_shopify.py [--customers 100000] [--orders 500000]
                                       [--database-url URL] [--limit-on] [--bulk] [--apart]

Serves tests/fakes/shopify.py (in its own process, so it does not share our GIL) with
N customers and M orders, runs the real `backfill()` in a process of its own into a
fresh database while this process drains the inbox with `process_pending` (what
`guestlist connections backfill` does; `--fetch-thread` fetches in a thread), and prints the wall
time, records/s, where the time went, and the counts (which must be N profiles and M
`Order Completed` events: the fake's orders are all paid).

`--limit-on` (default 2,000 customers, 10,000 orders) keeps the fake's leaky bucket on
(40 requests, 2/s), starts it at 39/40 (another app's burst), and prints how often the
client was throttled (must be 0) and the fullest the bucket got.

`--apart` runs the backfill to its end before processing, to see each side's cost.
`--bulk` backfills through GraphQL bulk operations (one JSONL file per stream).

Without `--database-url`, a fresh SQLite file in a temporary directory. With a
PostgreSQL URL, pass an empty database (it is migrated here).
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("GUESTLIST_SECRET_KEY", "bench-only-secret-key")

from sqlalchemy import Engine, func, select  # noqa: E402
from tests.fakes.shopify import SHOP, TOKEN, FakeShopify  # noqa: E402

from guestlist.connectors.backfill import StreamProgress, backfill  # noqa: E402
from guestlist.connectors.backfill_run import backfill_and_process  # noqa: E402
from guestlist.connectors.connections import add  # noqa: E402
from guestlist.pipeline import process_pending  # noqa: E402
from guestlist.runtime import tune_gc  # noqa: E402
from guestlist.store.engine import make_engine  # noqa: E402
from guestlist.store.migrate import upgrade  # noqa: E402
from guestlist.store.tables import consent_records, events, inbox, profiles  # noqa: E402


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_fake_process(customers: int, orders: int) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.shopify", "--customers", str(customers),
         "--orders", str(orders), "--port", str(port), "--no-limit"],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return process, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("the fake did not start")


def cpu_seconds(pid: int) -> float:
    """User + system CPU a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        def n(query: Any) -> int:
            return int(conn.scalar(query) or 0)

        return {
            "profiles": n(select(func.count()).select_from(profiles)
                          .where(profiles.c.merged_into.is_(None))),
            "order_completed": n(select(func.count()).select_from(events)
                                 .where(events.c.name == "Order Completed")),
            "identify": n(select(func.count()).select_from(events)
                          .where(events.c.type == "identify")),
            "consent_records": n(select(func.count()).select_from(consent_records)),
            "inbox_pages": n(select(func.count()).select_from(inbox)),
            "failed_pages": n(select(func.count()).select_from(inbox)
                              .where(inbox.c.status == "failed")),
        }


def run(
    engine: Engine,
    url: str,
    records: int,
    bulk: bool,
    apart: bool = False,
    fetch_process: bool = True,
) -> dict[str, float]:
    info, _ = add(engine, "shopify", "Bench shop", {
        "shop_domain": SHOP, "access_token": TOKEN, "webhook_secret": "bench",
        "base_url": url, "bulk_backfill": bulk,
    })
    failure: list[BaseException] = []
    fetched = {"records": 0, "pages": 0}
    times: dict[str, float] = {}

    def progress(state: StreamProgress) -> None:
        fetched["pages"] = state.pages
        if state.status == "done":
            times[f"{state.stream}_fetched_s"] = time.perf_counter() - start

    def pull() -> None:
        try:
            backfill(engine, info.id, progress=progress)
        except BaseException as exc:  # reported by the main thread
            failure.append(exc)

    start = time.perf_counter()
    processing = 0.0
    last_report = start

    def timed_process(e: Engine, batch: int) -> int:
        nonlocal processing, last_report
        t0 = time.perf_counter()
        taken = process_pending(e, batch)
        processing += time.perf_counter() - t0
        if time.perf_counter() - last_report > 15:
            last_report = time.perf_counter()
            print(f"  … {last_report - start:6.1f} s", flush=True)
        return taken

    if apart:  # the pull alone (in a thread), then the pipeline alone
        thread = threading.Thread(target=pull, name="backfill")
        thread.start()
        thread.join()
        if failure:
            raise failure[0]
        times["apart_backfill_s"] = time.perf_counter() - start
        while timed_process(engine, 200):
            pass
    else:  # what `guestlist connections backfill` does
        backfill_and_process(
            engine, info.id, process=timed_process, on_progress=progress,
            fetch_process=fetch_process,
        )
    times["backfill_done_s"] = max(
        times.get("customers_fetched_s", 0.0), times.get("orders_fetched_s", 0.0))
    times["wall_s"] = time.perf_counter() - start
    times["processing_busy_s"] = processing
    times["records_per_s"] = records / times["wall_s"]
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int)
    parser.add_argument("--orders", type=int)
    parser.add_argument("--database-url")
    parser.add_argument("--bulk", action="store_true",
                        help="backfill through GraphQL bulk operations instead of REST pages")
    parser.add_argument("--apart", action="store_true",
                        help="backfill first, then process (no overlap): each side's cost")
    parser.add_argument("--fetch-thread", action="store_true",
                        help="fetch in a thread of the processing process, not a process "
                        "of its own")
    parser.add_argument("--limit-on", action="store_true",
                        help="keep the fake's leaky bucket on and check the client obeys it")
    args = parser.parse_args()
    customers = args.customers or (2_000 if args.limit_on else 100_000)
    orders = args.orders if args.orders is not None else (
        10_000 if args.limit_on else 500_000)
    tune_gc()
    url = args.database_url
    if url is None:
        url = f"sqlite:///{tempfile.mkdtemp(prefix='gl-shopify-bench-')}/bench.db"
    upgrade(url)
    engine = make_engine(url)
    backend = engine.dialect.name
    how = "GraphQL bulk" if args.bulk else "REST"
    print(f"shopify backfill ({how}): {customers:,} customers + {orders:,} orders → {backend}",
          flush=True)

    fake: FakeShopify | None = None
    if args.limit_on:
        from tests.fakes import serve

        # Another app of the store has just used 39 of the 40: our client starts with
        # a full bucket of its own and must learn otherwise from the first answer.
        fake = FakeShopify(customers, orders, rate_limit=True, level=39.0)
        with serve(fake.app()) as base:
            times = run(engine, base, customers + orders, args.bulk, args.apart,
                        fetch_process=not args.fetch_thread)
    else:
        process, base = start_fake_process(customers, orders)
        try:
            times = run(engine, base, customers + orders, args.bulk, args.apart,
                        fetch_process=not args.fetch_thread)
            # The fake plays Shopify's servers, which do not share our two cores.
            times["fake_cpu_s"] = cpu_seconds(process.pid)
        finally:
            process.terminate()
            process.wait(timeout=10)

    found = counts(engine)
    for name, value in times.items():
        print(f"  {name:22} {value:12,.1f}")
    for name, count in found.items():
        print(f"  {name:22} {count:12,}")
    ok = (found["profiles"] == customers and found["order_completed"] == orders
          and found["failed_pages"] == 0)
    if fake is not None:
        print(f"  {'requests':22} {fake.requests:12,}")
        print(f"  {'throttled (429)':22} {fake.throttled:12,}")
        print(f"  {'fullest bucket':22} {fake.max_level:12.1f} / {fake.bucket_size}")
        ok = ok and fake.throttled == 0 and fake.max_level <= fake.bucket_size
    print("OK" if ok else "MISMATCH", flush=True)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
