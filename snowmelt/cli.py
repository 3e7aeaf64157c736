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
    snowmelt schemas pull TARGET... [--repo URL] [--apikey KEY] [--cache DIR] [--config FILE]
                                          copy schemas from an Iglu registry into the local
                                          schema cache, which enrich and up read offline
    snowmelt diff A B [--ignore FIELD ...] [--fields FIELD ...] [--examples 3] [--exact] [--json] [--timeout 60]
                                          compare two enriched outputs (file, folder or
                                          kafka://HOST:PORT/TOPIC) field by field, joined on event_id
"""
from __future__ import annotations

import argparse
import os
import signal
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

    p = sub.add_parser("schemas", help="manage the local schema cache (schemas not shipped with snowmelt)")
    schemas_sub = p.add_subparsers(dest="schemas_command", required=True)
    p = schemas_sub.add_parser(
        "pull", help="copy schemas from an Iglu registry into the local schema cache",
        description="Copy schemas from an Iglu registry (an Iglu Server, or a static one such as Iglu "
                    "Central) into the local schema cache (iglu.cache_dir), which the resolver of "
                    "`snowmelt enrich` and `snowmelt up` reads after the shipped schemas and before any "
                    "HTTP registry: once pulled, they validate offline. A TARGET is "
                    "iglu:vendor/name/format/M-R-A (one schema), iglu:vendor/name/format/1-*-* or "
                    "vendor/name (every version), or a vendor (every schema of it; Iglu Server only). "
                    "Exit status: 0 all pulled, 1 some target failed, 2 usage error.")
    p.add_argument("targets", nargs="+", metavar="TARGET", help="what to pull (see above)")
    p.add_argument("--repo", default="http://iglucentral.com", metavar="URL",
                   help="the registry's base URL (default: Iglu Central)")
    p.add_argument("--apikey", help="API key for a private Iglu Server (sent as the apikey header)")
    p.add_argument("--cache", metavar="DIR", help="the cache folder; overrides iglu.cache_dir")
    p.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS", help="per request (default 10)")
    p.add_argument("--config", help="YAML config file (for iglu.cache_dir)")

    p = sub.add_parser("topics", help="create the pipeline's Kafka topics (or check those that exist)")
    topics_sub = p.add_subparsers(dest="topics_command", required=True)
    p = topics_sub.add_parser(
        "create", help="create the raw, enriched and bad topics of the config, durable, or check them",
        description="Create the config's topics (topics.raw, topics.enriched, topics.bad, and "
                    "topics.enriched_json when set) with the partitions, replication factor and "
                    "min.insync.replicas given. A topic that exists is described and not changed; it fails "
                    "the command when it has fewer partitions, copies or in-sync replicas than asked. "
                    "Exit status: 0 every topic as asked, 1 a topic short of it or a cluster error, "
                    "2 usage error.")
    p.add_argument("--config", help="YAML config file (kafka.* and topics.*)")
    p.add_argument("--partitions", type=int, default=8, metavar="N",
                   help="partitions of every topic (default 8)")
    p.add_argument("--raw-partitions", type=int, metavar="N", help="partitions of the raw topic (default --partitions)")
    p.add_argument("--replication-factor", type=int, default=3, metavar="N",
                   help="copies of each partition (default 3; 1 for a one-broker test setup)")
    p.add_argument("--min-insync-replicas", type=int, default=2, metavar="N",
                   help="copies that must hold a write before it is acknowledged (default 2)")
    p.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS", help="per cluster call (default 30)")

    p = sub.add_parser("config", help="print the effective configuration after env overrides")
    p.add_argument("--config", help="YAML config file")

    p = sub.add_parser(
        "diff", help="compare two enriched outputs field by field, joined on event_id",
        usage="snowmelt diff A B [--ignore [FIELD ...]] [--fields FIELD ...] [--examples N] [--exact] [--json] "
              "[--timeout SECONDS]",
        description="Compare two enriched outputs (Snowplow's 131-field TSV) field by field, joined on "
                    "event_id: e.g. Snowplow's enrich and snowmelt run side by side on the same traffic. "
                    "Each of A and B is a file (gzip or not), a folder (its *.tsv and *.tsv.gz files) or "
                    "kafka://HOST:PORT/TOPIC (read from the beginning to its end offsets at start). "
                    "Exit status: 0 same, 1 different, 2 usage or input error.")
    p.add_argument("a", metavar="A", help="file, folder or kafka://HOST:PORT/TOPIC")
    p.add_argument("b", metavar="B", help="file, folder or kafka://HOST:PORT/TOPIC")
    p.add_argument("--ignore", nargs="*", metavar="FIELD", action="extend",
                   help="fields not compared, space- or comma-separated "
                        "(default: etl_tstamp v_etl; --ignore alone: none)")
    p.add_argument("--fields", nargs="+", metavar="FIELD", action="extend",
                   help="compare only these fields, space- or comma-separated (default: all 131)")
    p.add_argument("--examples", type=int, default=3, metavar="N",
                   help="event_ids shown with both values per differing field (default 3)")
    p.add_argument("--exact", action="store_true",
                   help="compare contexts, derived_contexts and unstruct_event as text too (default: as JSON "
                        "documents, so key order, spacing and a number's notation do not count)")
    p.add_argument("--json", action="store_true", help="print one JSON document instead of the table")
    p.add_argument("--timeout", type=float, default=60.0, metavar="SECONDS",
                   help="bound on the wait for each Kafka input (default 60)")
    return parser


def _field_list(values: list[str] | None) -> list[str] | None:
    """``--ignore a,b c`` -> ``[a, b, c]``: fields may be given space- or comma-separated."""
    if values is None:
        return None
    return [name for value in values for name in value.split(",") if name]


def _diff(args: argparse.Namespace) -> int:
    import json

    from snowmelt.diff import (DEFAULT_IGNORE, DiffInputError, compare, compared_fields, format_report, read_lines,
                               report_as_dict)
    if args.examples < 0 or args.timeout <= 0:
        print("snowmelt diff: --examples must be >= 0 and --timeout > 0", file=sys.stderr)
        return 2
    fields, ignore = _field_list(args.fields), _field_list(args.ignore)
    if ignore is None:  # the default ignore list does not drop a field asked for by name in --fields
        ignore = [f for f in DEFAULT_IGNORE if f not in (fields or ())]
    try:
        compared_fields(ignore, fields)  # an unknown field name fails before any input is read
        a = read_lines(args.a, args.timeout)
        b = read_lines(args.b, args.timeout)
        report = compare(a, b, ignore=ignore, fields=fields, examples=args.examples, sources=(args.a, args.b),
                         exact=args.exact)
    except (ValueError, DiffInputError) as exc:
        print(f"snowmelt diff: {exc}", file=sys.stderr)
        return 2
    if hasattr(sys.stdout, "reconfigure"):  # values are shown as read, whatever the terminal's encoding
        sys.stdout.reconfigure(errors="backslashreplace")
    if args.json:
        print(json.dumps(report_as_dict(report, args.examples), ensure_ascii=False))
    else:
        print(format_report(report, args.examples))
    return report.exit_status


def _schemas_pull(args: argparse.Namespace, config) -> int:
    from processor.iglu_pull import PullError, pull
    from snowmelt.config import schema_cache_dir

    cache = args.cache or schema_cache_dir(config)
    try:
        report = pull(args.targets, cache, repo=args.repo, apikey=args.apikey, timeout=args.timeout)
    except PullError as exc:
        print(f"snowmelt schemas pull: {exc}", file=sys.stderr)
        return 2
    for key in report.written:
        print(f"pulled {key.uri}")
    for key in report.unchanged:
        print(f"unchanged {key.uri}")
    for error in report.errors:
        print(f"snowmelt schemas pull: {error}", file=sys.stderr)
    print(f"{len(report.written)} pulled, {len(report.unchanged)} unchanged, {len(report.errors)} failed; "
          f"cache: {cache}")
    return 1 if report.errors else 0


def _topics_create(args, config) -> int:
    from snowmelt.topics import create_topics, specs

    numbers = (args.partitions, args.raw_partitions or args.partitions, args.replication_factor,
               args.min_insync_replicas)
    if min(numbers) < 1 or args.min_insync_replicas > args.replication_factor or args.timeout <= 0:
        print("snowmelt topics: partitions, replication factor and min.insync.replicas must be >= 1, "
              "min.insync.replicas at most the replication factor, and --timeout > 0", file=sys.stderr)
        return 2
    wanted = specs(config, args.raw_partitions or args.partitions, args.partitions, args.replication_factor,
                   args.min_insync_replicas)
    return create_topics(config, wanted, timeout=args.timeout)


#: The exit status of a command whose output was closed early: a shell's status for a process ended by SIGPIPE.
CLOSED_OUTPUT_STATUS = 128 + signal.SIGPIPE


def main(argv: list[str] | None = None) -> int:
    """Run one command; its exit status.

    Output piped into a reader that stops early (``snowmelt config | head``)
    ends the command quietly with :data:`CLOSED_OUTPUT_STATUS`, as a Unix tool
    ended by SIGPIPE: no traceback, whatever the command (argparse's own
    ``--help`` output ends quietly too).
    """
    try:
        try:
            return _run(argv)
        finally:  # what is still buffered is written here, not at exit where a failure cannot be caught
            sys.stdout.flush()
    except BrokenPipeError:
        # the interpreter flushes stdout again at exit: let that go to /dev/null, not to a closed pipe
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return CLOSED_OUTPUT_STATUS


#: the commands that run until stopped: the pipeline's processes
SERVICES = frozenset({"collector", "enrich", "load", "up"})


def _run(argv: list[str] | None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "diff":  # a developer tool on two outputs: no pipeline config
        return _diff(args)
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"snowmelt: invalid configuration: {exc}", file=sys.stderr)
        return 2
    from snowmelt.logs import configure
    configure(config.logging)
    if args.command in SERVICES:
        from snowmelt.crash import report_fatal_signals
        from snowmelt.lifecycle import ignore_stop_signals
        report_fatal_signals()
        try:
            return _serve(args, config)
        finally:
            ignore_stop_signals()
    if args.command == "schemas":
        return _schemas_pull(args, config)
    if args.command == "topics":
        return _topics_create(args, config)
    if args.command == "config":
        # secrets shown as ***: the output ends up in terminals, tickets and CI logs
        yaml.safe_dump(redacted(as_dict(config)), sys.stdout, sort_keys=False)
        return 0
    return 2  # pragma: no cover - argparse enforces the choices


def _serve(args, config) -> int:
    """Run the service ``args.command`` until it stops; its exit status."""
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
    return 2  # pragma: no cover - SERVICES names only these


if __name__ == "__main__":
    sys.exit(main())
