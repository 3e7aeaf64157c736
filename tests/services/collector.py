"""Run ``snowmelt collector`` as a real process for integration tests and benchmarks."""
from __future__ import annotations

from tests.services.process import SnowmeltProcess, snowmelt_env
from tests.services.server import free_port


class CollectorProcess(SnowmeltProcess):
    """``snowmelt collector`` on a free port with config from ``SNOWMELT_*`` variables.

    ``settings`` are dotted config keys, e.g. ``{"collector.delivery": "buffered"}``.
    """

    name = "collector"

    def __init__(self, bootstrap_servers: str, topics, settings: dict | None = None, port: int | None = None):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        values = {
            "kafka.bootstrap_servers": bootstrap_servers,
            "topics.raw": topics.raw,
            "topics.bad": topics.bad,
            "collector.host": "127.0.0.1",
            "collector.port": str(self.port),
            "collector.health_probe_interval": "0.5",
        }
        values.update(settings or {})
        super().__init__(["collector"], snowmelt_env(values))

    def start(self, timeout: float = 30.0, wait_sink: bool = True) -> "CollectorProcess":
        """Start and wait until it serves (``/sink-health``: and reaches the broker)."""
        self.spawn()
        self.wait_http(self.url + ("/sink-health" if wait_sink else "/health"), timeout)
        return self

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.terminate()
        self.remove_log()
