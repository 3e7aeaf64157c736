"""ip_lookups: the real GeoLite2 City database (2018) and small ISP/domain/connection/ASN DBs built here."""
import dataclasses
import functools
import http.server
import json
import os
import threading
import time
from pathlib import Path
from urllib.parse import urlencode

import pytest
from _maxminddb_geolite2 import geolite2_database
from mmdb_writer import MMDBWriter
from netaddr import IPSet

from processor.enriched import FIELD_INDEX, EnrichedEvent, to_tsv
from processor.enrichments import ConfigError, LoadContext, parse_enrichment
from processor.enrichments.ip_lookups import float32
from processor.stage import Enricher
from tests.unit.test_stage import raw

from .conftest import config_doc, run

GEO_DIR = str(Path(geolite2_database()).parent)  # holds GeoLite2-City.mmdb
ASN_SCHEMA = "iglu:com.snowplowanalytics.snowplow/asn/jsonschema/1-0-1"
GEO_FIELDS = ("geo_country", "geo_region", "geo_city", "geo_zipcode", "geo_latitude", "geo_longitude",
              "geo_region_name", "geo_timezone")


def geo(uri=GEO_DIR, database="GeoLite2-City.mmdb"):
    return {"database": database, "uri": uri}


def write_db(path: Path, database_type: str, networks: dict[str, dict]) -> Path:
    """A small MaxMind DB (IPv6 tree holding IPv4 too) at ``path``, replaced atomically."""
    writer = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type=database_type)
    for cidr, data in networks.items():
        writer.insert_network(IPSet([cidr]), data)
    tmp = path.with_suffix(".tmp")
    writer.to_db_file(str(tmp))
    os.replace(tmp, path)
    return path


@pytest.fixture
def small_dbs(tmp_path):
    """ISP, domain, connection-type and ASN databases for 203.0.113.0/24 and 198.51.100.0/24."""
    write_db(tmp_path / "GeoIP2-ISP.mmdb", "GeoIP2-ISP", {
        "203.0.113.0/24": {"isp": "Acme Broadband", "organization": "Acme Corp",
                           "autonomous_system_number": 64500, "autonomous_system_organization": "ACME-AS"},
        "198.51.100.0/24": {"isp": "Example Telecom"},
    })
    write_db(tmp_path / "GeoIP2-Domain.mmdb", "GeoIP2-Domain", {"203.0.113.0/24": {"domain": "acme.example"}})
    write_db(tmp_path / "GeoIP2-Connection-Type.mmdb", "GeoIP2-Connection-Type",
             {"203.0.113.0/24": {"connection_type": "Cable/DSL"}, "198.51.100.0/24": {"connection_type": "Cellular"}})
    write_db(tmp_path / "GeoLite2-ASN.mmdb", "GeoLite2-ASN", {
        "203.0.113.0/24": {"autonomous_system_number": 64999, "autonomous_system_organization": "FREE-ASN"},
        "198.51.100.0/24": {"autonomous_system_number": 64501, "autonomous_system_organization": "EXAMPLE-AS"},
    })
    return tmp_path


def small(tmp_path, *names):
    files = {"isp": "GeoIP2-ISP.mmdb", "domain": "GeoIP2-Domain.mmdb",
             "connectionType": "GeoIP2-Connection-Type.mmdb", "asn": "GeoLite2-ASN.mmdb"}
    return {name: {"database": files[name], "uri": str(tmp_path)} for name in names}


# ---------------------------------------------------------------- the City database

@pytest.mark.parametrize("ip,expected", [
    ("81.2.69.160", ("GB", "BEN", "Willesden", "NW10", 51.5333, -0.2333, "Brent", "Europe/London")),
    ("89.160.20.112", ("SE", "AB", "Stockholm", "173 11", 59.3333, 18.05, "Stockholm", "Europe/Stockholm")),
    ("175.16.199.0", ("CN", "JL", "Changchun", None, 43.88, 125.3228, "Jilin", "Asia/Shanghai")),
    ("128.101.101.101", ("US", "MN", "Minneapolis", "55414", 44.9759, -93.2166, "Minnesota", "America/Chicago")),
    ("2001:4860:4860::8888", ("US", "CA", "Mountain View", "94043", 37.4192, -122.0574, "California",
                              "America/Los_Angeles")),
    # country-level only: no city, region, postcode or time zone
    ("8.8.8.8", ("US", None, None, None, 37.751, -97.822, None, None)),
])
def test_city_database_fills_geo_fields(load, ip, expected):
    enrichment = load(config_doc("ip_lookups", "2-0-0", {"geo": geo()}))
    event, ctx = run(enrichment, EnrichedEvent(user_ipaddress=ip))
    assert tuple(getattr(event, name) for name in GEO_FIELDS) == expected
    assert ctx.derived == []  # no ASN database configured
    assert event.user_ipaddress == ip


def test_a_record_without_coordinates_gives_zero_coordinates_as_snowplow(load, tmp_path):
    # scala-maxmind-iplookups 0.7.1 (Snowplow enrich 3.9.0's): a missing latitude or longitude is 0F
    write_db(tmp_path / "GeoLite2-City.mmdb", "GeoLite2-City", {"203.0.113.0/24": {"country": {"iso_code": "FR"}}})
    enrichment = load(config_doc("ip_lookups", "2-0-0", {"geo": geo(str(tmp_path))}))
    event, _ = run(enrichment, EnrichedEvent(user_ipaddress="203.0.113.7"))
    assert tuple(getattr(event, name) for name in GEO_FIELDS) == ("FR", None, None, None, 0.0, 0.0, None, None)
    assert to_tsv(EnrichedEvent(geo_latitude=event.geo_latitude)).split("\t")[FIELD_INDEX["geo_latitude"]] == "0.0"


def test_coordinates_are_printed_like_snowplows_32_bit_floats():
    # MaxMind stores 37.419200000000004 (a double); Snowplow's Float prints 37.4192
    assert float32(37.419200000000004) == 37.4192
    assert float32(-0.2333) == -0.2333
    assert float32(None) is None


@pytest.mark.parametrize("ip", ["10.0.0.1", "127.0.0.1", "192.168.1.20", "::1"])
def test_address_not_in_database_fills_nothing_and_is_no_failure(load, ip):
    enrichment = load(config_doc("ip_lookups", "2-0-0", {"geo": geo()}))
    event, ctx = run(enrichment, EnrichedEvent(user_ipaddress=ip))
    assert event.as_dict() == {"user_ipaddress": ip} and ctx.derived == []


@pytest.mark.parametrize("value", [None, "", "not-an-ip", "81.2.x.x", "999.1.1.1", "fe80::zz"])
def test_value_that_is_no_ip_is_left_alone(load, value):
    enrichment = load(config_doc("ip_lookups", "2-0-0", {"geo": geo()}))
    event, ctx = run(enrichment, EnrichedEvent(user_ipaddress=value))
    assert event.user_ipaddress == value
    assert all(getattr(event, name) is None for name in GEO_FIELDS) and ctx.derived == []


@pytest.mark.parametrize("ip", ["81.2.69.160:52311", "[2001:4860:4860::8888]:443"])
def test_port_is_ignored_for_the_lookup(load, ip):
    enrichment = load(config_doc("ip_lookups", "2-0-0", {"geo": geo()}))
    event, _ = run(enrichment, EnrichedEvent(user_ipaddress=ip))
    assert event.geo_country in ("GB", "US") and event.geo_city is not None
    assert event.user_ipaddress == ip  # the field itself is not rewritten


# ---------------------------------------------------------------- ISP, domain, connection type, ASN

def test_isp_domain_and_connection_type(load, small_dbs):
    enrichment = load(config_doc("ip_lookups", "2-0-0", small(small_dbs, "isp", "domain", "connectionType")))
    event, ctx = run(enrichment, EnrichedEvent(user_ipaddress="203.0.113.77"))
    assert (event.ip_isp, event.ip_organization, event.ip_domain, event.ip_netspeed) == \
        ("Acme Broadband", "Acme Corp", "acme.example", "Cable/DSL")
    # the ISP database's ASN data makes the asn entity
    assert ctx.derived == [{"schema": ASN_SCHEMA, "data": {"number": 64500, "organization": "ACME-AS"}}]
    event, ctx = run(enrichment, EnrichedEvent(user_ipaddress="198.51.100.3"))
    assert (event.ip_isp, event.ip_organization, event.ip_domain, event.ip_netspeed) == \
        ("Example Telecom", None, None, "Cellular")
    assert ctx.derived == []


def test_asn_database_alone_attaches_the_asn_entity(load, small_dbs):
    enrichment = load(config_doc("ip_lookups", "2-0-1", small(small_dbs, "asn")))
    event, ctx = run(enrichment, EnrichedEvent(user_ipaddress="198.51.100.3"))
    assert ctx.derived == [{"schema": ASN_SCHEMA, "data": {"number": 64501, "organization": "EXAMPLE-AS"}}]
    assert event.ip_isp is None


def test_isp_asn_wins_over_asn_database_and_asn_fills_the_gaps(load, small_dbs):
    enrichment = load(config_doc("ip_lookups", "2-0-1", {"geo": geo(), **small(small_dbs, "isp", "asn")}))
    _, ctx = run(enrichment, EnrichedEvent(user_ipaddress="203.0.113.5"))
    assert [d["data"]["number"] for d in ctx.derived] == [64500]
    _, ctx = run(enrichment, EnrichedEvent(user_ipaddress="198.51.100.5"))  # ISP row without ASN
    assert [d["data"]["number"] for d in ctx.derived] == [64501]


def test_every_event_gets_its_own_entity_dict(load, small_dbs):
    enrichment = load(config_doc("ip_lookups", "2-0-1", small(small_dbs, "asn")))
    _, first = run(enrichment, EnrichedEvent(user_ipaddress="198.51.100.3"))
    first.derived[0]["data"]["number"] = 1
    _, second = run(enrichment, EnrichedEvent(user_ipaddress="198.51.100.3"))
    assert second.derived[0]["data"]["number"] == 64501


def test_ipv4_only_database_and_ipv6_address_is_no_failure(load, tmp_path):
    writer = MMDBWriter(ip_version=4, database_type="GeoIP2-Domain")
    writer.insert_network(IPSet(["203.0.113.0/24"]), {"domain": "v4.example"})
    writer.to_db_file(str(tmp_path / "GeoIP2-Domain.mmdb"))
    enrichment = load(config_doc("ip_lookups", "2-0-0", {"domain": {"database": "GeoIP2-Domain.mmdb",
                                                                    "uri": str(tmp_path)}}))
    assert run(enrichment, EnrichedEvent(user_ipaddress="203.0.113.1"))[0].ip_domain == "v4.example"
    assert run(enrichment, EnrichedEvent(user_ipaddress="2001:db8::1"))[0].ip_domain is None


# ---------------------------------------------------------------- configs

@pytest.mark.parametrize("uri", [GEO_DIR, GEO_DIR + "/", "file:" + GEO_DIR, "file://" + GEO_DIR])
def test_local_folder_and_file_uris_are_accepted(load, uri):
    enrichment = load(config_doc("ip_lookups", "2-0-1", {"geo": geo(uri)}))
    assert run(enrichment, EnrichedEvent(user_ipaddress="81.2.69.160"))[0].geo_country == "GB"


def test_relative_uri_is_resolved_against_the_enrichments_folder(load, small_dbs):
    enrichment = load(config_doc("ip_lookups", "2-0-0", {"domain": {"database": "GeoIP2-Domain.mmdb", "uri": "."}}),
                      base_dir=small_dbs)
    assert run(enrichment, EnrichedEvent(user_ipaddress="203.0.113.1"))[0].ip_domain == "acme.example"


@pytest.mark.parametrize("version,parameters,field", [
    ("2-0-0", {"geo": {"database": "GeoLite2-Country.mmdb", "uri": GEO_DIR}}, r"parameters\.geo\.database"),
    ("2-0-0", {"geo": {"database": "GeoLite2-City.mmdb"}}, r"parameters\.geo\.uri: is missing but it is required"),  # uri missing
    # asn is 2-0-1 only; netspeed is 1-0-0 only
    ("2-0-0", {"asn": {"database": "GeoLite2-ASN.mmdb", "uri": GEO_DIR}}, r"parameters\.asn: is not defined in the schema"),
    ("2-0-1", {"netspeed": {"database": "GeoIP2-Connection-Type.mmdb", "uri": GEO_DIR}}, r"parameters\.netspeed: is not defined"),
    ("2-0-1", {"geo": {"database": "GeoLite2-City.mmdb", "uri": 7}}, r"parameters\.geo\.uri"),
])
def test_invalid_config_is_refused_naming_the_field(load, version, parameters, field):
    with pytest.raises(ConfigError, match=field):
        load(config_doc("ip_lookups", version, parameters))


def test_missing_database_file_is_refused(load, tmp_path):
    with pytest.raises(ConfigError, match=r"parameters\.geo\.uri: database file .* does not exist"):
        load(config_doc("ip_lookups", "2-0-0", {"geo": geo(str(tmp_path))}))


def test_database_of_the_wrong_kind_is_refused(load, small_dbs):
    (small_dbs / "GeoLite2-City.mmdb").write_bytes((small_dbs / "GeoIP2-ISP.mmdb").read_bytes())
    with pytest.raises(ConfigError, match=r"parameters\.geo: .*'GeoIP2-ISP' database, expected a City one"):
        load(config_doc("ip_lookups", "2-0-0", {"geo": geo(str(small_dbs))}))


def test_file_that_is_no_maxmind_database_is_refused(load, tmp_path):
    (tmp_path / "GeoIP2-Domain.mmdb").write_bytes(b"not a database at all")
    with pytest.raises(ConfigError, match=r"parameters\.domain: .*not a MaxMind DB"):
        load(config_doc("ip_lookups", "2-0-0", {"domain": {"database": "GeoIP2-Domain.mmdb", "uri": str(tmp_path)}}))


def test_legacy_config_1_0_0_is_refused_naming_the_field(load, tmp_path):
    doc = config_doc("ip_lookups", "1-0-0", {"geo": {"database": "GeoLiteCity.dat", "uri": str(tmp_path)}})
    with pytest.raises(ConfigError, match=r"parameters\.geo\.database: legacy GeoIP \.dat"):
        load(doc)


@pytest.mark.parametrize("uri", ["s3://bucket/maxmind", "gs://bucket/maxmind"])
def test_cloud_storage_uris_are_refused(load, uri):
    with pytest.raises(ConfigError, match=r"parameters\.geo\.uri: (s3|gs): URIs are not supported"):
        load(config_doc("ip_lookups", "2-0-0", {"geo": geo(uri)}))


def test_http_uri_without_cache_folder_is_refused(load):
    with pytest.raises(ConfigError, match=r"parameters\.geo\.uri: .* no cache folder"):
        load(config_doc("ip_lookups", "2-0-0", {"geo": geo("https://example.invalid/maxmind")}))


def test_disabled_config_is_skipped(load):
    assert load(config_doc("ip_lookups", "2-0-0", {"geo": geo()}, enabled=False)) is None


@pytest.fixture
def file_server(small_dbs):
    """A local HTTP server over the small databases; counts the requests."""
    requests = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def do_GET(self):
            requests.append(self.path)
            super().do_GET()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                             functools.partial(Handler, directory=str(small_dbs)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", requests
    server.shutdown()
    server.server_close()


def test_http_database_is_downloaded_once_into_the_cache_folder(resolver, tmp_path, file_server):
    base, requests = file_server
    doc = config_doc("ip_lookups", "2-0-0", {"domain": {"database": "GeoIP2-Domain.mmdb", "uri": base + "/"}})
    cache = tmp_path / "cache"
    for _ in range(2):
        enrichment = parse_enrichment(doc, resolver, LoadContext(base_dir=tmp_path, cache_dir=cache))
        assert run(enrichment, EnrichedEvent(user_ipaddress="203.0.113.9"))[0].ip_domain == "acme.example"
        enrichment.close()
    assert requests == ["/GeoIP2-Domain.mmdb"]
    assert len(list(cache.rglob("GeoIP2-Domain.mmdb"))) == 1


def test_http_download_failure_is_refused_naming_the_field(resolver, tmp_path, file_server):
    base, _ = file_server
    doc = config_doc("ip_lookups", "2-0-0", {"isp": {"database": "GeoIP2-ISP.mmdb", "uri": base + "/missing"}})
    with pytest.raises(ConfigError, match=r"parameters\.isp\.uri: cannot download"):
        parse_enrichment(doc, resolver, LoadContext(base_dir=tmp_path, cache_dir=tmp_path / "cache"))


# ---------------------------------------------------------------- reload and cache

def test_changed_database_file_is_reloaded(load, small_dbs):
    enrichment = load(config_doc("ip_lookups", "2-0-0", small(small_dbs, "isp")))
    assert run(enrichment, EnrichedEvent(user_ipaddress="203.0.113.1"))[0].ip_isp == "Acme Broadband"
    write_db(small_dbs / "GeoIP2-ISP.mmdb", "GeoIP2-ISP", {"203.0.113.0/24": {"isp": "New ISP"}})
    # not checked per event: the default check interval has not passed yet
    assert run(enrichment, EnrichedEvent(user_ipaddress="203.0.113.1"))[0].ip_isp == "Acme Broadband"
    fast = dataclasses.replace(enrichment, reload_every=0.01)  # same databases, checked every 10 ms
    deadline = time.monotonic() + 10
    while run(fast, EnrichedEvent(user_ipaddress="203.0.113.1"))[0].ip_isp != "New ISP":
        assert time.monotonic() < deadline, "the rewritten database was not reloaded"
    # the cache was cleared too: an address cached before the reload sees the new data
    assert run(fast, EnrichedEvent(user_ipaddress="203.0.113.1"))[1].derived == []


def test_half_written_file_keeps_the_old_database(load, small_dbs):
    enrichment = load(config_doc("ip_lookups", "2-0-0", small(small_dbs, "domain")))
    (small_dbs / "GeoIP2-Domain.mmdb.new").write_bytes(b"\0" * 100)
    os.replace(small_dbs / "GeoIP2-Domain.mmdb.new", small_dbs / "GeoIP2-Domain.mmdb")
    assert enrichment.refresh() is False
    assert run(enrichment, EnrichedEvent(user_ipaddress="203.0.113.1"))[0].ip_domain == "acme.example"


def test_lookups_are_cached_per_address(load):
    enrichment = load(config_doc("ip_lookups", "2-0-0", {"geo": geo()}))
    for _ in range(3):
        run(enrichment, EnrichedEvent(user_ipaddress="81.2.69.160"))
    info = enrichment._lookup.cache_info()
    assert (info.hits, info.misses) == (2, 1)


# ---------------------------------------------------------------- through the stage

def test_stage_writes_geo_fields_and_a_valid_asn_entity(resolver, load, small_dbs):
    lookups = load(config_doc("ip_lookups", "2-0-1", {"geo": geo(), **small(small_dbs, "isp", "asn")}))
    anon = load(config_doc("anon_ip", "1-0-1", {"anonOctets": 2, "anonSegments": 2}))
    enricher = Enricher(resolver, clock=lambda: 1_764_288_005.0, enrichments=[lookups, anon])
    qs = urlencode({"e": "pv", "aid": "shop", "p": "web", "tv": "js-4.1.0", "url": "https://shop.acme.com/"})
    out = enricher.enrich(raw("/i", qs, ip_address="81.2.69.160"))
    assert out.bad == [] and len(out.good) == 1
    fields = out.good[0].split("\t")
    got = {name: fields[FIELD_INDEX[name]] for name in GEO_FIELDS + ("user_ipaddress", "ip_isp")}
    assert got == {"geo_country": "GB", "geo_region": "BEN", "geo_city": "Willesden", "geo_zipcode": "NW10",
                   "geo_latitude": "51.5333", "geo_longitude": "-0.2333", "geo_region_name": "Brent",
                   "geo_timezone": "Europe/London",
                   "user_ipaddress": "81.2.x.x",  # anon_ip ran after the lookup
                   "ip_isp": ""}
    assert fields[FIELD_INDEX["derived_contexts"]] == ""

    out = enricher.enrich(raw("/i", qs, ip_address="203.0.113.40"))
    assert out.bad == [] and len(out.good) == 1
    fields = out.good[0].split("\t")
    assert fields[FIELD_INDEX["ip_isp"]] == "Acme Broadband"
    derived = json.loads(fields[FIELD_INDEX["derived_contexts"]])
    assert derived["data"] == [{"schema": ASN_SCHEMA, "data": {"number": 64500, "organization": "ACME-AS"}}]
    for entity in derived["data"]:  # the stage validated it; check the shipped schema again
        assert resolver.validate(entity, field="derived_contexts").ok
