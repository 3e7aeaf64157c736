"""Open-loop load generator: realistic tracker traffic through real HTTP to a collector.

    python -m bench.loadgen --url http://127.0.0.1:8080 --rate 5000 --duration 30 [--json]
    python -m bench.loadgen --url http://127.0.0.1:8080 --closed 32 --duration 30

The traffic is :class:`bench.corpus.EventMix`: visits of a page view followed by
page pings of the same page view, struct and self-describing events with
contexts, browser user agents and client IPs (``X-Forwarded-For``, which the
collector takes as the client address) drawn with a Zipf skew, and a share of
bad events (``--bad-share``) that enrichment turns into bad rows.  Most events
travel in POST batches (``--batch`` events, ``/com.snowplowanalytics.snowplow/tp2``),
the rest as GET pixels (``--get-share`` of the requests, ``/i``).

Open loop (default): request *i* has an intended start time fixed before the
run from the target rate (events/s), and is sent then whether or not earlier
requests have been answered.  A request sent late (the event loop or the
connection pool was busy) has its latency counted from its intended start, so
a slow server cannot hide its slowness by slowing the generator down
(coordinated omission).  ``--closed N``: N loops each sending its next request
when the previous one is answered, for probing the maximum throughput.

Every request is encoded to its bytes before the clock starts, and sent on
kept-alive connections by :mod:`bench.http1` (aiohttp's client cost the
generator 381-414 µs a request, a tenth of the end-to-end bench's two cores
at 10,000 events/s; this costs 149-162), so the generator's own CPU (reported)
goes to HTTP alone.  The report (text, or ``--json``): requests
and events sent, 2xx/4xx/5xx/connection errors, achieved events/s and
requests/s, latency p50/p90/p99/p99.9/max in ms, and the generator's CPU
seconds.  :func:`run_load` is the library entry point: it returns the
:class:`Report` and the ids of the events the collector accepted (2xx).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from dataclasses import asdict, dataclass, field
from urllib.parse import urlencode, urlsplit

from bench.corpus import PAYLOAD_DATA, EventMix, browser_headers
from bench.http1 import Pool, encode_request

POST_PATH = "/com.snowplowanalytics.snowplow/tp2"
GET_PATH = "/i"
#: what every request carries besides its own headers (what aiohttp's client added to them)
COMMON_HEADERS = {"Accept-Encoding": "gzip, deflate"}


@dataclass
class Request:
    """One prepared request: everything but the socket work is done before the clock starts."""

    method: str
    path: str  # with the query string for GET
    body: bytes | None
    headers: dict[str, str]
    event_ids: list[str]


@dataclass
class Report:
    """What one run did.  Latencies in milliseconds; rates per second of the send window."""

    mode: str
    target_events_per_s: float | None
    concurrency: int
    duration_s: float
    requests_planned: int = 0
    requests_sent: int = 0
    events_sent: int = 0
    events_accepted: int = 0
    bad_events_sent: int = 0
    status_2xx: int = 0
    status_4xx: int = 0
    status_5xx: int = 0
    connection_errors: int = 0
    late_requests: int = 0  # sent more than 10 ms after their intended time
    achieved_events_per_s: float = 0.0
    achieved_requests_per_s: float = 0.0
    latency_ms: dict[str, float] = field(default_factory=dict)
    cpu_seconds: float = 0.0
    wall_seconds: float = 0.0

    @property
    def errors(self) -> int:
        return self.status_4xx + self.status_5xx + self.connection_errors

    def text(self) -> str:
        lat = self.latency_ms
        target = f"target {self.target_events_per_s:,.0f} events/s, " if self.target_events_per_s else ""
        return "\n".join([
            f"{self.mode} loop, {target}{self.concurrency} connections, {self.duration_s:.0f} s",
            f"sent      {self.requests_sent:,} requests ({self.requests_planned:,} planned), "
            f"{self.events_sent:,} events ({self.bad_events_sent:,} bad on purpose), {self.late_requests:,} late",
            f"answers   2xx {self.status_2xx:,}  4xx {self.status_4xx:,}  5xx {self.status_5xx:,}  "
            f"connection errors {self.connection_errors:,}; events accepted {self.events_accepted:,}",
            f"achieved  {self.achieved_events_per_s:,.0f} events/s, {self.achieved_requests_per_s:,.0f} requests/s",
            "latency   " + "  ".join(f"{k} {v:.1f}" for k, v in lat.items()) + " ms"
            + (" (from intended start)" if self.mode == "open" else ""),
            f"generator {self.cpu_seconds:.1f} CPU s in {self.wall_seconds:.1f} s",
        ])


def percentiles(values: list[float]) -> dict[str, float]:
    """p50/p90/p95/p99/p99.9/max of ``values`` (nearest rank), 0 for an empty list."""
    ordered = sorted(values)
    out = {}
    for name, q in (("p50", 0.50), ("p90", 0.90), ("p95", 0.95), ("p99", 0.99), ("p99.9", 0.999)):
        out[name] = ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0
    out["max"] = ordered[-1] if ordered else 0.0
    return out


def build_requests(events: int, *, batch: int = 20, get_share: float = 0.1, bad_share: float = 0.01,
                   seed: int = 1) -> tuple[list[Request], set[str]]:
    """Requests carrying ``events`` events in all; returns them and the ids of the bad events among them.

    ``get_share`` of the requests are GET pixels (one event each), the rest POST
    batches of ``batch`` events (the last one may be smaller).
    """
    # separate streams: no header's cookie id may equal another run's event id
    mix = EventMix(seed=f"events-{seed}", bad_share=bad_share)
    rng = random.Random(f"requests-{seed}")
    requests: list[Request] = []
    left = events
    while left > 0:
        headers = browser_headers(rng)
        if batch <= 1 or rng.random() < get_share or left == 1:
            event = mix.next()
            requests.append(Request("GET", GET_PATH + "?" + urlencode(event), None, headers, [event["eid"]]))
            left -= 1
        else:
            data = [mix.next() for _ in range(min(batch, left))]
            body = json.dumps({"schema": PAYLOAD_DATA, "data": data}, separators=(",", ":")).encode()
            headers = {**headers, "Content-Type": "application/json; charset=UTF-8"}
            requests.append(Request("POST", POST_PATH, body, headers, [e["eid"] for e in data]))
            left -= len(data)
    return requests, mix.bad_ids


class _Progress:
    """A tqdm bar (sent requests, achieved events/s, errors), or nothing."""

    def __init__(self, total: int, enabled: bool, desc: str):
        self.bar = None
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=desc, unit="req", leave=False, file=sys.stderr,
                            mininterval=0.5, dynamic_ncols=True)
        self.shown = 0

    def update(self, sent: int, events: int, started: float, errors: int) -> None:
        if self.bar is None:
            return
        self.bar.update(sent - self.shown)
        self.shown = sent
        elapsed = max(time.perf_counter() - started, 1e-6)
        self.bar.set_postfix_str(f"{events / elapsed:,.0f} ev/s, errors {errors}", refresh=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


async def _run(url: str, requests: list[Request], *, rate: float | None, closed: int, duration: float,
               connections: int, timeout: float, progress: bool, bad_ids: set[str]) -> tuple[Report, list[str]]:
    mode = "closed" if closed else "open"
    report = Report(mode, rate, closed or connections, duration, requests_planned=len(requests))
    latencies: list[float] = []
    accepted: list[str] = []
    target = urlsplit(url)
    if target.scheme != "http" or not target.hostname:
        raise ValueError(f"the load generator speaks plain HTTP to host[:port]: {url!r}")
    prefix = target.path.rstrip("/")
    wires = [encode_request(r.method, prefix + r.path, target.netloc, {**COMMON_HEADERS, **r.headers}, r.body)
             for r in requests]
    pool = Pool(target.hostname, target.port or 80, limit=closed or connections, timeout=timeout)
    cpu0 = time.process_time()
    bar = _Progress(len(requests), progress, f"{mode} {rate or ''}".strip())

    async def send(request: Request, wire: bytes, intended: float) -> None:
        report.requests_sent += 1
        report.events_sent += len(request.event_ids)
        report.bad_events_sent += sum(1 for i in request.event_ids if i in bad_ids)
        try:
            status = await pool.request(wire)
        except (ConnectionError, TimeoutError, OSError):
            report.connection_errors += 1
            latencies.append((time.perf_counter() - intended) * 1000)
            return
        latencies.append((time.perf_counter() - intended) * 1000)
        if 200 <= status < 300:
            report.status_2xx += 1
            accepted.extend(request.event_ids)
        elif status < 500:
            report.status_4xx += 1
        else:
            report.status_5xx += 1

    async def show(started: float) -> None:
        while True:
            bar.update(report.requests_sent, report.events_sent, started, report.errors)
            await asyncio.sleep(0.5)

    try:
        started = time.perf_counter()
        shower = asyncio.create_task(show(started))
        end = started + duration
        if closed:
            position = iter(range(len(requests)))

            async def loop() -> None:
                for i in position:
                    start = time.perf_counter()
                    if start >= end:
                        return
                    await send(requests[i], wires[i], start)

            await asyncio.gather(*(loop() for _ in range(closed)))
        else:
            # intended start of each request: when the events before it are due at `rate` events/s
            tasks = set()
            due_events = 0
            for request, wire in zip(requests, wires):
                intended = started + due_events / rate
                if intended >= end:
                    break
                due_events += len(request.event_ids)
                delay = intended - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                else:
                    if delay < -0.010:
                        report.late_requests += 1
                    await asyncio.sleep(0)  # behind schedule: still let the requests in flight progress
                task = asyncio.create_task(send(request, wire, intended))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            send_window = time.perf_counter() - started
            if tasks:
                await asyncio.gather(*tasks)
        window = time.perf_counter() - started if closed else max(send_window, 1e-6)
        shower.cancel()
        bar.update(report.requests_sent, report.events_sent, started, report.errors)
    finally:
        bar.close()
        pool.close()
    report.wall_seconds = time.perf_counter() - started
    report.achieved_events_per_s = report.events_sent / window
    report.achieved_requests_per_s = report.requests_sent / window
    report.events_accepted = len(accepted)
    report.latency_ms = {k: round(v, 2) for k, v in percentiles(latencies).items()}
    report.cpu_seconds = round(time.process_time() - cpu0, 2)
    return report, accepted


def run_load(url: str, *, rate: float | None = None, duration: float = 10.0, closed: int = 0,
             connections: int = 64, batch: int = 20, get_share: float = 0.1, bad_share: float = 0.01,
             seed: int = 1, timeout: float = 30.0, progress: bool = True,
             requests: tuple[list[Request], set[str]] | None = None) -> tuple[Report, list[str]]:
    """Send the traffic (see the module docstring); returns the report and the ids of the accepted events.

    Open loop at ``rate`` events/s for ``duration`` seconds, or ``closed`` loops
    for ``duration`` seconds.  ``requests`` (from :func:`build_requests`) is
    built here when not given: enough for the whole run.  Runs its own event
    loop; from async code use :func:`run_load_async`.
    """
    return asyncio.run(run_load_async(url, rate=rate, duration=duration, closed=closed, connections=connections,
                                      batch=batch, get_share=get_share, bad_share=bad_share, seed=seed,
                                      timeout=timeout, progress=progress, requests=requests))


async def run_load_async(url: str, *, rate: float | None = None, duration: float = 10.0, closed: int = 0,
                         connections: int = 64, batch: int = 20, get_share: float = 0.1, bad_share: float = 0.01,
                         seed: int = 1, timeout: float = 30.0, progress: bool = True,
                         requests: tuple[list[Request], set[str]] | None = None) -> tuple[Report, list[str]]:
    """:func:`run_load` in the running event loop."""
    if not closed and not rate:
        raise ValueError("give a target rate (open loop) or a number of closed loops")
    if requests is None:
        # closed loop: as many as 50k events/s could use
        events = int(rate * duration * 1.02) + batch if rate else int(50_000 * duration)
        requests = build_requests(events, batch=batch, get_share=get_share, bad_share=bad_share, seed=seed)
    reqs, bad_ids = requests
    return await _run(url, reqs, rate=rate, closed=closed, duration=duration, connections=connections,
                      timeout=timeout, progress=progress, bad_ids=bad_ids)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", required=True, help="the collector, e.g. http://127.0.0.1:8080")
    ap.add_argument("--rate", type=float, help="open loop: target events per second")
    ap.add_argument("--closed", type=int, default=0, metavar="N", help="closed loop with N concurrent loops")
    ap.add_argument("--duration", type=float, default=30.0, help="seconds of sending")
    ap.add_argument("--connections", type=int, default=64, help="open loop: connection pool size")
    ap.add_argument("--batch", type=int, default=20, help="events per POST")
    ap.add_argument("--get-share", type=float, default=0.1, help="share of requests that are GET pixels")
    ap.add_argument("--bad-share", type=float, default=0.01, help="share of events that are bad on purpose")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", action="store_true", help="print the report as JSON")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    if not args.closed and not args.rate:
        ap.error("give --rate (open loop) or --closed N")
    try:
        import uvloop  # type: ignore

        uvloop.install()
    except ImportError:
        pass
    t0 = time.perf_counter()
    events = int(args.rate * args.duration * 1.02) + args.batch if args.rate else int(50_000 * args.duration)
    prepared = build_requests(events, batch=args.batch, get_share=args.get_share, bad_share=args.bad_share,
                              seed=args.seed)
    print(f"prepared {len(prepared[0]):,} requests ({events:,} events) in {time.perf_counter() - t0:.1f} s",
          file=sys.stderr)
    report, _accepted = run_load(args.url, rate=args.rate, duration=args.duration, closed=args.closed,
                                 connections=args.connections, batch=args.batch, progress=not args.no_progress,
                                 requests=prepared)
    print(json.dumps(asdict(report), indent=2) if args.json else report.text())
    return 0 if report.errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
