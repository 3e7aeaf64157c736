"""Run ``snowmelt enrich`` as a real process for integration tests and benchmarks."""
from __future__ import annotations

import shutil
import tempfile
import urllib.request

from tests.services.collector import free_port
from tests.services.process import SnowmeltProcess, snowmelt_env


class EnrichProcess(SnowmeltProcess):
    """``snowmelt enrich`` with config from ``SNOWMELT_*`` variables and metrics on a free port.

    ``settings`` are dotted config keys, e.g. ``{"enrich.batch_size": "100"}``.
    ``start()`` returns once the process serves ``/metrics``; its output records
    arrive on the topics later (poll them with a deadline).
    """

    name = "enrich"

    def __init__(self, bootstrap_servers: str, topics, settings: dict | None = None,
                 group_id: str | None = None, resolver: str | None = None):
        self.metrics_port = free_port()
        self.metrics_url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        values = {
            "kafka.bootstrap_servers": bootstrap_servers,
            "topics.raw": topics.raw,
            "topics.bad": topics.bad,
            "topics.enriched": topics.enriched,
            "enrich.group_id": group_id or f"enrich-{topics.raw}",
            "enrich.metrics_host": "127.0.0.1",
            "enrich.metrics_port": str(self.metrics_port),
        }
        values.update(settings or {})
        env = snowmelt_env(values)
        # The worker's temporary files (Faust's working folder) go here, removed by close()
        # even after a kill -9.
        self.tmp = tempfile.mkdtemp(prefix="snowmelt-enrich-test-")
        env["TMPDIR"] = self.tmp
        super().__init__(["enrich"] + (["--resolver", resolver] if resolver else []), env)

    def start(self, timeout: float = 60.0) -> EnrichProcess:
        self.spawn()
        self.wait_http(self.metrics_url, timeout)
        return self

    def metrics(self) -> str:
        with urllib.request.urlopen(self.metrics_url, timeout=5) as resp:
            return resp.read().decode()

    def close(self) -> None:
        """Kill the process if it still runs and remove its log and temporary files."""
        self.kill()
        self.remove_log()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        try:
            self.terminate()
        finally:
            self.close()
