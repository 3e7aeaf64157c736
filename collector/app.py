"""The collector's HTTP surface: Snowplow's stream-collector routes on aiohttp.

Tracking routes (each request becomes one raw ``CollectorPayload``):

* ``GET /i``, ``GET /ice.png``, ``GET /{vendor}/{version}`` -- a 1x1 GIF;
* ``POST /{vendor}/{version}`` -- ``ok`` (tp2 batches and webhooks);
* ``GET /r/tp2?u=TARGET`` -- a 302 to TARGET when redirects are enabled and its
  domain is allowed (never an open redirect); without ``u`` the request is
  recorded and answered 400, as Snowplow's collector does.

Service routes: ``OPTIONS *`` (CORS preflight), ``/health``, ``/sink-health``,
``/metrics``, ``/robots.txt``, ``/crossdomain.xml`` and an optional root
response.  A tracking answer is 2xx only once the sink has made the request's
records safe; otherwise 503, so trackers retry.
"""
from __future__ import annotations

import asyncio
import functools
import gc
import logging
import re
import time
import uuid
from random import randbytes
from typing import Awaitable, Callable
from urllib.parse import urlsplit

from aiohttp import web
from multidict import CIMultiDict

from collector.identity import ANONYMOUS_NUID, CookieWriter, DoNotTrack, cookie_value, domain_matches
from collector.payloads import Fitted, refit
from collector.sink import Sink, SinkUnavailable
from ext import CollectorPayload, encode_collector_payload
from processor.client_ip import forwarded_for_address
from snowmelt import __version__, metrics
from snowmelt.http_body import SERVER_OPTIONS, read_bounded
from snowmelt.config import Config, ConfigError
from snowmelt.logs import SummaryFilter

log = logging.getLogger("snowmelt.collector")
# aiohttp logs every malformed request (with a traceback): anyone can send garbage, so a
# flood of it is summarised, one line a minute, instead of growing the log without bound.
logging.getLogger("aiohttp.server").addFilter(SummaryFilter(60.0))

SCHEMA = "iglu:com.snowplowanalytics.snowplow/CollectorPayload/thrift/1-0-0"
TP2_PATH = "/com.snowplowanalytics.snowplow/tp2"
REDIRECT_PATH = "/r/tp2"
IGLU_PATH = "/com.snowplowanalytics.iglu/v1"
ALIAS_TARGETS = (TP2_PATH, REDIRECT_PATH, IGLU_PATH)

# A transparent 1x1 GIF.
PIXEL = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\x00\x00\x00!\xf9\x04\x01\x00\x00\x00\x00"
    b",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)
NO_CACHE = "no-cache, no-store, must-revalidate"
# Headers that identify the user and are dropped from anonymous requests.
IDENTIFYING_HEADERS = {b"x-forwarded-for", b"x-real-ip", b"forwarded", b"cookie"}
ROBOTS = "User-agent: *\nDisallow: /\n"
# Long tracker GET URLs are normal; aiohttp's 8 KiB default line limit is not.
MAX_LINE_SIZE = 65536
MAX_FIELD_SIZE = 65536

COLLECTOR_KEY = web.AppKey("collector", object)


_COLLECT_AFTER_REFUSED_BYTES = 32 * 1024 * 1024
_NUID = re.compile(r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}")


def well_formed_nuid(value: str) -> bool:
    """True for a network user id the collector takes from a client (``nuid`` parameter or cookie).

    A UUID (8-4-4-4-12 hex digits, either case), as Snowplow's collector issues and
    its enrich reads them: enrich 3.9.0 refuses a record whose network user id
    ``UUID.fromString`` does not read (a ``collector_payload_format_violation``), so
    any other value -- a server-side tracker's own id, or ``;``, spaces, CR, LF,
    NUL that could add cookie attributes or break the answer's headers -- is
    ignored and a new id issued.
    """
    return _NUID.fullmatch(value) is not None


class Collector:
    """Request handlers, bound to one configuration and one sink."""

    def __init__(self, config: Config, sink: Sink, clock: Callable[[], float] = time.time):
        self.config = config
        cc = config.collector
        self.cc = cc
        self.sink = sink
        self.clock = clock
        self.refused_bytes = 0  # bodies refused since the last collection of what they left behind
        self.collector_name = cc.name or f"snowmelt-{__version__}-kafka"
        self.cookie = CookieWriter(cc.cookie) if cc.cookie.enabled else None
        self.cookie_name = cc.cookie.name
        self.dnt = DoNotTrack(cc.do_not_track_cookie)
        self.bounce = cc.cookie_bounce
        if not well_formed_nuid(self.bounce.fallback_network_user_id):
            raise ConfigError("collector.cookie_bounce.fallback_network_user_id must be a UUID (enrich refuses "
                              f"any other network user id), got {self.bounce.fallback_network_user_id!r}")
        self.p3p = f'policyref="{cc.p3p_policy_ref}", CP="{cc.p3p_cp}"'
        self.key_by_ip = cc.partition_key == "ip"
        # CORS: None echoes every Origin; else exact origins and (scheme, ".domain") wildcards
        self.cors_origins: frozenset[str] | None = None
        self.cors_wildcards: tuple[tuple[str, str], ...] = ()
        if cc.cors_allowed_origins:
            entries = [o.strip().lower().rstrip("/") for o in cc.cors_allowed_origins]
            self.cors_origins = frozenset(o for o in entries if "://*." not in o)
            self.cors_wildcards = tuple((o.split("://*.", 1)[0], "." + o.split("://*.", 1)[1])
                                        for o in entries if "://*." in o)
        self.stats = metrics.COLLECTOR
        self.stats.sink_state = lambda: (sink.buffer_fill(), sink.healthy)
        # Answer headers that never change, copied (in C) into each response.
        self.pixel_headers = CIMultiDict({
            "Content-Type": "image/gif", "Cache-Control": NO_CACHE, "Pragma": "no-cache", "P3P": self.p3p,
            "Access-Control-Allow-Credentials": "true"})
        self.ok_headers = CIMultiDict({
            "Content-Type": "text/plain; charset=utf-8", "P3P": self.p3p, "Access-Control-Allow-Credentials": "true"})

    # ------------------------------------------------------------------ helpers

    def count(self, route: str, status: int) -> None:
        requests = self.stats.requests
        key = (route, status)
        requests[key] = requests.get(key, 0) + 1

    def allowed_origin(self, request: web.BaseRequest) -> str | None:
        """The Access-Control-Allow-Origin to answer with (None: none, the origin is not allowed).

        Without ``collector.cors_allowed_origins`` every Origin is echoed (``*``
        without one); with it, only a listed origin or a subdomain of a
        ``scheme://*.domain`` entry.
        """
        origin = request.headers.get("Origin")
        if self.cors_origins is None:
            return origin or "*"
        if not origin:
            return None
        origin = origin.lower()
        if origin in self.cors_origins:
            return origin
        scheme, sep, host = origin.partition("://")
        if sep:
            for wild_scheme, suffix in self.cors_wildcards:
                if scheme == wild_scheme and host.endswith(suffix) and len(host) > len(suffix):
                    return origin
        return None

    def cors_headers(self, request: web.Request, headers: dict) -> dict:
        origin = self.allowed_origin(request)
        if origin is not None:
            headers["Access-Control-Allow-Origin"] = origin
            headers["Access-Control-Allow-Credentials"] = "true"
        return headers

    @staticmethod
    def client_ip(request: web.Request) -> str:
        """The ``ipAddress`` to record: the address X-Forwarded-For gives as Snowplow's enrich reads it
        (``processor.client_ip``; ``1.2.3.4:80`` is ``1.2.3.4``), else the peer's (``localhost`` is no address)."""
        forwarded = request.headers.get("X-Forwarded-For")
        if forwarded:
            address = forwarded_for_address(forwarded)
            if address:
                return address
        return request.remote or "unknown"

    @staticmethod
    def hostname(request: web.Request) -> str | None:
        host = request.headers.get("Host")
        if not host:
            return None
        if host.startswith("["):
            return host[1:].split("]", 1)[0]
        return host.rsplit(":", 1)[0] if host.count(":") == 1 else host

    def unavailable(self, route: str, request: web.Request, reason: str) -> web.Response:
        self.stats.sink_unavailable += 1
        self.count(route, 503)
        log.debug("503 on %s: %s", request.path, reason)
        return web.Response(status=503, text="Service Unavailable",
                            headers=self.cors_headers(request, {"Retry-After": "1"}))

    # ------------------------------------------------------------------ the tracking path

    async def track(
        self,
        request: web.Request,
        route: str,
        path: str,
        body: bytes | None,
        respond: Callable[[str], web.StreamResponse] | Callable[[str], Awaitable],
    ) -> web.StreamResponse:
        """Record one request and answer it with ``respond(nuid)`` once safe."""
        headers = request.headers
        anonymous = "SP-Anonymous" in headers
        cookie_header = headers.get("Cookie")
        if self.dnt.matches(cookie_header):
            response = respond(ANONYMOUS_NUID)
            self.count(route, response.status)
            return response
        rel_url = request.rel_url
        querystring = rel_url.raw_query_string
        set_cookie = self.cookie is not None and not anonymous
        if anonymous:
            nuid = ANONYMOUS_NUID
        else:
            # Parse the query string only when it can hold the parameter.
            nuid = (rel_url.query.get("nuid") if "nuid=" in querystring else None) or \
                cookie_value(cookie_header, self.cookie_name)
            if nuid and not well_formed_nuid(nuid):
                nuid = None  # never echoed into Set-Cookie, a redirect or the raw record: a new one is issued
            if not nuid:
                if self.bounce.enabled and request.method == "GET":
                    if self.bounce.name not in rel_url.query:
                        return self.bounce_redirect(request, route)
                    nuid = self.bounce.fallback_network_user_id
                else:
                    nuid = str(uuid.uuid4())
        if anonymous:
            raw_headers = [k + b": " + v for k, v in request.raw_headers if k.lower() not in IDENTIFYING_HEADERS]
            ip = "unknown"
        else:
            raw_headers = [k + b": " + v for k, v in request.raw_headers]
            ip = self.client_ip(request)
        payload = CollectorPayload(
            schema=SCHEMA,
            ip_address=ip,
            timestamp=int(self.clock() * 1000),
            encoding="UTF-8",
            collector=self.collector_name,
            user_agent=headers.get("User-Agent"),
            referer_uri=headers.get("Referer"),
            path=path,
            querystring=querystring or None,
            body=body if body else None,
            headers=raw_headers,
            content_type=_content_type(headers) if body is not None else None,
            hostname=self.hostname(request),
            network_user_id=nuid,
        )
        limit = self.sink.max_record_bytes
        encoded = encode_collector_payload(payload)
        if len(encoded) <= limit or self.sink.splits_later:
            fitted = Fitted(payloads=[encoded])
        else:  # split on a thread, so that the loop goes on answering others meanwhile
            fitted = await asyncio.get_running_loop().run_in_executor(None, refit, payload, encoded, limit)
        stats = self.stats
        if fitted.split:
            stats.splits += 1
        if fitted.bad_rows:
            stats.size_violations += len(fitted.bad_rows)
        if self.key_by_ip:
            key = ip.encode()
            records = [(key, p) for p in fitted.payloads]
        else:
            # Only spreads records over partitions: a fast PRNG, not a syscall per request.
            records = [(randbytes(16), p) for p in fitted.payloads]
        started = time.perf_counter()
        try:
            await self.sink.send(records, fitted.bad_rows)
        except SinkUnavailable as exc:
            return self.unavailable(route, request, str(exc))
        stats.produce_latency.observe(time.perf_counter() - started)
        stats.payloads += len(records)
        size = len(querystring) + (len(body) if body else 0)
        stats.request_bytes[route] = stats.request_bytes.get(route, 0) + size
        response = respond(nuid)
        if set_cookie:
            response.headers["Set-Cookie"] = self.cookie.header(nuid, headers.get("Origin"))
        self.count(route, response.status)
        return response

    def body_timed_out(self, request: web.BaseRequest) -> web.Response:
        """A body still incomplete ``read_timeout`` seconds after its head: 408, then the connection is closed.

        Closed rather than drained: a client trickling its body (slowloris)
        must not hold the connection any longer.
        """
        self.count("post", 408)
        log.debug("408 on %s: body not received within %.0fs", request.path, self.cc.read_timeout)
        response = web.Response(status=408, text="Request Timeout", headers={"Connection": "close"})
        response.force_close()
        protocol = request.protocol
        if protocol is not None:
            # no lingering read of the rest of the body once the answer is out
            asyncio.get_running_loop().call_soon(protocol.force_close)
        return response

    def bounce_redirect(self, request: web.Request, route: str) -> web.Response:
        """Redirect once to the same URL with the bounce parameter, setting the cookie."""
        scheme = request.scheme
        if self.bounce.forwarded_protocol_header:
            scheme = request.headers.get(self.bounce.forwarded_protocol_header, scheme)
        url = request.url.with_scheme(scheme).update_query({self.bounce.name: "true"})
        headers = self.cors_headers(request, {"Location": str(url), "Cache-Control": NO_CACHE})
        if self.cookie is not None:
            headers["Set-Cookie"] = self.cookie.header(str(uuid.uuid4()), request.headers.get("Origin"))
        self.count(route, 302)
        return web.Response(status=302, headers=headers)

    def pixel_response(self, request: web.Request) -> Callable[[str], web.Response]:
        def respond(_nuid: str) -> web.Response:
            headers = self.pixel_headers.copy()
            origin = self.allowed_origin(request)
            if origin is not None:
                headers["Access-Control-Allow-Origin"] = origin
            else:
                del headers["Access-Control-Allow-Credentials"]
            return web.Response(body=PIXEL, headers=headers)
        return respond

    # ------------------------------------------------------------------ handlers

    async def handle_pixel(self, request: web.Request, path: str | None = None) -> web.StreamResponse:
        if len(request.rel_url.raw_query_string) > self.cc.drop_payload_size:
            self.count("pixel", 413)
            raise web.HTTPRequestEntityTooLarge(self.cc.drop_payload_size, len(request.rel_url.raw_query_string))
        return await self.track(request, "pixel", path or request.path, None, self.pixel_response(request))

    async def handle_head(self, request: web.Request) -> web.StreamResponse:
        self.count("head", 200)
        return self.pixel_response(request)("")

    def refused(self, size: int) -> None:
        """Account for a refused body; every 32 MB of them, collect what their connections left behind.

        A closed connection's request, payload reader and protocol refer to
        each other, so the part of a refused body still buffered there is freed
        only by a full garbage collection, which the server's thresholds make
        rare: without this, 250 refused 3 MB bodies held ~600 MB.
        """
        self.refused_bytes += size
        if self.refused_bytes >= _COLLECT_AFTER_REFUSED_BYTES:
            self.refused_bytes = 0
            gc.collect()

    async def handle_post(self, request: web.Request, path: str | None = None) -> web.StreamResponse:
        limit = self.cc.drop_payload_size
        declared = request.content_length
        if declared is not None and declared > limit:
            # Refused before reading: no waiting for a body that will be dropped.
            self.count("post", 413)
            self.refused(min(declared, 65536))
            raise web.HTTPRequestEntityTooLarge(limit, declared)
        try:
            async with asyncio.timeout(self.cc.read_timeout):
                body = await read_bounded(request, limit)
        except TimeoutError:
            return self.body_timed_out(request)
        except web.RequestPayloadError:
            # A body that cannot be decoded (bad gzip/deflate, broken chunking): the client's fault.
            self.count("post", 400)
            raise web.HTTPBadRequest(text="unreadable request body")
        if body is None:  # past the limit (decompressed bytes): the rest is not read, the connection closed
            self.count("post", 413)
            self.refused(limit)
            raise web.HTTPRequestEntityTooLarge(limit, limit + 1)

        def respond(_nuid: str) -> web.Response:
            headers = self.ok_headers.copy()
            origin = self.allowed_origin(request)
            if origin is not None:
                headers["Access-Control-Allow-Origin"] = origin
            else:
                del headers["Access-Control-Allow-Credentials"]
            return web.Response(body=b"ok", headers=headers)

        return await self.track(request, "post", path or request.path, body, respond)

    async def handle_redirect(self, request: web.Request, path: str = REDIRECT_PATH) -> web.StreamResponse:
        redirect = self.cc.redirect
        if not redirect.enabled:
            self.count("redirect", 404)
            raise web.HTTPNotFound(text="redirects are disabled")
        target = request.rel_url.query.get("u")
        if target is None:
            # as Snowplow's collector: the request is recorded (enrichment makes it a tracker_protocol_violations
            # bad row, "missing `u` parameter"), then answered 400
            def missing(_nuid: str) -> web.Response:
                return web.Response(status=400, text="missing u parameter", headers=self.cors_headers(request, {}))
            return await self.track(request, "redirect", path, None, missing)
        if not redirect_allowed(target, redirect.allowed_domains):
            self.count("redirect", 400)
            raise web.HTTPBadRequest(text="redirect target not allowed")

        def respond(nuid: str) -> web.Response:
            location = target
            if redirect.macro_enabled and redirect.macro_token and redirect.macro_token in location:
                location = location.replace(redirect.macro_token, nuid)
                # the id may come from the client (nuid parameter, cookie): it must not move the target
                if not redirect_allowed(location, redirect.allowed_domains):
                    return web.Response(status=400, text="redirect target not allowed",
                                        headers=self.cors_headers(request, {}))
            return web.Response(status=302, headers=self.cors_headers(request, {
                "Location": location, "Cache-Control": NO_CACHE, "P3P": self.p3p}))

        return await self.track(request, "redirect", path, None, respond)

    async def handle_preflight(self, request: web.Request) -> web.Response:
        self.count("preflight", 200)
        return web.Response(headers=self.cors_headers(request, {
            "Access-Control-Allow-Headers": "Content-Type, SP-Anonymous",
            "Access-Control-Allow-Methods": "POST, GET, OPTIONS",
            "Access-Control-Max-Age": str(self.cc.cors_max_age),
        }))

    async def handle_health(self, _request: web.Request) -> web.Response:
        return web.Response(text="OK")

    async def handle_sink_health(self, _request: web.Request) -> web.Response:
        if self.sink.healthy:
            return web.Response(text="OK")
        return web.Response(status=503, text="Service Unavailable")

    async def handle_metrics(self, _request: web.Request) -> web.Response:
        body, content_type = metrics.exposition()
        response = web.Response(body=body)
        response.headers["Content-Type"] = content_type
        return response

    async def handle_robots(self, _request: web.Request) -> web.Response:
        return web.Response(text=ROBOTS)

    async def handle_crossdomain(self, _request: web.Request) -> web.Response:
        cd = self.cc.crossdomain
        secure = "true" if cd.secure else "false"
        lines = ['<?xml version="1.0"?>', "<cross-domain-policy>"]
        lines += [f'  <allow-access-from domain="{_xml_attr(d)}" secure="{secure}" />' for d in cd.domains]
        lines.append("</cross-domain-policy>")
        return web.Response(text="\n".join(lines) + "\n", content_type="text/xml")

    async def handle_root(self, _request: web.Request) -> web.Response:
        rr = self.cc.root_response
        return web.Response(status=rr.status_code, text=rr.body, headers=dict(rr.headers))


def _content_type(headers) -> str | None:
    """The request's content type, lower-cased as Snowplow's collector records it."""
    value = headers.get("Content-Type")
    return value.lower() if value else None


_UNSAFE_IN_URL = re.compile(r"[\\\x00-\x20\x7f]")


def redirect_allowed(target: str, allowed_domains) -> bool:
    """True for an absolute http(s) URL whose host is an allowed domain or a subdomain of one.

    Anything a browser could read differently from us is refused: backslashes,
    whitespace and control characters, user info (``https://a.com@b.com``).
    """
    if not target or _UNSAFE_IN_URL.search(target):
        return False
    try:
        parts = urlsplit(target)
        host = (parts.hostname or "").lower()
    except ValueError:
        return False
    if parts.scheme.lower() not in ("http", "https") or not host or "@" in parts.netloc:
        return False
    return any(domain_matches(host, d) for d in allowed_domains)


def _xml_attr(value: str) -> str:
    return (value.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;").replace(">", "&gt;"))


_ALIAS = re.compile(r"^/[^/?#]+(/[^/?#]+)*$")


def _two_segments(path: str) -> bool:
    """``/{vendor}/{version}``: exactly two non-empty segments."""
    if path.count("/") != 2:
        return False
    _, vendor, version = path.split("/")
    return bool(vendor) and bool(version)


class Routes:
    """Method-and-path dispatch for the collector, without aiohttp's router.

    Exact paths first, then ``/{vendor}/{version}``; ``OPTIONS`` on any path is
    a CORS preflight.  The same ``dispatch`` serves the standalone collector
    (aiohttp's low-level server) and any application that mounts it.
    """

    def __init__(self, collector: Collector):
        cc = collector.cc
        h = collector
        self.collector = collector
        exact: dict[str, dict[str, Callable]] = {
            "/health": {"GET": h.handle_health},
            "/sink-health": {"GET": h.handle_sink_health},
            "/metrics": {"GET": h.handle_metrics},
            "/i": {"GET": h.handle_pixel},
            "/ice.png": {"GET": h.handle_pixel},
            REDIRECT_PATH: {"GET": h.handle_redirect},
        }
        if cc.robots_txt:
            exact["/robots.txt"] = {"GET": h.handle_robots}
        if cc.crossdomain.enabled:
            exact["/crossdomain.xml"] = {"GET": h.handle_crossdomain}
        if cc.root_response.enabled:
            exact["/"] = {"GET": h.handle_root}
        for alias, target in cc.paths.items():
            if target not in ALIAS_TARGETS:
                raise ValueError(f"collector.paths.{alias}: target must be one of {', '.join(ALIAS_TARGETS)}")
            if not _ALIAS.match(alias):
                raise ValueError(f"collector.paths: {alias!r} is not an absolute path")
            if target == REDIRECT_PATH:
                exact[alias] = {"GET": h.handle_redirect}
            else:
                exact[alias] = {"GET": functools.partial(h.handle_pixel, path=target),
                                "POST": functools.partial(h.handle_post, path=target)}
        self.exact = exact
        self.vendor_version = {"GET": h.handle_pixel, "HEAD": h.handle_head, "POST": h.handle_post}

    async def dispatch(self, request: web.BaseRequest) -> web.StreamResponse:
        path = request.path
        method = request.method
        methods = self.exact.get(path)
        if methods is None:
            if _two_segments(path):
                methods = self.vendor_version
            elif method == "OPTIONS":
                return await self.collector.handle_preflight(request)
            else:
                self.collector.count("other", 404)
                return web.Response(status=404, text="404: Not Found")
        handler = methods.get(method)
        if handler is not None:
            return await handler(request)
        if method == "OPTIONS":
            return await self.collector.handle_preflight(request)
        self.collector.count("other", 405)
        allowed = ", ".join(sorted(set(methods) | {"OPTIONS"}))
        return web.Response(status=405, text="405: Method Not Allowed", headers={"Allow": allowed})


def make_collector(config: Config, sink: Sink, clock: Callable[[], float] = time.time) -> Routes:
    """The collector's handlers and their dispatch (raises ValueError on a bad path alias)."""
    return Routes(Collector(config, sink, clock))


def handler_args(cc) -> dict:
    """aiohttp connection settings of every server that serves the collector's routes.

    ``keepalive_timeout`` is aiohttp's deadline for a connection waiting for a
    complete request head (counted from its opening, then from each answer):
    with ``collector.read_timeout`` a client trickling its headers, or idling,
    is disconnected.  The body's deadline is the handler's (:meth:`Collector.handle_post`).
    ``lingering_time`` 0: see below.  Compressed bodies are decoded by
    :func:`~snowmelt.http_body.read_bounded` (``auto_decompress`` off).
    """
    return {"max_line_size": MAX_LINE_SIZE, "max_field_size": MAX_FIELD_SIZE, "keepalive_timeout": cc.read_timeout,
            # a body left unread (refused: 413) closes the connection instead of being read to its end
            # and thrown away
            "lingering_time": 0,
            # bodies are decoded by read_bounded, off the event loop
            **SERVER_OPTIONS}


def make_server(routes: Routes) -> web.Server:
    """The standalone collector: aiohttp's low-level server calling ``routes.dispatch``.

    No application, router or middleware layer: the collector's own dispatch
    is a dictionary lookup.
    """
    limit = routes.collector.cc.drop_payload_size
    loop = asyncio.get_running_loop()

    def request_factory(message, payload, protocol, writer, task) -> web.BaseRequest:
        return web.BaseRequest(message, payload, protocol, writer, task, loop, client_max_size=limit)

    # access_log=None: aiohttp's access log would write every request line (the
    # tracker payload in the query string), Referer and User-Agent at INFO
    return web.Server(routes.dispatch, request_factory=request_factory, access_log=None,
                      **handler_args(routes.collector.cc))


def make_app(config: Config, sink: Sink, clock: Callable[[], float] = time.time) -> web.Application:
    """The collector as an aiohttp application, for embedding and tests.

    The sink is started and closed with the application.
    """
    cc = config.collector
    routes = make_collector(config, sink, clock)
    app = web.Application(client_max_size=cc.drop_payload_size, handler_args=handler_args(cc))
    app[COLLECTOR_KEY] = routes.collector
    app.router.add_route("*", "/{tail:.*}", routes.dispatch)

    async def start_sink(_app):
        await sink.start()

    async def close_sink(_app):
        left = await sink.close(cc.shutdown_grace)
        if left:
            log.error("collector stopped with %d undelivered records", left)

    app.on_startup.append(start_sink)
    app.on_cleanup.append(close_sink)
    return app
