"""The ``snowmelt`` command.

    snowmelt collector [--config FILE]    run the HTTP collector against Kafka
    snowmelt enrich [--config FILE] [--resolver FILE] [--enrichments DIR]
                                          run the enrich worker (raw -> enriched/bad topics)
    snowmelt load clickhouse|s3 [--config FILE]
                                          load the enriched and bad topics into ClickHouse or S3
    snowmelt config [--config FILE]       print the effective configuration (YAML, secrets as ***)
    snowmelt up [--port 9090] [--data-dir DIR] [--resolver FILE] [--enrichments DIR] [--sql-port 8123]
                [--config FILE]
                                          the whole pipeline in one process, no broker,
                                          with a Snowplow-Micro-compatible API
"""
from __future__ import annotations

import argparse
import sys

import yaml

from snowmelt import __version__
from snowmelt.config import ConfigError, as_dict, load_config, redacted


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="snowmelt", description="A Snowplow-compatible event pipeline.")
    parser.add_argument("--version", action="version", version=f"snowmelt {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("collector", help="run the HTTP collector, writing raw payloads to Kafka")
    p.add_argument("--config", help="YAML config file (see the reference config)")
    p.add_argument("--reuse-port", action="store_true",
                   help="bind with SO_REUSEPORT so several collector processes share one port")

    p = sub.add_parser("enrich", help="run the enrich worker: raw topic -> enriched and bad topics")
    p.add_argument("--config", help="YAML config file (see the reference config)")
    p.add_argument("--resolver", help="Iglu resolver config (JSON); overrides enrich.resolver")
    p.add_argument("--enrichments", metavar="DIR",
                   help="folder of Snowplow enrichment configs (*.json); overrides enrich.enrichments")

    p = sub.add_parser("up", help="collector + enrichment + Snowplow Micro API in one process, no broker")
    p.add_argument("--config", help="YAML config file (see the reference config)")
    p.add_argument("--port", type=int, help="port of the collector and the /micro API; overrides up.port (9090)")
    p.add_argument("--data-dir", help="where enriched/ and bad/ files go; overrides up.data_dir (./snowmelt-data)")
    p.add_argument("--resolver", help="Iglu resolver config (JSON); overrides up.resolver")
    p.add_argument("--enrichments", metavar="DIR",
                   help="folder of Snowplow enrichment configs (*.json); overrides up.enrichments")
    p.add_argument("--sql-port", type=int,
                   help="port of the SQL endpoint (ClickHouse's HTTP interface); overrides up.sql_port (8123), 0 = off")

    p = sub.add_parser("load", help="load the enriched and bad topics into a store (at-least-once offsets)")
    p.add_argument("store", choices=["clickhouse", "s3"], help="where to load: ClickHouse or S3")
    p.add_argument("--config", help="YAML config file (see the reference config)")

    p = sub.add_parser("config", help="print the effective configuration after env overrides")
    p.add_argument("--config", help="YAML config file")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"snowmelt: invalid configuration: {exc}", file=sys.stderr)
        return 2
    from snowmelt.logs import configure
    configure(config.logging)
    if args.command == "config":
        # secrets shown as ***: the output ends up in terminals, tickets and CI logs
        yaml.safe_dump(redacted(as_dict(config)), sys.stdout, sort_keys=False)
        return 0
    if args.command == "collector":
        from collector.server import run
        try:
            return run(config, reuse_port=args.reuse_port)
        except ValueError as exc:
            print(f"snowmelt: {exc}", file=sys.stderr)
            return 2
    if args.command == "enrich":
        from processor.worker import run as run_enrich
        try:
            return run_enrich(config, resolver_path=args.resolver, enrichments_dir=args.enrichments)
        except (ValueError, OSError) as exc:
            print(f"snowmelt: {exc}", file=sys.stderr)
            return 2
    if args.command == "load":
        from loaders.runner import run as run_load
        try:
            serve = None
            if args.store == "clickhouse" and config.clickhouse.sql_port:
                import functools

                from snowmelt.sql_endpoint import check_loader_sql_settings, serve_loader_sql
                check_loader_sql_settings(config.clickhouse)  # before the store is opened
                serve = functools.partial(serve_loader_sql, config)
            return run_load(config, args.store, serve=serve)
        except (ValueError, OSError) as exc:
            print(f"snowmelt: {exc}", file=sys.stderr)
            return 2
    if args.command == "up":
        import dataclasses

        from snowmelt.up import run as run_up
        overrides = {k: v for k, v in (("port", args.port), ("data_dir", args.data_dir),
                                       ("resolver", args.resolver), ("enrichments", args.enrichments),
                                       ("sql_port", args.sql_port))
                     if v is not None}
        config = dataclasses.replace(config, up=dataclasses.replace(config.up, **overrides))
        try:
            return run_up(config)
        except (ValueError, OSError) as exc:
            print(f"snowmelt: {exc}", file=sys.stderr)
            return 2
    return 2  # pragma: no cover - argparse enforces the choices


if __name__ == "__main__":
    sys.exit(main())
