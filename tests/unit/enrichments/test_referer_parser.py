"""referer_parser: refr_medium / refr_source / refr_term from page_referrer."""
import http.server
import shutil
import threading
from pathlib import Path
from urllib.parse import urlencode

import pytest

from processor.analytics import parse_tsv
from processor.enriched import EnrichedEvent
from processor.enrichments import ConfigError, LoadContext, parse_enrichment
from processor.stage import Enricher, set_url_parts

from .conftest import config_doc, raw_record, run
from processor.enrichments.querystrings import named_values, query_pairs
from tests.timing import fastest

DATA = Path(__file__).parent / "data"
PAGE = "https://www.shop.acme.com/products/1"


def event_for(referrer, page=PAGE):
    event = EnrichedEvent(page_url=page, page_referrer=referrer)
    set_url_parts(event)  # as the stage does before enrichments
    return event


def classify(enrichment, referrer, page=PAGE):
    event, _ = run(enrichment, event_for(referrer, page))
    return event.refr_medium, event.refr_source, event.refr_term


@pytest.fixture
def default(load):
    return load(config_doc("referer_parser", "1-0-0", {"internalDomains": ["blog.acme.com"]}))


@pytest.mark.parametrize("referrer,expected", [
    ("https://www.google.com/search?q=gateway+oracle+cards&hl=en&client=safari", ("search", "Google", "gateway oracle cards")),
    ("https://www.google.co.uk/search?hl=en&q=snowplow%20analytics", ("search", "Google", "snowplow analytics")),
    ("https://www.google.com/", ("search", "Google", None)),
    ("http://www.bing.com/search?q=search+query&a=results&MID=2500", ("search", "Bing", "search query")),
    ("https://www.facebook.com/", ("social", "Facebook", None)),
    ("https://m.facebook.com/story.php?id=1", ("social", "Facebook", None)),
    ("https://t.co/abc123", ("social", "Twitter", None)),
    ("https://mail.google.com/mail/u/0/", ("email", "Gmail", None)),
    ("https://mail.live.com/?rru=inbox", ("email", "Outlook.com", None)),
    ("https://us-mg5.mail.yahoo.com/neo/launch", ("email", "Yahoo! Mail", None)),
    ("http://orange.fr/webmail/fr_FR/read.html", ("email", "Orange Webmail", None)),
    ("https://www.random-blog.example/post/1", ("unknown", None, None)),
])
def test_real_referrers(default, referrer, expected):
    assert classify(default, referrer) == expected


def test_same_host_is_internal(default):
    assert classify(default, "https://www.shop.acme.com/cart") == ("internal", None, None)


def test_internal_domains(default):
    assert classify(default, "https://blog.acme.com/post?q=1") == ("internal", None, None)
    # only the exact hosts listed
    assert classify(default, "https://old.blog.acme.com/") == ("unknown", None, None)


@pytest.mark.parametrize("referrer", [None, "", "ftp://www.google.com/", "mailto:a@acme.com"])
def test_non_http_referrers_set_nothing(default, referrer):
    assert classify(default, referrer) == (None, None, None)


def test_android_app_referrers_are_classified(default):
    # scala-referer-parser 1.1.0 takes http, https and android-app; Snowplow enrich 3.9.0 wrote refr_medium
    # "unknown" for android-app://com.google.android.gm (bench/results/oracle.md, edge request 54)
    assert classify(default, "android-app://com.google.android.gm") == ("unknown", None, None)


def test_malformed_query_escape_is_tolerated(default):
    medium, source, term = classify(default, "https://www.google.com/search?q=50%zz+off&x=%")
    assert (medium, source) == ("search", "Google") and term.startswith("50")


@pytest.fixture
def small_db(tmp_path):
    shutil.copy(DATA / "referers_small.yaml", tmp_path / "referers.yaml")
    return tmp_path


def test_database_from_local_folder_with_path_entries(load, small_db):
    enrichment = load(config_doc("referer_parser", "2-0-0", {
        "internalDomains": [], "database": "referers.yaml", "uri": small_db.as_uri()}))
    assert classify(enrichment, "https://search.acme.test/?query=red+shoes") == ("search", "Acme Search", "red shoes")
    # subdomains are stripped until a known host
    assert classify(enrichment, "https://eu.www.social.acme.test/x") == ("social", "Acme Social", None)
    # host + first path segment
    assert classify(enrichment, "https://acme.test/find/results?q=hats") == ("search", "Acme Search", "hats")
    assert classify(enrichment, "https://acme.test/other?q=hats") == ("unknown", None, None)
    # the default database is not used any more
    assert classify(enrichment, "https://www.google.com/search?q=x") == ("unknown", None, None)


def test_custom_referrers_take_precedence(load, small_db):
    enrichment = load(config_doc("referer_parser", "2-0-1", {
        "internalDomains": [], "database": "referers.yaml", "uri": small_db.as_uri(),
        "referrers": {"search": {"Own Search": {"domains": ["social.acme.test"], "parameters": ["s"]}},
                      "paid": {"Ads": {"domains": ["ads.example"]}}}}))
    assert classify(enrichment, "https://social.acme.test/?s=x") == ("search", "Own Search", "x")
    assert classify(enrichment, "https://ads.example/c") == ("paid", "Ads", None)


@pytest.fixture
def http_folder(small_db):
    """A local HTTP server serving the small database; counts its requests."""
    hits = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(small_db), **kwargs)

        def do_GET(self):
            hits.append(self.path)
            super().do_GET()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/dbs/", hits
    server.shutdown()
    server.server_close()


def test_http_database_is_downloaded_once_into_cache(resolver, small_db, tmp_path, http_folder):
    (small_db / "dbs").mkdir()
    shutil.copy(small_db / "referers.yaml", small_db / "dbs" / "referers.yaml")
    uri, hits = http_folder
    doc = config_doc("referer_parser", "2-0-0", {"internalDomains": [], "database": "referers.yaml", "uri": uri})
    ctx = LoadContext(base_dir=tmp_path, cache_dir=tmp_path / "cache", source="test.json")
    first = parse_enrichment(doc, resolver, ctx)
    second = parse_enrichment(doc, resolver, ctx)
    assert hits == ["/dbs/referers.yaml"]
    assert (tmp_path / "cache" / "referers.yaml").is_file()
    for enrichment in (first, second):
        assert classify(enrichment, "https://mail.acme.test/") == ("email", "Acme Mail", None)


def test_http_database_missing_is_a_config_error(resolver, tmp_path, http_folder):
    uri, _ = http_folder
    doc = config_doc("referer_parser", "2-0-0", {"internalDomains": [], "database": "nope.json", "uri": uri})
    with pytest.raises(ConfigError, match=r"parameters\.uri.*404"):
        parse_enrichment(doc, resolver, LoadContext(base_dir=tmp_path, cache_dir=tmp_path / "c", source="t.json"))


@pytest.mark.parametrize("version,parameters,field", [
    ("1-0-0", {}, "internalDomains"),
    ("1-0-0", {"internalDomains": "acme.com"}, "internalDomains"),
    ("2-0-0", {"internalDomains": [], "database": "referers.json"}, "uri"),
    ("2-0-0", {"internalDomains": [], "database": "referers.json", "uri": "file:///nonexistent"}, "uri"),
    ("2-0-1", {"internalDomains": [], "database": "r.json", "uri": "file:///x",
               "referrers": {"search": {"S": {"domains": []}}}}, "referrers"),
])
def test_invalid_config_is_refused_naming_the_field(load, version, parameters, field):
    with pytest.raises(ConfigError, match=field):
        load(config_doc("referer_parser", version, parameters))


def test_unreadable_database_is_refused(load, tmp_path):
    (tmp_path / "referers.json").write_text("{not json")
    with pytest.raises(ConfigError, match="database"):
        load(config_doc("referer_parser", "2-0-0", {"internalDomains": [], "database": "referers.json",
                                                     "uri": tmp_path.as_uri()}))


def test_through_the_stage(resolver, default):
    qs = urlencode({"e": "pv", "p": "web", "tv": "js-4.1.0", "url": PAGE,
                    "refr": "https://www.google.de/search?q=schnee+pflug&ie=UTF-8"})
    raw = raw_record(user_agent="curl/8", querystring=qs, headers=["Host: c.acme.com"], hostname="c.acme.com")
    out = Enricher(resolver, clock=lambda: 1_764_288_005.0, enrichments=[default]).enrich(raw)
    assert out.bad == [] and len(out.good) == 1
    event = parse_tsv(out.good[0])
    assert (event["refr_medium"], event["refr_source"], event["refr_term"]) == ("search", "Google", "schnee pflug")
    assert event["refr_urlhost"] == "www.google.de"


def test_a_host_of_many_labels_costs_one_split_not_a_lookup_per_label(default):
    import time

    # 480 KB of labels before a known host: once ~50 s of CPU (quadratic), now one split
    long_host = "a." * 240_000 + "www.google.com"
    started = time.perf_counter()
    hit = default.lookup(long_host, "/search")
    assert time.perf_counter() - started < 0.05
    assert hit == default.lookup("www.google.com", "/search") and hit[:2] == ("search", "Google")
    assert default.lookup("a." * 240_000 + "example.org", "/") is None


def test_a_search_term_in_a_long_referer_query_is_found_without_parsing_it_whole(default):
    # 60,000 parameters (1 MB, one POST) before and after the search term: the first search parameter counts
    filler = "&".join(f"x{i}=y" for i in range(30_000))
    referrer = f"https://www.google.com/search?{filler}&q=snow+plough&{filler}&q=second"
    assert classify(default, referrer) == ("search", "Google", "snow plough")
    # the term's look-up against parsing the whole query, with the same implementation (compiled or its twin)
    query = referrer.split("?", 1)[1]
    seconds, found = fastest(lambda: named_values(query, frozenset({"q", "p"}), last=False))
    assert found == {"q": "snow plough"}
    whole, _ = fastest(lambda: query_pairs(query), runs=2)
    assert seconds < whole / 2, (seconds, whole)
