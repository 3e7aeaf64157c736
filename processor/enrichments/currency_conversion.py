"""Currency conversion (``currency_conversion_config``): ``tr_*``/``ti_*`` amounts in a base currency.

What Snowplow does (config ``iglu:com.snowplowanalytics.snowplow/currency_conversion_config/jsonschema/1-0-0``):
for a transaction, ``tr_total``, ``tr_tax`` and ``tr_shipping`` in
``tr_currency`` become ``tr_total_base``, ``tr_tax_base`` and
``tr_shipping_base`` in ``baseCurrency``; for a transaction item ``ti_price``
in ``ti_currency`` becomes ``ti_price_base``; ``base_currency`` is set to
``baseCurrency``.  The rate is Open Exchange Rates' end-of-day rate of the day
*before* the event's ``collector_tstamp`` (``rateAt: EOD_PRIOR``, the only
choice), read from the historical endpoint
``/api/historical/YYYY-MM-DD.json?app_id=KEY``.  Amounts are rounded to 2
decimal places, half to even.  An event without a currency (or without any
amount) is left alone; a currency Open Exchange Rates does not know, or an
API that cannot answer, fails the event.

What we do: the same.  The historical endpoint always answers in USD, so every
conversion is the cross rate ``amount * rate[base] / rate[currency]`` in
:class:`~decimal.Decimal` arithmetic (the rates are parsed as decimals), which
works with every ``accountType`` (``DEVELOPER`` plans cannot ask for another
base).  One day's rates are fetched once and kept (past days do not change;
the last 400 days are cached), through a pooled :mod:`urllib3` client with a
10 s timeout and no retries; failures are not cached.

snowmelt extensions.  Snowplow's 1-0-0 config is accepted as is.  The
extensions live in a snowmelt-vendored config schema,
``iglu:io.snowmelt.enrichments/currency_conversion_config/jsonschema/1-0-0``:
Snowplow's four parameters plus

``apiUrl``
    base URL of an Open Exchange Rates compatible API (default
    ``https://openexchangerates.org/api``), e.g. a local mirror or a test stub;
``ratesFile``
    a local JSON file ``{"2025-11-26": {"EUR": 0.8634, "GBP": 0.7577, ...}, ...}``
    of end-of-day rates *per US dollar* by day (path or ``file:`` URI,
    relative to the enrichments folder; keep it in a subfolder such as
    ``data/``, since every ``*.json`` of the folder itself is read as an
    enrichment config), read once at start-up; when given,
    the API is never called, a day missing from the file fails the event, and
    ``apiKey``/``accountType`` may be left out.

We chose a vendored schema over new properties in Snowplow's schema so that
Snowplow's own schema stays exactly Snowplow's (``additionalProperties:
false``), and over environment variables so that the whole config lives in the
enrichment file.  For a Snowplow config, the environment variable
``SNOWMELT_OPENEXCHANGERATES_URL`` overrides the API base URL (a snowmelt
config's ``apiUrl`` wins over it).
"""
from __future__ import annotations

import json
import os
import re
import threading
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any
from urllib.parse import quote

import cachetools
import urllib3

from processor.enrichments.base import (
    ENRICHMENT_VENDOR,
    ConfigError,
    Enrichment,
    EnrichmentFailure,
    EventContext,
    LoadContext,
)

SNOWMELT_VENDOR = "io.snowmelt.enrichments"
DEFAULT_API_URL = "https://openexchangerates.org/api"
API_URL_ENV = "SNOWMELT_OPENEXCHANGERATES_URL"
TIMEOUT_SECONDS = 10.0
CENT = Decimal("0.01")
_CODE = re.compile(r"^[A-Z]{3}$")
_EPOCH_DAY = date(1970, 1, 1)


def _day_before(collector_tstamp: Any) -> date:
    """The day whose end-of-day rate applies (EOD_PRIOR), from epoch ms or a datetime."""
    if isinstance(collector_tstamp, datetime):
        ts = collector_tstamp if collector_tstamp.tzinfo else collector_tstamp.replace(tzinfo=timezone.utc)
        return ts.astimezone(timezone.utc).date() - timedelta(days=1)
    return _EPOCH_DAY + timedelta(days=int(collector_tstamp) // 86_400_000 - 1)


def _decimal(value: Any) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value))


def _load_rates_file(path, where: str) -> dict[date, dict[str, Decimal]]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"), parse_float=Decimal, parse_int=Decimal)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ConfigError(f"{where}: cannot read {path}: {exc}") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{where}: {path} must hold an object of days")
    out: dict[date, dict[str, Decimal]] = {}
    for day, rates in doc.items():
        try:
            parsed_day = date.fromisoformat(day)
        except ValueError:
            raise ConfigError(f"{where}: {path}: {day!r} is not a YYYY-MM-DD day") from None
        if not isinstance(rates, dict) or not all(isinstance(r, Decimal) and r > 0 for r in rates.values()):
            raise ConfigError(f"{where}: {path}: {day}: rates must be an object of positive numbers")
        out[parsed_day] = {code.upper(): rate for code, rate in rates.items()}
    return out


@dataclass(frozen=True)
class CurrencyConversion(Enrichment):
    name = "currency_conversion_config"
    vendors = (ENRICHMENT_VENDOR, SNOWMELT_VENDOR)
    criteria = ("1-0-*",)

    base_currency: str
    api_key: str | None
    account_type: str | None
    api_url: str
    rates_file: dict[date, dict[str, Decimal]] | None = field(default=None, repr=False)
    _http: Any = field(default=None, repr=False, compare=False)
    _cache: Any = field(default=None, repr=False, compare=False)
    _lock: Any = field(default_factory=threading.Lock, repr=False, compare=False)

    @classmethod
    def from_parameters(cls, parameters: dict[str, Any], ctx: LoadContext) -> CurrencyConversion:
        base = parameters["baseCurrency"]
        if not _CODE.match(base):
            raise ConfigError(f"$.data.parameters.baseCurrency: {base!r} is not an ISO 4217 code (like EUR)")
        rates_file = None
        if parameters.get("ratesFile"):
            rates_file = _load_rates_file(ctx.resolve_path(parameters["ratesFile"]), "$.data.parameters.ratesFile")
        elif not parameters.get("apiKey"):
            raise ConfigError("$.data.parameters.apiKey: is required (unless ratesFile is given)")
        api_url = (parameters.get("apiUrl") or os.environ.get(API_URL_ENV) or DEFAULT_API_URL).rstrip("/")
        if not api_url.lower().startswith(("http://", "https://")):
            raise ConfigError(f"$.data.parameters.apiUrl: {api_url!r} is not an http(s) URL")
        return cls(
            base_currency=base, api_key=parameters.get("apiKey"), account_type=parameters.get("accountType"),
            api_url=api_url, rates_file=rates_file,
            _http=None if rates_file is not None else urllib3.PoolManager(
                num_pools=1, maxsize=4, retries=False, timeout=urllib3.Timeout(total=TIMEOUT_SECONDS)),
            _cache=cachetools.LRUCache(maxsize=400),
        )

    # ------------------------------------------------------------------ per event

    def enrich(self, event: Any, ctx: EventContext) -> None:
        tr_currency, ti_currency = event.tr_currency, event.ti_currency
        tr_amounts = tr_currency and (event.tr_total is not None or event.tr_tax is not None
                                      or event.tr_shipping is not None)
        ti_amount = ti_currency and event.ti_price is not None
        if not (tr_amounts or ti_amount):
            return
        if event.collector_tstamp is None:
            raise EnrichmentFailure.input("collector_tstamp", None, "a timestamp to pick the day's rate")
        rates = self.rates_for(_day_before(event.collector_tstamp))
        to_base = rates.get(self.base_currency)
        if to_base is None:
            raise EnrichmentFailure.error(f"no {self.base_currency} rate (baseCurrency) for "
                                          f"{_day_before(event.collector_tstamp)}")
        failures = []
        if tr_amounts:
            rate = rates.get(tr_currency.upper())
            if rate is None:
                failures.append(EnrichmentFailure.input(
                    "tr_currency", tr_currency, "a currency code that Open Exchange Rates knows"))
            else:
                if event.tr_total is not None:
                    event.tr_total_base = self._convert("tr_total", event.tr_total, rate, to_base)
                if event.tr_tax is not None:
                    event.tr_tax_base = self._convert("tr_tax", event.tr_tax, rate, to_base)
                if event.tr_shipping is not None:
                    event.tr_shipping_base = self._convert("tr_shipping", event.tr_shipping, rate, to_base)
        if ti_amount:
            rate = rates.get(ti_currency.upper())
            if rate is None:
                failures.append(EnrichmentFailure.input(
                    "ti_currency", ti_currency, "a currency code that Open Exchange Rates knows"))
            else:
                event.ti_price_base = self._convert("ti_price", event.ti_price, rate, to_base)
        if failures:
            raise EnrichmentFailure(*(m for f in failures for m in f.messages))
        event.base_currency = self.base_currency

    @staticmethod
    def _convert(name: str, amount: Any, rate: Decimal, to_base: Decimal) -> Decimal:
        try:
            return (_decimal(amount) * to_base / rate).quantize(CENT, rounding=ROUND_HALF_EVEN)
        except InvalidOperation:
            raise EnrichmentFailure.input(name, amount, "a decimal amount") from None

    def rates_for(self, day: date) -> dict[str, Decimal]:
        """USD-based end-of-day rates of ``day`` (from the file, the cache or the API)."""
        if self.rates_file is not None:
            rates = self.rates_file.get(day)
            if rates is None:
                raise EnrichmentFailure.error(f"no exchange rates for {day} in ratesFile")
            return rates
        with self._lock:
            rates = self._cache.get(day)
        if rates is None:
            rates = self._fetch(day)
            with self._lock:
                self._cache[day] = rates
        return rates

    def _fetch(self, day: date) -> dict[str, Decimal]:
        url = f"{self.api_url}/historical/{day.isoformat()}.json?app_id={quote(self.api_key or '', safe='')}"
        shown = f"{self.api_url}/historical/{day.isoformat()}.json"  # never the key in a bad row
        try:
            response = self._http.request("GET", url, headers={"Accept": "application/json"})
        except urllib3.exceptions.HTTPError as exc:
            raise EnrichmentFailure.error(f"Open Exchange Rates {shown}: {type(exc).__name__}: {exc}") from None
        try:
            doc = json.loads(response.data, parse_float=Decimal, parse_int=Decimal)
        except ValueError:
            doc = None
        if response.status != 200 or not isinstance(doc, dict) or not isinstance(doc.get("rates"), dict):
            detail = doc.get("description") or doc.get("message") if isinstance(doc, dict) else None
            raise EnrichmentFailure.error(f"Open Exchange Rates {shown} answered HTTP {response.status}"
                                          f"{': ' + str(detail) if detail else ''}")
        return {code.upper(): rate for code, rate in doc["rates"].items()
                if isinstance(rate, Decimal) and rate > 0}

    def close(self) -> None:
        if self._http is not None:
            self._http.clear()
