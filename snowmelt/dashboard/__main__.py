"""``python -m snowmelt.dashboard``: the dashboard page against a ClickHouse server (or a chdb folder).

    python -m snowmelt.dashboard --url http://default:@localhost:8123 --database snowplow --port 8080

serves the same page and ``/dashboard/data`` as ``snowmelt up`` does, its
queries sent to the server the loader writes to (clickhouse-connect, read
only).  ``--chdb PATH`` opens a chdb data folder instead (not one a running
``snowmelt up`` holds: chdb allows one process per folder; query that one
through its SQL port with ``--url``).  The devices panel reads the
``page_views`` and ``users`` models: keep them refreshed on that server
(``loaders.models.Models``), or the panel shows the missing table's error.
"""
from __future__ import annotations

import argparse
import logging

from aiohttp import web

from snowmelt.config import ClickHouseConfig
from snowmelt.dashboard import add_dashboard_routes, backend_query


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m snowmelt.dashboard", description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://localhost:8123", help="ClickHouse HTTP URL (default %(default)s)")
    parser.add_argument("--chdb", metavar="PATH", help="open this chdb data folder instead of a server")
    parser.add_argument("--database", default="snowplow", help="database of events and bad_rows (%(default)s)")
    parser.add_argument("--host", default="127.0.0.1", help="address to serve on (%(default)s)")
    parser.add_argument("--port", type=int, default=8080, help="port to serve on (%(default)s)")
    parser.add_argument("--poll-seconds", type=float, default=5.0, help="page refresh interval (%(default)s)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    from loaders.clickhouse import ChdbBackend, ServerBackend

    if args.chdb:
        backend = ChdbBackend(args.chdb)
    else:
        backend = ServerBackend(ClickHouseConfig(backend="server", url=args.url, database=args.database))
    app = web.Application()
    add_dashboard_routes(app, backend_query(backend), database=args.database, poll_seconds=args.poll_seconds)
    app.on_cleanup.append(lambda _app: _close(backend))
    web.run_app(app, host=args.host, port=args.port, print=lambda _msg: print(
        f"snowmelt dashboard on http://{args.host}:{args.port}/ (Ctrl-C to stop)", flush=True))


async def _close(backend) -> None:
    backend.close()


if __name__ == "__main__":
    main()
