"""Network user id and the collector's cookie.

Priority of the network user id (``nuid``):

1. an ``SP-Anonymous`` header: all zeros, no cookie set, IP and identifying
   headers dropped;
2. a ``nuid`` query parameter (server-side trackers pass the user's id);
3. the collector's own cookie;
4. with cookie bounce, the fallback id once the bounce has happened;
5. a new random UUID.

The cookie is set on every answer (refreshing its expiry) with the domain
chosen from the request's Origin: the first configured domain the Origin host
equals or ends with, else the fallback domain, else no Domain attribute.
"""
from __future__ import annotations

import re
import time
from email.utils import formatdate

from snowmelt.config import CookieConfig, DoNotTrackCookieConfig

ANONYMOUS_NUID = "00000000-0000-0000-0000-000000000000"


def cookie_value(cookie_header: str | None, name: str) -> str | None:
    """The value of cookie ``name`` in a ``Cookie`` header, or None.

    A plain scan rather than http.cookies: tracker cookies are simple and this
    runs on every request.
    """
    if not cookie_header:
        return None
    for part in cookie_header.split(";"):
        key, sep, value = part.partition("=")
        if sep and key.strip() == name:
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            return value
    return None


def origin_hosts(origin_header: str | None) -> list[str]:
    """Hosts (lower case, no port) of the serialized origins in an Origin header."""
    if not origin_header or origin_header == "null":
        return []
    hosts = []
    for origin in origin_header.split():
        _, sep, rest = origin.partition("://")
        host = rest if sep else origin
        host = host.split("/", 1)[0]
        if host.startswith("["):
            host = host[1:].split("]", 1)[0]
        else:
            host = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
        if host:
            hosts.append(host.lower())
    return hosts


def domain_matches(host: str, domain: str) -> bool:
    """True when ``host`` is ``domain`` or a subdomain of it (a leading dot is ignored)."""
    domain = domain.lower().lstrip(".")
    return host == domain or host.endswith("." + domain)


def cookie_domain(config: CookieConfig, origin_header: str | None) -> str | None:
    if config.domains:
        for host in origin_hosts(origin_header):
            for domain in config.domains:
                if domain_matches(host, domain):
                    return domain
    return config.fallback_domain or None


class CookieWriter:
    """Builds the ``Set-Cookie`` value for a network user id.

    The Expires date is formatted at most once a second.
    """

    def __init__(self, config: CookieConfig):
        self.config = config
        self._max_age = config.expiration_days * 86400
        flags = "; Path=/"
        if config.secure:
            flags += "; Secure"
        if config.http_only:
            flags += "; HttpOnly"
        if config.same_site:
            flags += "; SameSite=" + config.same_site
        self._flags = flags
        self._expires_second = -1
        self._expires = ""

    def _expires_at(self, now: float) -> str:
        second = int(now)
        if second != self._expires_second:
            self._expires = formatdate(second + self._max_age, usegmt=True)
            self._expires_second = second
        return self._expires

    def header(self, nuid: str, origin_header: str | None, now: float | None = None) -> str:
        now = time.time() if now is None else now
        value = f"{self.config.name}={nuid}; Expires={self._expires_at(now)}; Max-Age={self._max_age}"
        domain = cookie_domain(self.config, origin_header)
        if domain:
            value += "; Domain=" + domain
        return value + self._flags


class DoNotTrack:
    """Matches the optional do-not-track cookie: when it matches, nothing is stored."""

    def __init__(self, config: DoNotTrackCookieConfig):
        self.enabled = config.enabled and bool(config.name)
        self.name = config.name
        self.pattern = re.compile(config.value) if self.enabled else None

    def matches(self, cookie_header: str | None) -> bool:
        if not self.enabled:
            return False
        value = cookie_value(cookie_header, self.name)
        return value is not None and self.pattern.fullmatch(value) is not None

