"""IP anonymisation (``anon_ip``): the end of ``user_ipaddress`` becomes ``x``.

``anonOctets`` IPv4 octets (``255.255.x.x``) and ``anonSegments`` IPv6
segments, counted from the end (``2001:db8:0:0:0:0:x:x``; a ``::`` is expanded
first so that the count is of real segments).  Config 1-0-0 has no
``anonSegments``: then ``anonOctets`` is used for IPv6 too, as Snowplow does.
A value that is neither address (a hostname, garbage) is left as it is.

Runs after every IP-based enrichment (see ``processor.enrichments.ORDER``).
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from processor.enrichments.base import Enrichment, EventContext, LoadContext


def anonymise_ipv4(ip: str, octets: int) -> str:
    parts = ip.split(".")
    keep = max(len(parts) - octets, 0)
    return ".".join(parts[:keep] + ["x"] * (len(parts) - keep))


def anonymise_ipv6(ip: str, segments: int) -> str:
    head, sep, tail = ip.partition("::")
    if sep:
        left = head.split(":") if head else []
        right = tail.split(":") if tail else []
        parts = left + ["0"] * (8 - len(left) - len(right)) + right
    else:
        parts = ip.split(":")
    keep = max(len(parts) - segments, 0)
    return ":".join(parts[:keep] + ["x"] * (len(parts) - keep))


@dataclass(frozen=True)
class AnonIp(Enrichment):
    name = "anon_ip"
    criteria = ("1-0-*",)

    octets: int
    segments: int

    @classmethod
    def from_parameters(cls, parameters: dict[str, Any], ctx: LoadContext) -> "AnonIp":
        octets = int(parameters["anonOctets"])
        return cls(octets=octets, segments=int(parameters.get("anonSegments", octets)))

    def anonymise(self, ip: str) -> str:
        if ":" in ip:
            try:
                ipaddress.IPv6Address(ip.strip("[]"))
            except ValueError:
                return ip
            return anonymise_ipv6(ip.strip("[]"), self.segments)
        if ip.count(".") == 3:
            return anonymise_ipv4(ip, self.octets)
        return ip

    def enrich(self, event: Any, ctx: EventContext) -> None:
        if event.user_ipaddress:
            event.user_ipaddress = self.anonymise(event.user_ipaddress)
