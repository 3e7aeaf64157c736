"""The collector's HTTP surface: Snowplow's stream-collector routes on aiohttp.

Tracking routes (each request becomes one raw ``CollectorPayload``):

* ``GET /i``, ``GET /ice.png``, ``GET /{vendor}/{version}`` -- a 1x1 GIF;
* ``POST /{vendor}/{version}`` -- ``ok`` (tp2 batches and webhooks);
* ``GET /r/tp2?u=TARGET`` -- a 302 to TARGET when redirects are enabled and its
  domain is allowed (never an open redirect).

Service routes: ``OPTIONS *`` (CORS preflight), ``/health``, ``/sink-health``,
``/metrics``, ``/robots.txt``, ``/crossdomain.xml`` and an optional root
response.  A tracking answer is 2xx only once the sink has made the request's
records safe; otherwise 503, so trackers retry.
"""
from __future__ import annotations

import functools
import logging
import re
import time
import uuid
from typing import Awaitable, Callable
from urllib.parse import urlsplit

from aiohttp import web

from collector.identity import ANONYMOUS_NUID, CookieWriter, DoNotTrack, cookie_value, domain_matches
from collector.payloads import fit_payload
from collector.sink import Sink, SinkUnavailable
from ext import CollectorPayload
from snowmelt import __version__, metrics
from snowmelt.config import Config

log = logging.getLogger("snowmelt.collector")

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


class Collector:
    """Request handlers, bound to one configuration and one sink."""

    def __init__(self, config: Config, sink: Sink, clock: Callable[[], float] = time.time):
        self.config = config
        cc = config.collector
        self.cc = cc
        self.sink = sink
        self.clock = clock
        self.collector_name = cc.name or f"snowmelt-{__version__}-kafka"
        self.cookie = CookieWriter(cc.cookie) if cc.cookie.enabled else None
        self.cookie_name = cc.cookie.name
        self.dnt = DoNotTrack(cc.do_not_track_cookie)
        self.bounce = cc.cookie_bounce
        self.p3p = f'policyref="{cc.p3p_policy_ref}", CP="{cc.p3p_cp}"'
        self.key_by_ip = cc.partition_key == "ip"
        self._counters: dict = {}

    # ------------------------------------------------------------------ helpers

    def count(self, route: str, status: int) -> None:
        key = (route, status)
        counter = self._counters.get(key)
        if counter is None:
            counter = self._counters[key] = metrics.COLLECTOR_REQUESTS.labels(route, str(status))
        counter.inc()

    def cors_headers(self, request: web.Request, headers: dict) -> dict:
        headers["Access-Control-Allow-Origin"] = request.headers.get("Origin") or "*"
        headers["Access-Control-Allow-Credentials"] = "true"
        return headers

    @staticmethod
    def client_ip(request: web.Request) -> str:
        forwarded = request.headers.get("X-Forwarded-For")
        if forwarded:
            first = forwarded.split(",", 1)[0].strip()
            if first:
                return first
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
        metrics.COLLECTOR_SINK_ERRORS.inc()
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
        query = request.rel_url.query
        set_cookie = self.cookie is not None and not anonymous
        if anonymous:
            nuid = ANONYMOUS_NUID
        else:
            nuid = query.get("nuid") or cookie_value(cookie_header, self.cookie_name)
            if not nuid:
                if self.bounce.enabled and request.method == "GET":
                    if self.bounce.name not in query:
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
        querystring = request.rel_url.raw_query_string
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
            content_type=headers.get("Content-Type") if body is not None else None,
            hostname=self.hostname(request),
            network_user_id=nuid,
        )
        fitted = fit_payload(payload, self.sink.max_record_bytes)
        if fitted.split:
            metrics.COLLECTOR_SPLITS.inc()
        if fitted.bad_rows:
            metrics.COLLECTOR_SIZE_VIOLATIONS.inc(len(fitted.bad_rows))
        if self.key_by_ip:
            key = ip.encode()
            records = [(key, p) for p in fitted.payloads]
        else:
            records = [(uuid.uuid4().bytes, p) for p in fitted.payloads]
        started = time.perf_counter()
        try:
            await self.sink.send(records, fitted.bad_rows)
        except SinkUnavailable as exc:
            return self.unavailable(route, request, str(exc))
        metrics.COLLECTOR_PRODUCE_LATENCY.observe(time.perf_counter() - started)
        metrics.COLLECTOR_PAYLOADS.inc(len(records))
        metrics.COLLECTOR_REQUEST_BYTES.labels(route).inc(len(querystring) + (len(body) if body else 0))
        response = respond(nuid)
        if set_cookie:
            response.headers["Set-Cookie"] = self.cookie.header(nuid, headers.get("Origin"))
        self.count(route, response.status)
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
            return web.Response(body=PIXEL, content_type="image/gif", headers=self.cors_headers(request, {
                "Cache-Control": NO_CACHE, "Pragma": "no-cache", "P3P": self.p3p}))
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

    async def handle_post(self, request: web.Request, path: str | None = None) -> web.StreamResponse:
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            self.count("post", 413)
            raise

        def respond(_nuid: str) -> web.Response:
            return web.Response(text="ok", headers=self.cors_headers(request, {"P3P": self.p3p}))

        return await self.track(request, "post", path or request.path, body, respond)

    async def handle_redirect(self, request: web.Request, path: str = REDIRECT_PATH) -> web.StreamResponse:
        redirect = self.cc.redirect
        if not redirect.enabled:
            self.count("redirect", 404)
            raise web.HTTPNotFound(text="redirects are disabled")
        target = request.rel_url.query.get("u")
        if not target:
            self.count("redirect", 400)
            raise web.HTTPBadRequest(text="missing u parameter")
        if not redirect_allowed(target, redirect.allowed_domains):
            self.count("redirect", 400)
            raise web.HTTPBadRequest(text="redirect target not allowed")

        def respond(nuid: str) -> web.Response:
            location = target
            if redirect.macro_enabled and redirect.macro_placeholder:
                location = location.replace(redirect.macro_placeholder, nuid)
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
        metrics.COLLECTOR_BUFFER_FILL.set(self.sink.buffer_fill())
        metrics.COLLECTOR_SINK_HEALTHY.set(1 if self.sink.healthy else 0)
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


def make_app(config: Config, sink: Sink, clock: Callable[[], float] = time.time) -> web.Application:
    """The collector as an aiohttp application (the sink is started and closed with it)."""
    cc = config.collector
    collector = Collector(config, sink, clock)
    app = web.Application(client_max_size=cc.drop_payload_size, handler_args={
        "max_line_size": MAX_LINE_SIZE, "max_field_size": MAX_FIELD_SIZE})
    app[COLLECTOR_KEY] = collector
    r = app.router

    for alias, target in cc.paths.items():
        if target not in ALIAS_TARGETS:
            raise ValueError(f"collector.paths.{alias}: target must be one of {', '.join(ALIAS_TARGETS)}")
        if not _ALIAS.match(alias):
            raise ValueError(f"collector.paths: {alias!r} is not an absolute path")
        if target == REDIRECT_PATH:
            r.add_get(alias, collector.handle_redirect, allow_head=False)
        else:
            r.add_get(alias, functools.partial(collector.handle_pixel, path=target), allow_head=False)
            r.add_post(alias, functools.partial(collector.handle_post, path=target))

    r.add_get("/health", collector.handle_health, allow_head=False)
    r.add_get("/sink-health", collector.handle_sink_health, allow_head=False)
    r.add_get("/metrics", collector.handle_metrics, allow_head=False)
    if cc.robots_txt:
        r.add_get("/robots.txt", collector.handle_robots, allow_head=False)
    if cc.crossdomain.enabled:
        r.add_get("/crossdomain.xml", collector.handle_crossdomain, allow_head=False)
    if cc.root_response.enabled:
        r.add_get("/", collector.handle_root, allow_head=False)
    r.add_get("/i", collector.handle_pixel, allow_head=False)
    r.add_get("/ice.png", collector.handle_pixel, allow_head=False)
    r.add_get(REDIRECT_PATH, collector.handle_redirect, allow_head=False)
    r.add_get("/{vendor}/{version}", collector.handle_pixel, allow_head=False)
    r.add_route("HEAD", "/{vendor}/{version}", collector.handle_head)
    r.add_post("/{vendor}/{version}", collector.handle_post)
    r.add_route("OPTIONS", "/{tail:.*}", collector.handle_preflight)

    async def start_sink(_app):
        await sink.start()

    async def close_sink(_app):
        left = await sink.close(cc.shutdown_grace)
        if left:
            log.error("collector stopped with %d undelivered records", left)

    app.on_startup.append(start_sink)
    app.on_cleanup.append(close_sink)
    return app
