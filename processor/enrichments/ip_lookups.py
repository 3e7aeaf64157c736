"""IP lookups (``ip_lookups``): MaxMind GeoIP2/GeoLite2 databases -> ``geo_*``/``ip_*`` fields.

What Snowplow does
    The enrichment looks ``user_ipaddress`` up in up to five MaxMind databases,
    each configured as ``{"database": <file name>, "uri": <folder>}`` (the file
    is ``uri + "/" + database``):

    ``geo`` (``GeoLite2-City.mmdb`` / ``GeoIP2-City.mmdb``)
        ``geo_country`` (country ISO code), ``geo_region`` (subdivision ISO
        code), ``geo_region_name`` (subdivision English name), ``geo_city``
        (English name), ``geo_zipcode`` (postal code), ``geo_latitude``,
        ``geo_longitude`` (32-bit floats) and ``geo_timezone``;
    ``isp`` (``GeoIP2-ISP.mmdb``)
        ``ip_isp`` and ``ip_organization``;
    ``domain`` (``GeoIP2-Domain.mmdb``)
        ``ip_domain``;
    ``connectionType`` (``GeoIP2-Connection-Type.mmdb``)
        ``ip_netspeed`` (``Cable/DSL``, ``Cellular``, ``Corporate`` ...);
    ``asn`` (``GeoLite2-ASN.mmdb``, config 2-0-1)
        the ``iglu:com.snowplowanalytics.snowplow/asn/jsonschema/1-0-1``
        entity ``{"number", "organization"}`` in ``derived_contexts``.  The
        ISP database carries the same ASN data ("provide either the ISP or the
        free ASN database"), so with either one the entity is attached; when
        both know the IP, the ISP database's (the more complete) wins.

    An address that no database knows (private ranges ...) fills nothing and
    is no failure.  A value that is not an IP address (a hostname, an already
    anonymised ``1.2.x.x``) is no failure either: it is left as it is and
    nothing is looked up.  IP lookups run before ``anon_ip`` (see
    ``processor.enrichments.ORDER``), so they see the full address.

What we do the same way
    All of the above, with the ``maxminddb`` C extension (libmaxminddb,
    memory-mapped), for configs 2-0-0 and 2-0-1.  ``uri`` may be a local
    folder (absolute, or relative to the enrichments folder), a ``file:`` URI,
    or an ``http(s):`` URI: that file is downloaded once into the pipeline's
    cache folder (``LoadContext.cache_dir``), and refused without one.
    ``geo_latitude``/``geo_longitude`` are written as Snowplow writes its
    32-bit floats (``37.751``, not ``37.750999450683594``), and as ``0.0``
    when the address's record has no coordinates (a country-level record), as
    Snowplow's lookup library defaults them.

Differences
    * ``s3:``/``gs:`` URIs are refused at start-up: copy the files next to the
      config.  Our config schemas accept plain paths in ``uri`` (Iglu
      Central's say ``"format": "uri"``); every Snowplow config still validates.
    * Config 1-0-0 (legacy GeoIP ``.dat`` files, which MaxMind stopped
      publishing in 2019 and no maintained reader handles) is refused at
      start-up with a message naming the field.
    * ``geo_region``/``geo_region_name`` come from the most specific
      subdivision (Brent, not England, for 81.2.69.160).
    * ``1.2.3.4:8080`` and ``[2001:db8::1]:443`` are looked up without the port
      (some proxies' ``Forwarded`` headers carry one).
    * A string longer than its atomic field allows (``geo_city`` 75 ...) is cut
      to the limit rather than failing the event.
    * Database files are reopened when they change (size, mtime or inode),
      checked at most every :data:`RELOAD_CHECK_SECONDS`, so a new monthly
      release needs no restart.  The files are memory-mapped: replace them
      atomically (write, then rename, as ``geoipupdate`` does).  Downloaded
      files are not downloaded again.

Cost per event: one LRU cache hit keyed by the address string (the C
extension is only called on a miss; :data:`CACHE_SIZE` addresses, cleared on
reload), a ``time.monotonic()`` and a few ``setattr``.
"""
from __future__ import annotations

import os
import struct
import threading
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from processor.enriched import FIELD_MAX_LENGTHS
from processor.enrichments.base import (
    ConfigError,
    Enrichment,
    EventContext,
    LoadContext,
)
from processor.enrichments.files import locate_file

ASN_SCHEMA = "iglu:com.snowplowanalytics.snowplow/asn/jsonschema/1-0-1"
RELOAD_CHECK_SECONDS = 5.0
CACHE_SIZE = 65_536

# config field -> what the file's metadata ``database_type`` must contain
DATABASES: dict[str, str] = {
    "geo": "City",
    "isp": "ISP",
    "domain": "Domain",
    "connectionType": "Connection-Type",
    "asn": "ASN",
}


# ---------------------------------------------------------------- database files

def _file_signature(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def _open_reader(path: Path, expected_type: str, field_path: str):
    import maxminddb  # here, so that this module imports without the extension

    try:
        reader = maxminddb.open_database(str(path), maxminddb.MODE_MMAP_EXT)
    except (OSError, ValueError, RuntimeError) as exc:  # InvalidDatabaseError is a RuntimeError
        raise ConfigError(f"{field_path}: {str(path)!r} is not a MaxMind DB (.mmdb) file: {exc}") from None
    db_type = reader.metadata().database_type
    if expected_type not in db_type:
        reader.close()
        raise ConfigError(f"{field_path}: {str(path)!r} is a {db_type!r} database, "
                          f"expected a {expected_type} one")
    return reader


class _Database:
    """One open MaxMind database file, reopened when the file changes."""

    __slots__ = ("expected", "key", "path", "reader", "signature")

    def __init__(self, key: str, path: Path):
        self.key = key
        self.path = path
        self.expected = DATABASES[key]
        self.signature = _file_signature(path)
        self.reader = _open_reader(path, self.expected, f"$.data.parameters.{key}")

    def refresh(self) -> bool:
        """Reopen the file if it changed; True when the reader was swapped."""
        signature = _file_signature(self.path)
        if signature is None or signature == self.signature:
            return False
        try:
            reader = _open_reader(self.path, self.expected, self.key)
        except ConfigError:
            return False  # half-written or wrong file: keep serving the old one, retry later
        old, self.reader, self.signature = self.reader, reader, signature
        old.close()
        return True

    def get(self, ip: str) -> dict | None:
        try:
            return self.reader.get(ip)
        except ValueError:  # not an IP address, or IPv6 in an IPv4-only database
            return None

    def close(self) -> None:
        self.reader.close()


# ---------------------------------------------------------------- value helpers

_pack_f32 = struct.Struct("<f").pack


def float32(value: float | None) -> float | None:
    """A double as Snowplow prints its 32-bit float: the shortest decimal that is the same float32."""
    if value is None:
        return None
    packed = _pack_f32(value)
    for digits in range(1, 10):
        candidate = float(f"{value:.{digits}g}")
        if _pack_f32(candidate) == packed:
            return candidate
    return struct.unpack("<f", packed)[0]


def _cut(name: str, value: Any) -> Any:
    limit = FIELD_MAX_LENGTHS.get(name)
    if limit is not None and isinstance(value, str) and len(value) > limit:
        return value[:limit]
    return value


def _name(record: dict | None) -> str | None:
    names = record.get("names") if record else None
    return names.get("en") if names else None


def _normalise_ip(ip: str) -> str:
    ip = ip.strip()
    if ip.startswith("["):  # [v6] or [v6]:port
        return ip[1:].split("]", 1)[0]
    if ip.count(":") == 1:  # v4:port
        return ip.split(":", 1)[0]
    return ip


def _asn(record: dict) -> dict | None:
    number = record.get("autonomous_system_number")
    if number is None:
        return None
    return {"number": number, "organization": record.get("autonomous_system_organization")}


# ---------------------------------------------------------------- the enrichment

@dataclass(frozen=True)
class IpLookups(Enrichment):
    name = "ip_lookups"
    criteria = ("1-0-*", "2-*-*")

    databases: tuple[_Database, ...]
    cache_size: int = CACHE_SIZE
    reload_every: float = RELOAD_CHECK_SECONDS
    # per-instance mutable state (the frozen config holds it by reference)
    _lookup: Any = field(init=False, repr=False, compare=False)
    _state: dict = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_lookup", lru_cache(maxsize=self.cache_size)(self._lookup_uncached))
        object.__setattr__(self, "_state", {"next_check": time.monotonic() + self.reload_every,
                                            "lock": threading.Lock()})

    @classmethod
    def from_parameters(cls, parameters: dict[str, Any], ctx: LoadContext) -> IpLookups:
        legacy = [key for key, spec in parameters.items()
                  if isinstance(spec, dict) and str(spec.get("database", "")).endswith(".dat")]
        if legacy:
            raise ConfigError(f"$.data.parameters.{legacy[0]}.database: legacy GeoIP .dat databases "
                              "(ip_lookups 1-0-0) are not supported; use ip_lookups 2-0-x with .mmdb files")
        databases: list[_Database] = []
        try:
            for key in DATABASES:  # lookup order: geo, isp, domain, connectionType, asn
                spec = parameters.get(key)
                if spec is not None:
                    path = locate_file(spec.get("database"), spec.get("uri"), ctx, f"$.data.parameters.{key}")
                    databases.append(_Database(key, path))
        except ConfigError:
            for db in databases:
                db.close()
            raise
        return cls(databases=tuple(databases))

    # ---- lookups

    def _lookup_uncached(self, ip: str) -> tuple[tuple[tuple[str, Any], ...], dict | None] | None:
        """``((field, value), ...)`` and the ASN entity data for one address; None when nothing is known."""
        ip = _normalise_ip(ip)
        values: list[tuple[str, Any]] = []
        asn: dict | None = None
        for db in self.databases:
            record = db.get(ip)
            if not record:
                continue
            key = db.key
            if key == "geo":
                country, location = record.get("country") or {}, record.get("location") or {}
                subdivisions = record.get("subdivisions")
                region = subdivisions[-1] if subdivisions else None  # the most specific one
                values += [("geo_country", country.get("iso_code")),
                           ("geo_region", region.get("iso_code") if region else None),
                           ("geo_city", _name(record.get("city"))),
                           ("geo_zipcode", (record.get("postal") or {}).get("code")),
                           # a record without coordinates: 0.0, as Snowplow's IpLocation defaults them
                           ("geo_latitude", float32(location.get("latitude") or 0.0)),
                           ("geo_longitude", float32(location.get("longitude") or 0.0)),
                           ("geo_region_name", _name(region)),
                           ("geo_timezone", location.get("time_zone"))]
            elif key == "isp":
                values += [("ip_isp", record.get("isp")), ("ip_organization", record.get("organization"))]
                asn = _asn(record) or asn
            elif key == "domain":
                values.append(("ip_domain", record.get("domain")))
            elif key == "connectionType":
                values.append(("ip_netspeed", record.get("connection_type")))
            elif key == "asn" and asn is None:
                asn = _asn(record)
        fields = tuple((name, _cut(name, value)) for name, value in values if value is not None)
        if not fields and asn is None:
            return None
        return fields, asn

    def lookup(self, ip: str):
        """The cached lookup of one ``user_ipaddress``: ``((field, value), ...), asn_data`` or ``None``."""
        return self._lookup(ip)

    def refresh(self) -> bool:
        """Reopen any database whose file changed (and clear the cache); True if one did."""
        changed = False
        with self._state["lock"]:
            for db in self.databases:
                changed = db.refresh() or changed
            if changed:
                self._lookup.cache_clear()
        return changed

    def enrich(self, event: Any, ctx: EventContext) -> None:
        state = self._state
        now = time.monotonic()
        if now >= state["next_check"]:
            state["next_check"] = now + self.reload_every
            self.refresh()
        ip = event.user_ipaddress
        if not ip:
            return
        result = self._lookup(ip)
        if result is None:
            return
        fields, asn = result
        for name, value in fields:
            setattr(event, name, value)
        if asn is not None:
            ctx.derived.append({"schema": ASN_SCHEMA, "data": dict(asn)})

    def close(self) -> None:
        for db in self.databases:
            db.close()
