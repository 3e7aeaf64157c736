"""Weather enrichment (``weather_enrichment_config``): OpenWeatherMap history at the event's place and time.

What Snowplow does (config
``iglu:com.snowplowanalytics.snowplow.enrichments/weather_enrichment_config/jsonschema/1-0-0``):
for an event with ``geo_latitude``/``geo_longitude`` (normally filled by the
IP lookups enrichment) it asks OpenWeatherMap's history API on ``apiHost``
(``history.openweathermap.org``) for the weather of that place on the event's
day and attaches the observation closest to the event's time as an
``iglu:org.openweathermap/weather/jsonschema/1-0-0`` entity.  Coordinates are
rounded to ``1/geoPrecision`` of a degree (1: ~60 km, 10: ~6 km) so that nearby
events share a cached answer; ``cacheSize`` answers are kept; ``timeout`` is in
seconds.  A failed lookup (timeout, bad key, no data) fails the event, as the
docs say; so does an event without coordinates or timestamp (one
``{field, value: null, expectation}`` message per missing field).

What we do: the same.  The request is
``GET {apiHost}/data/2.5/history/city?lat=..&lon=..&type=hour&start=DAY&end=DAY+1d&appid=KEY``
(https unless ``apiHost`` says ``http://``; an ``apiHost`` with a scheme is
also how tests point it at a local stub), cached per (rounded lat, rounded
lon, UTC day) in an LRU of ``cacheSize`` entries (past weather does not change,
so no expiry; failures are not cached).  The event's time is its
``derived_tstamp``, or ``collector_tstamp`` when that is empty.  The entity
keeps the documented fields of the chosen ``list`` item (``main``, ``wind``,
``clouds``, ``rain``/``snow`` ``1h``/``3h``, ``weather``), drops anything
else the API adds (``feels_like``, ``dew_point`` ...), and writes ``dt`` as an
ISO 8601 UTC date-time.  Temperatures are OpenWeatherMap's default kelvin.
"""
from __future__ import annotations

import json
import math
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlencode

import cachetools
import urllib3

from processor.enrichments.base import (
    ENRICHMENTS_VENDOR,
    ConfigError,
    Enrichment,
    EnrichmentFailure,
    EventContext,
    LoadContext,
)

WEATHER_SCHEMA = "iglu:org.openweathermap/weather/jsonschema/1-0-0"
DAY_MS = 86_400_000

# the entity's fields, per object, as the weather/1-0-0 schema lists them
_MAIN = ("temp", "temp_min", "temp_max", "pressure", "sea_level", "grnd_level", "humidity")
_WIND = ("speed", "deg", "gust", "var_beg", "var_end")
_PRECIP = ("1h", "3h")
_CONDITION = ("id", "main", "description", "icon")


def _pick(obj: Any, keys: tuple[str, ...]) -> dict[str, Any] | None:
    if not isinstance(obj, dict):
        return None
    return {k: obj[k] for k in keys if obj.get(k) is not None}


def weather_entity(item: dict[str, Any]) -> dict[str, Any]:
    """One item of the history API's ``list`` -> the ``org.openweathermap/weather`` entity's data."""
    dt = datetime.fromtimestamp(int(item["dt"]), tz=timezone.utc)
    data: dict[str, Any] = {"dt": dt.strftime("%Y-%m-%dT%H:%M:%S.000Z")}
    main = _pick(item.get("main"), _MAIN)
    if main is not None:
        data["main"] = main
    for name in ("rain", "snow"):
        precip = _pick(item.get(name), _PRECIP)
        if precip:
            data[name] = precip
    wind = _pick(item.get("wind"), _WIND)
    if wind is not None:
        data["wind"] = wind
    clouds = _pick(item.get("clouds"), ("all",))
    if clouds is not None:
        data["clouds"] = clouds
    conditions = item.get("weather")
    if isinstance(conditions, list):
        data["weather"] = [c for c in (_pick(w, _CONDITION) for w in conditions) if c is not None]
    return data


@dataclass(frozen=True)
class Weather(Enrichment):
    name = "weather_enrichment_config"
    vendors = (ENRICHMENTS_VENDOR,)
    criteria = ("1-0-*",)

    api_key: str = field(repr=False)
    base_url: str
    cache_size: int
    geo_precision: int
    timeout: float
    _http: Any = field(default=None, repr=False, compare=False)
    _cache: Any = field(default=None, repr=False, compare=False)
    _lock: Any = field(default_factory=threading.Lock, repr=False, compare=False)

    @classmethod
    def from_parameters(cls, parameters: dict[str, Any], ctx: LoadContext) -> Weather:
        host = parameters["apiHost"].strip().rstrip("/")
        if not host:
            raise ConfigError("$.data.parameters.apiHost: must not be empty")
        base_url = host if host.lower().startswith(("http://", "https://")) else f"https://{host}"
        timeout = float(parameters["timeout"])
        return cls(
            api_key=parameters["apiKey"], base_url=base_url, cache_size=int(parameters["cacheSize"]),
            geo_precision=int(parameters["geoPrecision"]), timeout=timeout,
            _http=urllib3.PoolManager(num_pools=2, maxsize=8, retries=False,
                                      timeout=urllib3.Timeout(total=timeout)),
            _cache=cachetools.LRUCache(maxsize=int(parameters["cacheSize"])),
        )

    # ------------------------------------------------------------------ per event

    def enrich(self, event: Any, ctx: EventContext) -> None:
        lat, lon = event.geo_latitude, event.geo_longitude
        tstamp = event.derived_tstamp if event.derived_tstamp is not None else event.collector_tstamp
        if lat is None or lon is None or tstamp is None:
            missing = [(n, v) for n, v in (("geo_latitude", lat), ("geo_longitude", lon),
                                           ("derived_tstamp", tstamp)) if v is None]
            raise EnrichmentFailure(*(EnrichmentFailure.input(n, None, "set, to look up the weather").messages[0]
                                      for n, _ in missing))
        ms = _epoch_ms(tstamp)
        p = self.geo_precision
        # half up, like Java's Math.round (Python's round() is half to even)
        key = (math.floor(float(lat) * p + 0.5), math.floor(float(lon) * p + 0.5), ms // DAY_MS)
        with self._lock:
            items = self._cache.get(key)
        if items is None:
            items = self._fetch(key[0] / p, key[1] / p, key[2] * DAY_MS // 1000)
            with self._lock:
                self._cache[key] = items
        # the observation closest to the event's time
        seconds = ms / 1000
        best = min(items, key=lambda item: abs(item[0] - seconds))
        ctx.derived.append({"schema": WEATHER_SCHEMA, "data": best[1]})

    def _fetch(self, lat: float, lon: float, day_start: int) -> tuple[tuple[int, dict], ...]:
        """The day's observations at (lat, lon) as ``(dt, entity data)`` pairs."""
        query = urlencode({"lat": f"{lat:g}", "lon": f"{lon:g}", "type": "hour", "start": day_start,
                           "end": day_start + 86_400, "appid": self.api_key})
        url = f"{self.base_url}/data/2.5/history/city?{query}"
        shown = f"{self.base_url}/data/2.5/history/city lat={lat:g} lon={lon:g} start={day_start}"
        try:
            response = self._http.request("GET", url, headers={"Accept": "application/json"})
        except urllib3.exceptions.HTTPError as exc:
            raise EnrichmentFailure.error(f"OpenWeatherMap {shown}: {type(exc).__name__}: {exc}") from None
        try:
            doc = json.loads(response.data)
        except ValueError:
            doc = None
        if response.status != 200 or not isinstance(doc, dict):
            detail = doc.get("message") if isinstance(doc, dict) else None
            raise EnrichmentFailure.error(f"OpenWeatherMap {shown} answered HTTP {response.status}"
                                          f"{': ' + str(detail) if detail else ''}")
        items = []
        for item in doc.get("list") or ():
            if isinstance(item, dict) and isinstance(item.get("dt"), (int, float)):
                items.append((int(item["dt"]), weather_entity(item)))
        if not items:
            raise EnrichmentFailure.error(f"OpenWeatherMap {shown}: no weather data for that place and day")
        return tuple(items)

    def close(self) -> None:
        self._http.clear()


def _epoch_ms(value: Any) -> int:
    if isinstance(value, datetime):
        ts = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        return int(ts.timestamp() * 1000)
    return int(value)
