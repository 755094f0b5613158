"""A lean HTTP/1.1 load generator for the benchmarks, in the manner of `wrk`.

Requests are prepared as bytes and sent over keep-alive connections; each answer is read
by its Content-Length and must be 200. httpx's AsyncClient spent about 5 ms of CPU a
request on this machine, so with it the benchmarks measured the client, which shares
the two cores with the server, rather than the server.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from urllib.parse import urlsplit

Request = tuple[bytes, Mapping[str, str]]  # body, headers


async def post_all(url: str, requests: Sequence[Request], concurrency: int) -> list[float]:
    """POST each body with its headers to `url`; returns each request's latency (s).

    Raises on any answer other than 200. A connection the server closes while idle is
    opened again and the request sent again (a webhook sender retries the same way).
    """
    target = urlsplit(url)
    host, port = target.hostname or "127.0.0.1", target.port or 80
    prefix = f"POST {target.path} HTTP/1.1\r\nHost: {host}:{port}\r\n".encode()
    pending = list(reversed(requests))
    latencies: list[float] = []

    def encode(body: bytes, headers: Mapping[str, str]) -> bytes:
        lines = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        return prefix + lines.encode() + b"Content-Length: %d\r\n\r\n" % len(body) + body

    async def exchange(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, raw: bytes
    ) -> tuple[int, bytes]:
        writer.write(raw)
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        return status, await reader.readexactly(length)

    async def worker() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while pending:
                body, headers = pending.pop()
                raw = encode(body, headers)
                start = time.perf_counter()
                try:
                    status, answer = await exchange(reader, writer, raw)
                except (asyncio.IncompleteReadError, ConnectionError):
                    writer.close()
                    reader, writer = await asyncio.open_connection(host, port)
                    status, answer = await exchange(reader, writer, raw)
                latencies.append(time.perf_counter() - start)
                if status != 200:
                    raise RuntimeError(f"{status} {answer[:500]!r}")
        finally:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies
