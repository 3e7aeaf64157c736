"""bench.http1 and the load generator on it, against real servers on this machine's loopback."""
import asyncio
import json
import socket
import time

import pytest
from aiohttp import web

from bench.http1 import Pool, encode_request
from bench.loadgen import build_requests, run_load_async


async def _serve(app: web.Application):
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, runner.addresses[0][1]


async def _serve_root(handle):
    """A server answering GET / with ``handle``: its runner and port."""
    app = web.Application()
    app.router.add_get("/", handle)
    return await _serve(app)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _until(condition, what: str, deadline: float = 5.0) -> None:
    end = time.monotonic() + deadline
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"not within {deadline} s: {what}")
        await asyncio.sleep(0.01)


async def test_requests_arrive_as_encoded_and_their_statuses_come_back_on_one_kept_connection():
    seen = []

    async def handle(request: web.Request) -> web.Response:
        seen.append((request.method, request.path_qs, request.headers.get("Host"), request.headers.get("X-Test"),
                     await request.read()))
        return web.Response(status=int(request.query.get("status", "200")), body=b"ok" * 1000)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner, port = await _serve(app)
    pool = Pool("127.0.0.1", port, limit=4)
    try:
        host = f"127.0.0.1:{port}"
        statuses = [await pool.request(encode_request("GET", "/i?e=pv&status=200", host, {"X-Test": "a"}, None)),
                    await pool.request(encode_request("POST", "/tp2?status=404", host, {"X-Test": "b"},
                                                      b'{"data":[]}')),
                    await pool.request(encode_request("GET", "/i?status=503", host, {}, None))]
    finally:
        pool.close()
        await runner.cleanup()
    assert statuses == [200, 404, 503]
    assert seen == [("GET", "/i?e=pv&status=200", f"127.0.0.1:{port}", "a", b""),
                    ("POST", "/tp2?status=404", f"127.0.0.1:{port}", "b", b'{"data":[]}'),
                    ("GET", "/i?status=503", f"127.0.0.1:{port}", None, b"")]
    assert pool.connections_opened == 1


async def test_an_answer_saying_close_or_chunked_is_read_whole_and_the_next_request_gets_a_new_connection():
    async def close(request: web.Request) -> web.Response:
        return web.Response(text="bye", headers={"Connection": "close"})

    async def chunked(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(status=201)
        response.enable_chunked_encoding()
        await response.prepare(request)
        for _ in range(3):
            await response.write(b"x" * 5000)
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/close", close)
    app.router.add_get("/chunked", chunked)
    runner, port = await _serve(app)
    pool = Pool("127.0.0.1", port)
    try:
        host = f"127.0.0.1:{port}"
        assert await pool.request(encode_request("GET", "/close", host, {}, None)) == 200
        assert await pool.request(encode_request("GET", "/chunked", host, {}, None)) == 201
        assert await pool.request(encode_request("GET", "/chunked", host, {}, None)) == 201
    finally:
        pool.close()
        await runner.cleanup()
    assert pool.connections_opened == 2


async def test_no_more_requests_are_in_flight_than_the_limit_and_all_are_answered():
    in_flight = peak = 0

    async def handle(request: web.Request) -> web.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.02)
        in_flight -= 1
        return web.Response(text="ok")

    runner, port = await _serve_root(handle)
    pool = Pool("127.0.0.1", port, limit=4)
    try:
        data = encode_request("GET", "/", f"127.0.0.1:{port}", {}, None)
        statuses = await asyncio.gather(*(pool.request(data) for _ in range(20)))
    finally:
        pool.close()
        await runner.cleanup()
    assert statuses == [200] * 20
    assert peak == 4 and pool.connections_opened == 4


async def test_a_refused_connection_is_a_connection_error():
    pool = Pool("127.0.0.1", _free_port())
    with pytest.raises(ConnectionError, match="cannot connect"):
        await pool.request(encode_request("GET", "/", "x", {}, None))


async def test_a_server_that_never_answers_is_a_timeout_and_its_connection_is_not_reused():
    release = asyncio.Event()

    async def handle(request: web.Request) -> web.Response:
        await release.wait()
        return web.Response(text="late")

    runner, port = await _serve_root(handle)
    pool = Pool("127.0.0.1", port, timeout=0.3)
    try:
        started = time.monotonic()
        with pytest.raises(TimeoutError, match="no answer within 0.3 s"):
            await pool.request(encode_request("GET", "/", f"127.0.0.1:{port}", {}, None))
        assert time.monotonic() - started < 5
        release.set()
        assert await pool.request(encode_request("GET", "/", f"127.0.0.1:{port}", {}, None)) == 200
    finally:
        release.set()
        pool.close()
        await runner.cleanup()
    assert pool.connections_opened == 2


async def _raw_server(answer):
    """A TCP server that gives each connection to ``answer(reader, writer)``; returns it and its port."""
    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def test_an_answer_cut_short_or_not_http_is_a_connection_error():
    async def cut(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this")
        await writer.drain()
        writer.close()

    async def garbage(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"SMTP ready\r\n\r\n")
        await writer.drain()

    for answer, message in ((cut, "closed before the answer was complete"), (garbage, "not an HTTP answer")):
        server, port = await _raw_server(answer)
        pool = Pool("127.0.0.1", port, timeout=10)
        try:
            with pytest.raises(ConnectionError, match=message):
                await pool.request(encode_request("GET", "/", "x", {}, None))
        finally:
            pool.close()
            server.close()
            await server.wait_closed()


async def test_a_kept_connection_the_server_closed_while_idle_is_replaced():
    async def once(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        writer.close()  # kept alive by the answer's headers, then closed by the server while idle

    server, port = await _raw_server(once)
    pool = Pool("127.0.0.1", port)
    try:
        data = encode_request("GET", "/", "x", {}, None)
        assert await pool.request(data) == 200
        await _until(lambda: all(c.transport.is_closing() for c in pool._idle), "the client saw the close")
        assert await pool.request(data) == 200
    finally:
        pool.close()
        server.close()
        await server.wait_closed()
    assert pool.connections_opened == 2


async def test_the_load_generator_sends_the_prepared_traffic_and_counts_every_answer():
    received = []

    async def pixel(request: web.Request) -> web.Response:
        received.append(("GET", request.query["eid"], request.headers.get("Cookie"),
                         request.headers.get("X-Forwarded-For")))
        return web.Response(body=b"GIF89a", content_type="image/gif")

    async def post(request: web.Request) -> web.Response:
        body = json.loads(await request.read())
        received.extend(("POST", e["eid"], request.headers.get("Cookie"), request.headers.get("X-Forwarded-For"))
                        for e in body["data"])
        assert request.content_type == "application/json"
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/i", pixel)
    app.router.add_post("/com.snowplowanalytics.snowplow/tp2", post)
    runner, port = await _serve(app)
    try:
        requests = build_requests(400, batch=20, get_share=0.2, seed=3)
        report, accepted = await run_load_async(f"http://127.0.0.1:{port}", rate=2000, duration=0.5,
                                                connections=8, progress=False, requests=requests)
    finally:
        await runner.cleanup()
    sent = [eid for r in requests[0] for eid in r.event_ids][:report.events_sent]
    assert report.events_sent > 0 and report.connection_errors == 0 and report.status_2xx == report.requests_sent
    assert sorted(accepted) == sorted(sent) == sorted(eid for _, eid, _, _ in received)
    assert {method for method, *_ in received} == {"GET", "POST"}
    assert all(cookie and cookie.startswith("sp=") and ip for _, _, cookie, ip in received)
