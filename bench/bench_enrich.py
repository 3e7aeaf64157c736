"""Enrichment stage throughput per core: compiled hot path vs its pure-Python twin.

The corpus is what the JavaScript tracker sends through the collector
(``bench/corpus.py``): GET page views and POST batches of 10 page views, page
pings, structured and self-describing events, each with three contexts, real
browser user agents.  Both implementations run in this one invocation (each in
its own process, since the implementation is chosen at import), on the same
records, and must produce the same number of good events and no bad rows.

    python bench/bench_enrich.py [--records 2000] [--repeat 3] [--enrichments default] [--profile]

``--profile`` keeps a py-spy flame graph of the compiled stage's run in
``bench/results/flame-stage[-enrichments].svg``.

``--enrichments default`` enables the default set (ip_lookups with the GeoLite2
City database of ``maxminddb-geolite2``, ua_parser, referer_parser,
campaign_attribution, event_fingerprint, anon_ip), configured with
Snowplow's own config JSON, and also reports each enrichment's cost as a
share of the stage: the stage timed without it, against the stage with all.

``--enrichments yauaa`` enables only the YAUAA enrichment (YAUAA itself, in
the JVM JPype starts in each child; needs the ``yauaa`` extra, Java and the
jars) and reports the stage with it against the stage without it on the same
records, the cost of one event at both rates (microseconds, with the cache of
analysed agents warm: the corpus has 2,000 distinct agents, Zipf-weighted),
and what one analysis of an agent not yet seen costs (the cache missed).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.profiling import RESULTS, flame  # noqa: E402

SCHEMAS = {
    "iglu:com.snowplowanalytics.snowplow/web_page/jsonschema/1-0-0": {
        "type": "object", "properties": {"id": {"type": "string", "format": "uuid"}}, "required": ["id"]},
    "iglu:org.w3/PerformanceTiming/jsonschema/1-0-0": {
        "type": "object", "properties": {k: {"type": "integer", "minimum": 0} for k in
                                         ("navigationStart", "domComplete", "loadEventEnd")}},
    "iglu:com.acme/product/jsonschema/1-0-0": {
        "type": "object", "properties": {"sku": {"type": "string", "maxLength": 32}, "price": {"type": "number"},
                                         "currency": {"type": "string", "enum": ["EUR", "USD"]}},
        "required": ["sku"], "additionalProperties": False},
    "iglu:com.snowplowanalytics.snowplow/link_click/jsonschema/1-0-1": {
        "type": "object", "properties": {"targetUrl": {"type": "string"}, "elementId": {"type": "string"}},
        "required": ["targetUrl"]},
}


def write_registry(root: Path) -> None:
    from bench.corpus import write_schemas

    write_schemas(root, SCHEMAS)


def default_enrichment_configs() -> list[dict]:
    """The default set, as Snowplow's enrichments/*.json files hold it."""
    import geolite2

    city = Path(geolite2.geolite2_database())
    vendor = "com.snowplowanalytics.snowplow"

    def config(name: str, version: str, parameters: dict) -> dict:
        return {"schema": f"iglu:{vendor}/{name}/jsonschema/{version}",
                "data": {"name": name, "vendor": vendor, "enabled": True, "parameters": parameters}}

    return [
        config("ip_lookups", "2-0-0", {"geo": {"database": city.name, "uri": f"file:{city.parent}"}}),
        config("ua_parser_config", "1-0-0", {}),
        config("referer_parser", "1-0-0", {"internalDomains": ["shop.acme.com"]}),
        config("campaign_attribution", "1-0-1", {"mapping": "static", "fields": {
            "mktMedium": ["utm_medium"], "mktSource": ["utm_source"], "mktTerm": ["utm_term"],
            "mktContent": ["utm_content"], "mktCampaign": ["utm_campaign"]}}),
        config("event_fingerprint_config", "1-0-1", {"excludeParameters": ["eid", "nuid", "stm", "cv"],
                                                     "hashAlgorithm": "MD5"}),
        config("anon_ip", "1-0-1", {"anonOctets": 1, "anonSegments": 1}),
    ]


def yauaa_configs() -> list[dict]:
    """Only the YAUAA enrichment, as Snowplow's enrichments/yauaa_enrichment_config.json holds it."""
    vendor = "com.snowplowanalytics.snowplow.enrichments"
    return [{"schema": f"iglu:{vendor}/yauaa_enrichment_config/jsonschema/1-0-0",
             "data": {"name": "yauaa_enrichment_config", "vendor": vendor, "enabled": True,
                      "parameters": {"cacheSize": 10000}}}]


def yauaa_miss_cost(enrichment, count: int = 400) -> float:
    """Seconds of one YAUAA analysis of a user agent not in the cache (the mean over ``count`` distinct agents)."""
    from bench.corpus import USER_AGENTS

    analyse = enrichment.analyse.__wrapped__  # the analysis without the cache in front of it
    agents = USER_AGENTS[:count]
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for agent in agents:
            analyse(agent, ())
        best = min(best, time.perf_counter() - started)
    return best / len(agents)


def build_records(count: int) -> tuple[list[bytes], int]:
    """Raw records (Thrift) and the number of events they carry."""
    from bench import corpus
    from ext import CollectorPayload, encode_collector_payload

    rng = random.Random(42)
    records, events = [], 0
    for i in range(count):
        headers = corpus.browser_headers(rng)
        common = dict(schema="iglu:com.snowplowanalytics.snowplow/CollectorPayload/thrift/1-0-0",
                      ip_address=headers["X-Forwarded-For"], timestamp=1_764_288_000_000 + i, encoding="UTF-8",
                      collector="snowmelt-0.1.0-kafka", user_agent=headers["User-Agent"],
                      referer_uri=headers["Referer"], headers=[f"{k}: {v}" for k, v in headers.items()],
                      hostname="c.acme.com", network_user_id="11111111-1111-4111-8111-111111111111")
        if i % 2 == 0:
            payload = CollectorPayload(path="/i", querystring=corpus.get_query(rng), **common)
            events += 1
        else:
            payload = CollectorPayload(path="/com.snowplowanalytics.snowplow/tp2",
                                       body=corpus.post_body(rng, 10).decode(),
                                       content_type="application/json; charset=utf-8", **common)
            events += 10
        records.append(encode_collector_payload(payload))
    return records, events


def measure(records_file: str, registry: str, repeat: int, enrichments_dir: str | None) -> dict:
    """Runs in a child process: enrich every record ``repeat`` times, best time wins."""
    import ext
    from processor.enrichments import load_enrichments
    from processor.iglu import EmbeddedRepository, Resolver
    from processor.stage import Enricher

    records = json.loads(Path(records_file).read_text())
    records = [bytes.fromhex(r) for r in records]
    resolver = Resolver([EmbeddedRepository("bench", registry)], include_builtin=True)
    enrichments = load_enrichments(enrichments_dir, resolver) if enrichments_dir else []

    def best_time(enricher: Enricher) -> tuple[float, int, int]:
        for record in records[:50]:  # warm caches (schemas, validators)
            enricher.enrich(record)
        best, good, bad = float("inf"), 0, 0
        for _ in range(repeat):
            good = bad = 0
            started = time.perf_counter()
            for record in records:
                out = enricher.enrich(record)
                good += len(out.good)
                bad += len(out.bad)
            best = min(best, time.perf_counter() - started)
        return best, good, bad

    seconds, good, bad = best_time(Enricher(resolver, enrichments=enrichments))
    result = {"implementation": ext.IMPLEMENTATION, "seconds": seconds, "good": good, "bad": bad,
              "events_per_s": good / seconds, "enrichments": [e.name for e in enrichments]}
    if len(enrichments) == 1 and enrichments[0].name == "yauaa_enrichment_config":
        # one enrichment against none: the two stages timed in turn, best of each (a busy machine slows
        # whichever runs during the load, not one of them)
        [yauaa] = enrichments
        with_yauaa, without_yauaa = Enricher(resolver, enrichments=enrichments), Enricher(resolver)
        best_with = best_without = float("inf")
        for _ in range(repeat):
            best_with = min(best_with, best_time(with_yauaa)[0])
            best_without = min(best_without, best_time(without_yauaa)[0])
        result["events_per_s"] = good / best_with
        result["without_enrichments_per_s"] = good / best_without
        result["share"] = {yauaa.name: 1 - best_without / best_with}
        result["yauaa_miss_s"] = yauaa_miss_cost(yauaa)
    elif enrichments:
        # each enrichment's share: what the stage saves without it
        without = {}
        for skipped in enrichments:
            others = [e for e in enrichments if e is not skipped]
            without[skipped.name] = best_time(Enricher(resolver, enrichments=others))[0]
        result["share"] = {name: (seconds - t) / seconds for name, t in without.items()}
        result["without_enrichments_per_s"] = good / best_time(Enricher(resolver))[0]
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--enrichments", choices=["none", "default", "yauaa"], default="none",
                        help="enrichments enabled in the stage (default: none)")
    parser.add_argument("--profile", action="store_true", help="keep a py-spy flame graph of the compiled stage")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child[0], args.child[1], args.repeat, args.child[2] or None)))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        registry = Path(tmp) / "registry"
        write_registry(registry)
        enrichments_dir = ""
        if args.enrichments != "none":
            enrichments_dir = str(Path(tmp) / "enrichments")
            Path(enrichments_dir).mkdir()
            for doc in default_enrichment_configs() if args.enrichments == "default" else yauaa_configs():
                (Path(enrichments_dir) / f"{doc['data']['name']}.json").write_text(json.dumps(doc))
        records, events = build_records(args.records)
        records_file = Path(tmp) / "records.json"
        records_file.write_text(json.dumps([r.hex() for r in records]))
        results = {}
        for name, env in (("compiled", {"SNOWMELT_REQUIRE_EXTENSIONS": "1"}), ("python", {"SNOWMELT_NO_EXTENSIONS": "1"})):
            child_env = {k: v for k, v in os.environ.items() if "EXTENSIONS" not in k}
            child_env.update(env)
            child = subprocess.Popen([sys.executable, __file__, "--repeat", str(args.repeat), "--child",
                                      str(records_file), str(registry), enrichments_dir], env=child_env,
                                     stdout=subprocess.PIPE, text=True)
            profile = None
            if args.profile and name == "compiled":
                profile = RESULTS / ("flame-stage-enrichments.svg" if enrichments_dir else "flame-stage.svg")
            with flame(child.pid, profile):
                stdout, _ = child.communicate()
            if child.returncode:
                raise subprocess.CalledProcessError(child.returncode, child.args, stdout)
            results[name] = json.loads(stdout.strip().splitlines()[-1])
    print(f"{args.records} raw records carrying {events} events (GET page views and POST batches of 10, "
          "3 contexts each), best of", args.repeat)
    names = results["compiled"]["enrichments"]
    print("enrichments:", ", ".join(names) if names else "none")
    print(f"{'implementation':<16}{'events/s':>12}{'good':>8}{'bad':>6}")
    for name, r in results.items():
        print(f"{name:<16}{r['events_per_s']:>12,.0f}{r['good']:>8}{r['bad']:>6}")
    ratio = results["compiled"]["events_per_s"] / results["python"]["events_per_s"]
    print(f"compiled/python {ratio:.2f}x")
    for name, r in results.items():
        if r.get("share"):
            print(f"{name}: stage without enrichments {r['without_enrichments_per_s']:,.0f} events/s; "
                  "share of the stage per enrichment:")
            for enrichment, share in r["share"].items():
                print(f"  {enrichment:<28}{share:>7.1%}")
            if "yauaa_miss_s" in r:
                base, with_ = r["without_enrichments_per_s"], r["events_per_s"]
                print(f"  yauaa: {with_:,.0f} vs {base:,.0f} events/s ({with_ / base:.2f}x); per event "
                      f"{1e6 / with_:.1f} vs {1e6 / base:.1f} us (+{1e6 / with_ - 1e6 / base:.1f} us, cache warm); "
                      f"an agent not yet seen: {r['yauaa_miss_s'] * 1e3:.2f} ms")
    correct = all(r["good"] == events and r["bad"] == 0 for r in results.values())
    print("correct:", correct)
    return 0 if correct else 1


if __name__ == "__main__":
    sys.exit(main())
