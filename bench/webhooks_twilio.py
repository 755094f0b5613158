"""Twilio webhook figures: signed inbound-message deliveries accepted per second.

    python bench/webhooks_twilio.py [--deliveries 20000] [--senders 300]
                                    [--concurrency 48] [--keywords 0.0]
                                    [--database-url URL]

Starts `guestlist serve --no-worker` (uvicorn, one process, as deployed) on a fresh
database, adds a Twilio connection, and POSTs N inbound messages (distinct
MessageSids, a few hundred senders), each form-encoded and signed with X-Twilio-Signature
over the public URL exactly as Twilio signs them, at the given concurrency
(bench/loadgen.py: requests prepared as bytes, so the client's CPU stays small beside
the server's). Prints deliveries accepted per second (goal ≥ 1,000/s), p50/p99/max
latency, and the inbox count (must be N: every 200 is a stored delivery).

`--keywords 0.1` makes a tenth of the messages keywords (STOP/START/HELP/plain
language), which write to the consent ledger inside the delivery's transaction.

Without `--database-url`, a fresh SQLite file in a temporary directory. With a
PostgreSQL URL, pass an empty database (it is migrated here).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
os.environ.setdefault("GUESTLIST_SECRET_KEY", "bench-only-secret-key")

import httpx  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from guestlist.connectors.connections import add  # noqa: E402
from guestlist.connectors.twilio.signature import SIGNATURE_HEADER, compute_signature  # noqa: E402
from guestlist.store.engine import make_engine  # noqa: E402
from guestlist.store.migrate import upgrade  # noqa: E402
from guestlist.store.tables import consent_records, inbox  # noqa: E402
from loadgen import post_all  # type: ignore[import-not-found]  # noqa: E402

TOKEN = "bench-auth-token-0123456789abcdef"
ACCOUNT = "AC" + "0123456789abcdef" * 2
KEYWORDS = ("STOP", "START", "HELP", "please stop texting me")
WORDS = "do you have the rye in stock open sunday thanks how much is delivery tonight".split()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def deliveries(url: str, n: int, senders: int, keywords: float) -> list[tuple[bytes, str]]:
    rng = random.Random(6)
    out = []
    for i in range(n):
        sender = f"+1415555{rng.randrange(senders):04d}"
        whatsapp = rng.random() < 0.2
        prefix = "whatsapp:" if whatsapp else ""
        body = (
            rng.choice(KEYWORDS)
            if rng.random() < keywords
            else " ".join(rng.choices(WORDS, k=rng.randint(3, 12)))
        )
        sid = f"SM{i:032x}"
        params = {
            "ToCountry": "US", "ToState": "CA", "SmsMessageSid": sid, "NumMedia": "0",
            "ToCity": "", "FromZip": "", "SmsSid": sid, "FromState": "CA",
            "SmsStatus": "received", "FromCity": "", "Body": body, "FromCountry": "US",
            "To": f"{prefix}+15558675310", "MessagingServiceSid": "MG" + "0" * 32,
            "ToZip": "", "NumSegments": "1", "MessageSid": sid, "AccountSid": ACCOUNT,
            "From": f"{prefix}{sender}", "ApiVersion": "2010-04-01",
        }  # fmt: skip
        if whatsapp:
            params.update(ProfileName=f"Guest {sender[-4:]}", WaId=sender[1:])
        signature = compute_signature(TOKEN, url, list(params.items()))
        out.append((urlencode(params).encode(), signature))
    return out


def fire(
    url: str, path: str, bodies: list[tuple[bytes, str]], concurrency: int
) -> tuple[float, list[float]]:
    requests = [
        (body, {SIGNATURE_HEADER: signature,
                "Content-Type": "application/x-www-form-urlencoded"})
        for body, signature in bodies
    ]  # fmt: skip
    start = time.perf_counter()
    latencies = asyncio.run(post_all(url + path, requests, concurrency))
    return time.perf_counter() - start, latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--deliveries", type=int, default=20_000)
    parser.add_argument("--senders", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=48)
    parser.add_argument("--keywords", type=float, default=0.0)
    parser.add_argument("--database-url")
    parser.add_argument("--warmup", type=int, default=500)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        db_url = args.database_url or f"sqlite:///{tmp}/bench.db"
        upgrade(db_url)
        engine = make_engine(db_url)
        info, _ = add(engine, "twilio", "bench", {"account_sid": ACCOUNT, "webhook_secret": TOKEN})
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        path = f"/hooks/twilio/{info.id}"
        env = {**os.environ, "GUESTLIST_DATABASE_URL": db_url, "GUESTLIST_PUBLIC_URL": base}
        env["PYTHONPATH"] = str(ROOT / "src")
        bodies = deliveries(base + path, args.warmup + args.deliveries, args.senders,
                            args.keywords)  # fmt: skip
        server_log = open(Path(tmp) / "server.log", "wb")  # noqa: SIM115
        server = subprocess.Popen(
            [sys.executable, "-m", "guestlist.cli", "serve", "--no-worker", "--no-migrate",
             "--port", str(port)],
            env=env, stdout=subprocess.DEVNULL, stderr=server_log,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    if httpx.get(f"{base}/health").status_code == 200:
                        break
                except httpx.HTTPError:
                    if server.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError("the server did not start") from None
                    time.sleep(0.2)
            print(f"server pid {server.pid} on {base}; database {db_url.split('@')[-1]}")
            fire(base, path, bodies[: args.warmup], 8)
            cpu_before = cpu_seconds(server.pid)
            elapsed, latencies = fire(base, path, bodies[args.warmup :], args.concurrency)
            server_cpu = cpu_seconds(server.pid) - cpu_before
        except Exception:
            server_log.flush()
            print((Path(tmp) / "server.log").read_text()[-3000:], file=sys.stderr)
            raise
        finally:
            server.terminate()
            server.wait()
            server_log.close()
        with engine.connect() as conn:
            stored = conn.scalar(select(func.count()).select_from(inbox))
            records = conn.scalar(select(func.count()).select_from(consent_records))
        engine.dispose()
    latencies.sort()
    n = len(latencies)
    ms = [latencies[int(q * (n - 1))] * 1000 for q in (0.5, 0.99)]
    load = os.getloadavg()[0]
    print(
        f"  {n:,} signed deliveries in {elapsed:.1f} s at concurrency {args.concurrency}: "
        f"{n / elapsed:,.0f}/s accepted  (goal ≥ 1,000/s)"
    )
    print(
        f"  latency p50 {ms[0]:.1f} ms, p99 {ms[1]:.1f} ms, max {latencies[-1] * 1000:.1f} ms, "
        f"mean {statistics.fmean(latencies) * 1000:.1f} ms"
    )
    print(
        f"  server CPU {server_cpu:.1f} s = {server_cpu / n * 1000:.2f} ms per delivery: "
        f"{n / server_cpu:,.0f}/s per core-second (the rate with a core to itself)"
    )
    print(f"  inbox: {stored:,} envelopes (expected {args.warmup + n:,}); "
          f"consent records: {records:,}; load average {load:.1f}")  # fmt: skip


if __name__ == "__main__":
    main()
