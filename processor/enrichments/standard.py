"""The standard enrichment set: what ``snowmelt up`` enriches with when no folder is configured.

Every enrichment whose data ships with its Python package, configured as
Snowplow's documentation suggests: ``ua_parser_config`` (the ``ua-parser``
rules), ``referer_parser`` (the ``referer-parser`` package's database),
``campaign_attribution`` (the ``utm_*`` parameters), ``event_fingerprint_config``
(MD5 of the parameters but ``cv``, ``eid``, ``nuid``, ``stm``) and
``anon_ip``, present but disabled as in Snowplow's examples.  ``ip_lookups``
joins them when a GeoLite2 City database is installed (the ``geo`` extra,
``maxminddb-geolite2``).  IAB needs lists that cannot be shipped, so it is
left out.

The files are in ``standard/``, the same as those of ``examples/enrichments/``;
:func:`standard_folder` writes them, and the ``ip_lookups`` config when it
applies, into a folder of the caller's that :func:`load_enrichments` then reads.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

STANDARD_DIR = Path(__file__).with_name("standard")


def geolite2_city() -> Path | None:
    """The GeoLite2 City database of the ``maxminddb-geolite2`` package, if it is installed."""
    try:
        import _maxminddb_geolite2  # type: ignore  # the package's data module
    except ImportError:
        return None
    path = Path(_maxminddb_geolite2.__file__).with_name("GeoLite2-City.mmdb")
    return path if path.is_file() else None


def ip_lookups_config(city: Path) -> dict:
    return {
        "schema": "iglu:com.snowplowanalytics.snowplow/ip_lookups/jsonschema/2-0-0",
        "data": {"vendor": "com.snowplowanalytics.snowplow", "name": "ip_lookups", "enabled": True,
                 "parameters": {"geo": {"database": city.name, "uri": str(city.parent)}}},
    }


def standard_folder(target: str | Path) -> Path:
    """Fill ``target`` (emptied of ``*.json`` first) with the standard set; returns it."""
    target = Path(target)
    target.mkdir(parents=True, exist_ok=True)
    for old in target.glob("*.json"):
        old.unlink()
    for config in sorted(STANDARD_DIR.glob("*.json")):
        shutil.copyfile(config, target / config.name)
    city = geolite2_city()
    if city is not None:
        (target / "ip_lookups.json").write_text(json.dumps(ip_lookups_config(city), indent=2) + "\n")
    return target
