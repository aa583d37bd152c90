"""Load test for `koala serve`: bounded concurrent POSTs of one photo, then requests/s and latency.

    koala serve --model runs/cunet --port 8000 &
    python scripts/load_test.py --url http://127.0.0.1:8000 --concurrency 4 --requests 100 --image photo.jpg

Sends exactly --requests requests with at most --concurrency in flight and stops. Only loopback
addresses are accepted unless --allow-remote is given. 503 answers (queue full) are counted
apart from failures; latency percentiles cover the successful requests.

``--idle N`` first opens N connections that send a request's headers and then nothing (slow
clients, or a slowloris attack), holds them through the test, and reports how long /healthz
took to answer beside them and how many of them the server had closed by the end.
"""
from __future__ import annotations

import argparse
import ipaddress
import socket
import statistics
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit


def is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    try:
        return all(ipaddress.ip_address(info[4][0]).is_loopback for info in socket.getaddrinfo(host, None))
    except (socket.gaierror, ValueError):
        return False


def send(url: str, data: bytes, timeout: float) -> tuple[int, float]:
    """One POST of the raw photo; returns (HTTP status or 0 for no answer, seconds)."""
    request = urllib.request.Request(url, data=data, method="POST",
                                     headers={"Content-Type": "application/octet-stream"})
    start = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            answer.read()
            status = answer.status
    except urllib.error.HTTPError as e:
        status = e.code
    except OSError:
        status = 0
    return status, time.perf_counter() - start


def open_idle(url: str, count: int) -> list[socket.socket]:
    """``count`` connections that promise a 100 kB body after their headers and never send it."""
    parts = urlsplit(url)
    head = (f"POST /api/colorize HTTP/1.1\r\nHost: {parts.hostname}\r\n"
            "Content-Type: application/octet-stream\r\nContent-Length: 100000\r\n\r\n").encode()
    idle = []
    for _ in range(count):
        conn = socket.create_connection((parts.hostname, parts.port or 80), timeout=5)
        conn.sendall(head)
        idle.append(conn)
    return idle


def count_closed(idle: list[socket.socket]) -> int:
    """How many of the idle connections the server has hung up on (without waiting)."""
    closed = 0
    for conn in idle:
        conn.setblocking(False)
        try:
            closed += conn.recv(1024) == b""
        except BlockingIOError:
            pass
        except ConnectionResetError:
            closed += 1
    return closed


def health_seconds(url: str, timeout: float) -> float | None:
    """Seconds /healthz took to answer 200, or None if it did not within ``timeout``."""
    start = time.perf_counter()
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=timeout) as answer:
            answer.read()
            return time.perf_counter() - start if answer.status == 200 else None
    except OSError:
        return None


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation; NaN for no values."""
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[min(max(round(q), 1), 99) - 1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="base URL of koala serve")
    parser.add_argument("--concurrency", type=int, default=4, help="requests in flight at once (default 4)")
    parser.add_argument("--requests", type=int, default=50, help="requests in all (default 50)")
    parser.add_argument("--image", required=True, help="the photo to send")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per request (default 120)")
    parser.add_argument("--idle", type=int, default=0, help="hold this many idle connections open meanwhile")
    parser.add_argument("--allow-remote", action="store_true", help="allow a non-loopback URL")
    args = parser.parse_args(argv)
    if args.concurrency < 1 or args.requests < 1:
        parser.error("--concurrency and --requests must be at least 1")
    if not args.allow_remote and not is_loopback(args.url):
        parser.error(f"{args.url} is not a loopback address (use --allow-remote for a server you run elsewhere)")
    base = args.url.rstrip("/")
    url = f"{base}/api/colorize"
    data = Path(args.image).read_bytes()

    send(url, data, args.timeout)  # warm-up: the first call traces the model for this size
    idle, idle_since = open_idle(base, args.idle), time.perf_counter()
    if idle:
        seconds = health_seconds(base, args.timeout)
        answer = f"in {seconds * 1000:.0f} ms" if seconds is not None else f"not within {args.timeout:g} s"
        print(f"{len(idle)} idle connections open; /healthz answered {answer}")
    start = time.perf_counter()
    with ThreadPoolExecutor(args.concurrency) as pool:
        results = list(pool.map(lambda _: send(url, data, args.timeout), range(args.requests)))
    wall = time.perf_counter() - start

    ok = sorted(seconds for status, seconds in results if status == 200)
    busy = sum(status == 503 for status, _ in results)
    failed = len(results) - len(ok) - busy
    print(f"{args.requests} requests, concurrency {args.concurrency}, {len(data):,} bytes each, {wall:.1f} s")
    print(f"  ok {len(ok)}, 503 busy {busy}, failed {failed}")
    print(f"  {len(ok) / wall:.2f} requests/s; latency p50 {percentile(ok, 50) * 1000:.0f} ms, "
          f"p95 {percentile(ok, 95) * 1000:.0f} ms")
    if idle:
        print(f"  idle connections closed by the server after {time.perf_counter() - idle_since:.0f} s: "
              f"{count_closed(idle)} of {len(idle)}")
        for conn in idle:
            conn.close()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
