"""Weather enrichment against a local stub serving OpenWeatherMap history responses."""
import json
from dataclasses import dataclass

import pytest

from processor.analytics import parse_tsv
from processor.enriched import EnrichedEvent
from processor.enrichments import ConfigError, Enrichment, EnrichmentFailure
from processor.stage import Enricher

from .conftest import config_doc, raw_record, run
from .http_stub import HttpStub

NAME = "weather_enrichment_config"
VENDOR = "com.snowplowanalytics.snowplow.enrichments"
DAY = 1_764_201_600                   # 2025-11-27 00:00:00 UTC
EVENT_MS = (DAY + 10 * 3600 + 20 * 60) * 1000   # 10:20 UTC


def observation(hour, temp, **extra):
    item = {"dt": DAY + hour * 3600,
            "main": {"temp": temp, "feels_like": temp - 2, "pressure": 1012, "humidity": 81,
                     "temp_min": temp - 1, "temp_max": temp + 1},
            "wind": {"speed": 4.1, "deg": 250},
            "clouds": {"all": 75},
            "weather": [{"id": 500, "main": "Rain", "description": "light rain", "icon": "10d"}]}
    item.update(extra)
    return item


HISTORY = {"message": "Count: 24", "cod": "200", "city_id": 2950159, "calctime": 0.08, "cnt": 3,
           "list": [observation(9, 280.1), observation(10, 281.3, rain={"1h": 0.3}),
                    observation(11, 282.0, snow={"3h": 1.5})]}


@pytest.fixture
def owm():
    with HttpStub() as stub:
        stub.route("GET", "/data/2.5/history/city",
                   lambda r: HISTORY if r.query.get("appid") == ["KEY"] else (401, {"cod": 401,
                                                                                    "message": "Invalid API key."}))
        yield stub


def params(stub, **extra):
    p = {"apiKey": "KEY", "cacheSize": 100, "geoPrecision": 1, "apiHost": stub.url, "timeout": 2}
    p.update(extra)
    return p


def test_closest_observation_becomes_the_entity(load, owm):
    enrichment = load(config_doc(NAME, "1-0-0", params(owm), vendor=VENDOR))
    _, ctx = run(enrichment, EnrichedEvent(geo_latitude=52.52, geo_longitude=13.41, derived_tstamp=EVENT_MS))
    assert ctx.derived == [{"schema": "iglu:org.openweathermap/weather/jsonschema/1-0-0", "data": {
        "dt": "2025-11-27T10:00:00.000Z",
        "main": {"temp": 281.3, "temp_min": 280.3, "temp_max": 282.3, "pressure": 1012, "humidity": 81},
        "rain": {"1h": 0.3},
        "wind": {"speed": 4.1, "deg": 250},
        "clouds": {"all": 75},
        "weather": [{"id": 500, "main": "Rain", "description": "light rain", "icon": "10d"}]}}]
    query = owm.requests[0].query
    assert query["lat"] == ["53"] and query["lon"] == ["13"]
    assert query["start"] == [str(DAY)] and query["end"] == [str(DAY + 86400)]


def test_nearby_events_share_the_cached_day(load, owm):
    enrichment = load(config_doc(NAME, "1-0-0", params(owm, geoPrecision=2), vendor=VENDOR))
    temps = []
    for lat, lon, hour in ((52.52, 13.41, 9.2), (52.61, 13.30, 11.9), (52.70, 13.41, 10)):
        _, ctx = run(enrichment, EnrichedEvent(geo_latitude=lat, geo_longitude=lon,
                                               derived_tstamp=int((DAY + hour * 3600) * 1000)))
        temps.append(ctx.derived[0]["data"]["main"]["temp"])
    assert temps == [280.1, 282.0, 281.3]
    # at 1/2 degree 52.52, 52.61 and 52.70 all round to 52.5, 13.41 and 13.30 to 13.5: one request
    assert len(owm.requests) == 1
    assert owm.requests[0].query["lat"] == ["52.5"] and owm.requests[0].query["lon"] == ["13.5"]


def test_collector_tstamp_used_without_derived_tstamp(load, owm):
    enrichment = load(config_doc(NAME, "1-0-0", params(owm), vendor=VENDOR))
    _, ctx = run(enrichment, EnrichedEvent(geo_latitude=1.0, geo_longitude=2.0,
                                           collector_tstamp=(DAY + 9 * 3600) * 1000))
    assert ctx.derived[0]["data"]["dt"] == "2025-11-27T09:00:00.000Z"


def test_missing_coordinates_fail_the_event(load, owm):
    enrichment = load(config_doc(NAME, "1-0-0", params(owm), vendor=VENDOR))
    with pytest.raises(EnrichmentFailure) as info:
        run(enrichment, EnrichedEvent(derived_tstamp=EVENT_MS))
    assert [m["field"] for m in info.value.messages] == ["geo_latitude", "geo_longitude"]
    assert owm.requests == []


def test_bad_key_fails_and_is_not_cached(load, owm):
    enrichment = load(config_doc(NAME, "1-0-0", params(owm, apiKey="NOPE"), vendor=VENDOR))
    for _ in range(2):
        with pytest.raises(EnrichmentFailure) as info:
            run(enrichment, EnrichedEvent(geo_latitude=1.0, geo_longitude=2.0, derived_tstamp=EVENT_MS))
        assert "HTTP 401" in info.value.messages[0]["error"] and "NOPE" not in info.value.messages[0]["error"]
    assert len(owm.requests) == 2


def test_empty_history_and_timeout_fail(load):
    with HttpStub() as stub:
        stub.route("GET", "/data/2.5/history/city", {"cod": "200", "cnt": 0, "list": []})
        enrichment = load(config_doc(NAME, "1-0-0", params(stub), vendor=VENDOR))
        with pytest.raises(EnrichmentFailure, match="no weather data"):
            run(enrichment, EnrichedEvent(geo_latitude=1.0, geo_longitude=2.0, derived_tstamp=EVENT_MS))
        stub.route("GET", "/data/2.5/history/city", HISTORY, delay=5)
        enrichment = load(config_doc(NAME, "1-0-0", params(stub, timeout=1), vendor=VENDOR))
        object.__setattr__(enrichment, "_http", __import__("urllib3").PoolManager(
            retries=False, timeout=0.1))  # the config's minimum is 1 s; keep the test fast
        with pytest.raises(EnrichmentFailure, match="OpenWeatherMap"):
            run(enrichment, EnrichedEvent(geo_latitude=1.0, geo_longitude=2.0, derived_tstamp=EVENT_MS))


def test_host_without_scheme_means_https(load):
    enrichment = load(config_doc(NAME, "1-0-0", {"apiKey": "K", "cacheSize": 1, "geoPrecision": 1,
                                                 "apiHost": "history.openweathermap.org", "timeout": 5},
                                 vendor=VENDOR))
    assert enrichment.base_url == "https://history.openweathermap.org"


@pytest.mark.parametrize("change,field", [
    ({"geoPrecision": 11}, "geoPrecision"),
    ({"cacheSize": 0}, "cacheSize"),
    ({"timeout": 0}, "timeout"),
    ({"apiHost": None}, "apiHost"),
    ({"apiHost": "  "}, "apiHost"),
    ({"units": "metric"}, "units"),
])
def test_invalid_config_is_refused_naming_the_field(load, owm, change, field):
    p = params(owm)
    for k, v in change.items():
        if v is None:
            p.pop(k)
        else:
            p[k] = v
    with pytest.raises(ConfigError, match=field):
        load(config_doc(NAME, "1-0-0", p, vendor=VENDOR))


@dataclass(frozen=True)
class FixedGeo(Enrichment):
    """Stands in for ip_lookups: puts the event in Berlin."""
    name = "ip_lookups"

    def enrich(self, event, ctx):
        if "nogeo" not in (ctx.params.get("aid") or ""):
            event.geo_latitude, event.geo_longitude = 52.52, 13.41


def test_through_the_stage(resolver, owm):
    from processor.enrichments import parse_enrichment
    weather = parse_enrichment(config_doc(NAME, "1-0-0", params(owm), vendor=VENDOR), resolver)
    enricher = Enricher(resolver, enrichments=[FixedGeo(), weather], clock=lambda: 1_764_288_005.0)

    def raw(aid):
        return raw_record(
            timestamp=EVENT_MS, querystring=f"e=pv&p=web&tv=js-4.1.0&aid={aid}&url=https%3A%2F%2Fshop.acme.com%2F")

    out = enricher.enrich(raw("shop"))
    assert out.bad == [] and len(out.good) == 1
    row = parse_tsv(out.good[0])
    weather_data = row["contexts_org_openweathermap_weather_1"]
    assert weather_data[0]["dt"] == "2025-11-27T10:00:00.000Z" and weather_data[0]["main"]["temp"] == 281.3
    bad = enricher.enrich(raw("nogeo"))
    assert bad.good == [] and len(bad.bad) == 1
    body = json.loads(bad.bad[0])
    assert "enrichment_failures" in body["schema"] and "geo_latitude" in bad.bad[0].decode()
