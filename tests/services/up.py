"""Run ``snowmelt up`` as a real process for integration and conformance tests."""
from __future__ import annotations

import json
import urllib.request
from pathlib import Path

from tests.services.server import free_port
from tests.services.process import SnowmeltProcess, snowmelt_env


class UpProcess(SnowmeltProcess):
    """``snowmelt up`` on a free port of ``host`` (127.0.0.1 unless given), its files under ``data_dir``.

    ``resolver`` is a Snowplow resolver config file and ``enrichments`` a
    folder of enrichment configs (both optional); ``settings`` are dotted
    config keys.  ``start()`` returns once ``/health`` answers.
    """

    name = "up"

    def __init__(self, data_dir: Path, resolver: Path | None = None, enrichments: Path | None = None,
                 settings: dict | None = None, host: str = "127.0.0.1"):
        self.port = free_port()
        self.url = f"http://{host}:{self.port}"
        self.data_dir = Path(data_dir)
        args = ["up", "--port", str(self.port), "--data-dir", str(self.data_dir)]
        if resolver is not None:
            args += ["--resolver", str(resolver)]
        if enrichments is not None:
            args += ["--enrichments", str(enrichments)]
        self.sql_port = free_port()
        self.sql_url = f"http://127.0.0.1:{self.sql_port}"
        # no enrichments unless a test asks for them (the standard set is tested on its own)
        values = {"collector.host": host, "up.progress_interval": "1", "up.sql_port": str(self.sql_port),
                  "up.enrichments": "none"}
        values.update(settings or {})
        super().__init__(args, snowmelt_env(values))

    def start(self, timeout: float = 60.0) -> UpProcess:
        self.spawn()
        self.wait_http(self.url + "/health", timeout)
        return self

    def get(self, path: str):
        """GET ``path`` of the running process, decoded from JSON."""
        with urllib.request.urlopen(self.url + path, timeout=5) as resp:
            return json.loads(resp.read())

    def send(self, path: str, body: str | None = None, content_type: str | None = None, query: str = "",
             timeout: float = 10.0) -> int:
        """GET (no body) or POST ``path`` + ``query`` (``"?a=b"``) to the running process; the status."""
        data = None if body is None else body.encode()
        request = urllib.request.Request(self.url + path + query, data=data, method="GET" if data is None else "POST")
        if content_type:
            request.add_header("Content-Type", content_type)
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return resp.status

    def enriched_lines(self) -> list[str]:
        return [line for f in sorted((self.data_dir / "enriched").glob("*.tsv"))
                for line in f.read_text(encoding="utf-8").splitlines()]

    def bad_lines(self) -> list[str]:
        return [line for f in sorted((self.data_dir / "bad").glob("*.jsonl"))
                for line in f.read_text(encoding="utf-8").splitlines()]
