"""Currency conversion: Open Exchange Rates (local stub) and the snowmelt rates file."""
from decimal import Decimal

import pytest

from processor.analytics import parse_tsv
from processor.enriched import FIELD_INDEX, EnrichedEvent
from processor.enrichments import ConfigError, EnrichmentFailure
from processor.enrichments.currency_conversion import API_URL_ENV
from processor.stage import Enricher

from .conftest import config_doc, raw_record, run, write_json
from .http_stub import HttpStub

NAME = "currency_conversion_config"
SNOWMELT = "io.snowmelt.enrichments"
COLLECTED = 1_764_288_000_123          # 2025-11-28 00:00:00.123 UTC -> rates of 2025-11-27
RATES = {"USD": 1, "EUR": 0.8634, "GBP": 0.7577, "JPY": 156.12}


@pytest.fixture
def oxr():
    with HttpStub() as stub:
        stub.route("GET", "/api/historical/2025-11-27.json",
                   lambda r: (200, {"disclaimer": "x", "base": "USD", "timestamp": 1764287999, "rates": RATES})
                   if r.query.get("app_id") == ["KEY"] else
                   (401, {"error": True, "status": 401, "message": "invalid_app_id",
                          "description": "Invalid App ID provided."}))
        yield stub


def snowplow_params(**extra):
    p = {"apiKey": "KEY", "baseCurrency": "EUR", "rateAt": "EOD_PRIOR", "accountType": "DEVELOPER"}
    p.update(extra)
    return p


def transaction(**fields):
    base = {"event": "transaction", "collector_tstamp": COLLECTED, "tr_currency": "GBP",
                "tr_total": Decimal("100.00"), "tr_tax": Decimal("20.00"), "tr_shipping": Decimal("4.99")}
    base.update(fields)
    return EnrichedEvent(**base)


def test_transaction_converted_at_prior_day_rate_from_api(load, oxr, monkeypatch):
    monkeypatch.setenv(API_URL_ENV, oxr.url + "/api")
    enrichment = load(config_doc(NAME, "1-0-0", snowplow_params()))
    event, ctx = run(enrichment, transaction())
    # 100 GBP -> USD 100/0.7577 -> EUR * 0.8634 = 113.9501..., half-even to cents
    assert event.tr_total_base == Decimal("113.95")
    assert event.tr_tax_base == Decimal("22.79")
    assert event.tr_shipping_base == Decimal("5.69")
    assert event.base_currency == "EUR" and ctx.derived == []
    assert [r.path for r in oxr.requests] == ["/api/historical/2025-11-27.json"]
    assert oxr.requests[0].query["app_id"] == ["KEY"]


def test_rates_are_fetched_once_per_day(load, oxr):
    enrichment = load(config_doc(NAME, "1-0-0", snowplow_params(apiUrl=oxr.url + "/api"), vendor=SNOWMELT))
    for _ in range(3):
        event, _ = run(enrichment, EnrichedEvent(event="transaction_item", collector_tstamp=COLLECTED,
                                                 ti_currency="JPY", ti_price=Decimal("1561.2")))
        assert event.ti_price_base == Decimal("8.63")
    assert len(oxr.requests) == 1


def test_same_currency_and_half_even_rounding(tmp_path, load):
    write_json(tmp_path / "rates.json", {"2025-11-27": {"USD": 1, "EUR": 0.5}})
    enrichment = load(config_doc(NAME, "1-0-0", {"baseCurrency": "USD", "rateAt": "EOD_PRIOR",
                                                 "ratesFile": "rates.json"}, vendor=SNOWMELT))
    # 0.0125 EUR -> 0.025 USD -> 0.02 (half to even); 0.0375 -> 0.075 -> 0.08
    event, _ = run(enrichment, transaction(tr_currency="EUR", tr_total=Decimal("0.0125"),
                                           tr_tax=Decimal("0.0375"), tr_shipping=None))
    assert event.tr_total_base == Decimal("0.02") and event.tr_tax_base == Decimal("0.08")
    assert event.tr_shipping_base is None
    event, _ = run(enrichment, transaction(tr_currency="USD", tr_total=Decimal("12.5")))
    assert event.tr_total_base == Decimal("12.50")


@pytest.mark.parametrize("fields", [{"tr_currency": None}, {"tr_total": None, "tr_tax": None, "tr_shipping": None}])
def test_nothing_to_convert_leaves_the_event_alone(load, oxr, fields):
    enrichment = load(config_doc(NAME, "1-0-0", snowplow_params(apiUrl=oxr.url + "/api"), vendor=SNOWMELT))
    event, _ = run(enrichment, transaction(**fields))
    assert event.tr_total_base is None and event.base_currency is None and oxr.requests == []


def test_unknown_currency_is_an_input_failure(load, oxr):
    enrichment = load(config_doc(NAME, "1-0-0", snowplow_params(apiUrl=oxr.url + "/api"), vendor=SNOWMELT))
    with pytest.raises(EnrichmentFailure) as info:
        run(enrichment, transaction(tr_currency="XXQ"))
    assert info.value.messages == [{"field": "tr_currency", "value": "XXQ",
                                    "expectation": "a currency code that Open Exchange Rates knows"}]


def test_api_error_fails_and_is_not_cached(load, oxr):
    enrichment = load(config_doc(NAME, "1-0-0", snowplow_params(apiKey="WRONG", apiUrl=oxr.url + "/api"),
                                 vendor=SNOWMELT))
    for _ in range(2):
        with pytest.raises(EnrichmentFailure) as info:
            run(enrichment, transaction())
        message = info.value.messages[0]["error"]
        assert "HTTP 401" in message and "Invalid App ID" in message and "WRONG" not in message
    assert len(oxr.requests) == 2


def test_unreachable_api_fails(load):
    with HttpStub() as stub:
        dead = stub.url
    enrichment = load(config_doc(NAME, "1-0-0", snowplow_params(apiUrl=dead + "/api"), vendor=SNOWMELT))
    with pytest.raises(EnrichmentFailure, match="Open Exchange Rates"):
        run(enrichment, transaction())


def test_rates_file_day_missing_fails(tmp_path, load):
    write_json(tmp_path / "rates.json", {"2020-01-01": {"EUR": 0.9}})
    enrichment = load(config_doc(NAME, "1-0-0", snowplow_params(ratesFile="rates.json"), vendor=SNOWMELT))
    with pytest.raises(EnrichmentFailure, match="2025-11-27"):
        run(enrichment, transaction())


@pytest.mark.parametrize("vendor,parameters,field", [
    (None, snowplow_params(accountType="FREE"), "accountType"),
    (None, snowplow_params(rateAt="NOW"), "rateAt"),
    (None, {"baseCurrency": "EUR", "rateAt": "EOD_PRIOR", "accountType": "DEVELOPER"}, "apiKey"),
    (None, snowplow_params(apiUrl="http://x"), "apiUrl"),         # not in Snowplow's schema
    (None, snowplow_params(baseCurrency="euro"), "baseCurrency"),
    (SNOWMELT, {"baseCurrency": "EUR", "rateAt": "EOD_PRIOR"}, "apiKey"),
    (SNOWMELT, snowplow_params(apiUrl="ftp://x"), "apiUrl"),
    (SNOWMELT, snowplow_params(ratesFile="missing.json"), "ratesFile"),
])
def test_invalid_config_is_refused_naming_the_field(load, vendor, parameters, field):
    doc = config_doc(NAME, "1-0-0", parameters, **({"vendor": vendor} if vendor else {}))
    with pytest.raises(ConfigError, match=field):
        load(doc)


def test_bad_rates_file_is_refused(tmp_path, load):
    write_json(tmp_path / "rates.json", {"yesterday": {"EUR": 0.9}})
    with pytest.raises(ConfigError, match="ratesFile"):
        load(config_doc(NAME, "1-0-0", snowplow_params(ratesFile="rates.json"), vendor=SNOWMELT))


def test_through_the_stage(resolver, oxr):
    from processor.enrichments import parse_enrichment
    enrichment = parse_enrichment(config_doc(NAME, "1-0-0", snowplow_params(apiUrl=oxr.url + "/api"),
                                             vendor=SNOWMELT), resolver)
    enricher = Enricher(resolver, enrichments=[enrichment], clock=lambda: 1_764_288_005.0)
    raw = raw_record(
        timestamp=COLLECTED,
        querystring="e=tr&p=web&tv=js-4.1.0&tr_id=o-1&tr_tt=100.00&tr_tx=20.00&tr_sh=4.99&tr_cu=GBP")
    out = enricher.enrich(raw)
    assert out.bad == [] and len(out.good) == 1
    fields = out.good[0].split("\t")
    assert fields[FIELD_INDEX["tr_total_base"]] == "113.95"
    assert fields[FIELD_INDEX["tr_shipping_base"]] == "5.69"
    assert fields[FIELD_INDEX["base_currency"]] == "EUR"
    row = parse_tsv(out.good[0])
    assert row["tr_tax_base"] == 22.79 and row["tr_currency"] == "GBP"
