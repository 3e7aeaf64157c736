"""bench.oracle_bench's enrichment settings: both sides get the same enrichments and the same data files, and
snowmelt takes the configs it is given."""
import json
import shutil
from pathlib import Path

import pytest

from bench.oracle_bench import Bench, BenchError


def config(name: str, version: str, parameters: dict) -> dict:
    vendor = "com.snowplowanalytics.snowplow"
    return {"schema": f"iglu:{vendor}/{name}/jsonschema/{version}",
            "data": {"name": name, "vendor": vendor, "enabled": True, "parameters": parameters}}


@pytest.fixture
def bench(tmp_path: Path) -> Bench:
    """A bench over a Snowplow folder holding two of the standard set's configs, as the oracle's folder writes
    them, and an assets folder with the two data files prepare_assets.sh copies there."""
    import geolite2
    import referer_parser

    std = tmp_path / "sp" / "config" / "enrichments-std"
    std.mkdir(parents=True)
    for doc in (config("referer_parser", "2-0-0", {"internalDomains": [], "database": "referers.json",
                                                   "uri": "http://127.0.0.1:19381/unused-assets/"}),
                config("anon_ip", "1-0-1", {"anonOctets": 1, "anonSegments": 1})):
        (std / f"{doc['data']['name']}.json").write_text(json.dumps(doc))
    assets = tmp_path / "sp-work" / "assets"
    assets.mkdir(parents=True)
    shutil.copy(Path(referer_parser.__file__).parent / "data" / "referers.json", assets / "referer-parser.json")
    shutil.copy(geolite2.geolite2_database(), assets / "ip_geo")
    work = tmp_path / "work"
    work.mkdir()
    return Bench(None, tmp_path / "sp", tmp_path / "sp-work", tmp_path / "jar", tmp_path / "iglu", work)


def names(folder: str) -> list[str]:
    return sorted(json.loads(f.read_text())["data"]["name"] for f in Path(folder).glob("*.json"))


def test_no_enrichments_gives_no_arguments(bench):
    assert bench.enrichment_args("none") == ([], [])


def test_the_default_setting_adds_ip_lookups_on_both_sides_with_the_same_database(bench):
    sp_args, sm_args = bench.enrichment_args("default")
    assert sp_args[0] == sm_args[0] == "--enrichments"
    assert sp_args[2:] == ["--assets", str((bench.sp_work / "assets").resolve())]
    assert names(sp_args[1]) == names(sm_args[1]) == ["anon_ip", "ip_lookups", "referer_parser"]
    sp_geo = json.loads((Path(sp_args[1]) / "ip_lookups.json").read_text())["data"]["parameters"]["geo"]
    assert sp_geo["database"] == "GeoLite2-City.mmdb"  # Snowplow's enrich reads ./ip_geo of its assets instead
    sm_geo = json.loads((Path(sm_args[1]) / "ip_lookups.json").read_text())["data"]["parameters"]["geo"]
    database = Path(sm_geo["uri"].removeprefix("file://")) / sm_geo["database"]
    assert database.resolve() == (bench.sp_work / "assets" / "ip_geo").resolve()
    # the standard setting is the same without ip_lookups, and asking again writes nothing new
    assert names(bench.enrichment_args("std")[1][1]) == ["anon_ip", "referer_parser"]
    assert bench.enrichment_args("default") == (sp_args, sm_args)


def test_snowmelt_loads_the_configs_it_is_given_and_finds_the_data_files(bench):
    from processor.enrichments import load_enrichments
    from processor.iglu import Resolver

    _, sm_args = bench.enrichment_args("default")
    loaded = load_enrichments(sm_args[1], Resolver.default())
    assert sorted(e.name for e in loaded) == ["anon_ip", "ip_lookups", "referer_parser"]
    for enrichment in loaded:
        enrichment.close()


def test_an_unknown_setting_is_refused(bench):
    with pytest.raises(BenchError, match="no enrichment setting 'geo'"):
        bench.enrichment_args("geo")
