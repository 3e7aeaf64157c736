"""Run ``snowmelt enrich`` as a real process for integration tests and benchmarks."""
from __future__ import annotations

import shutil
import signal
import tempfile

from tests.services.process import MetricsProcess


class EnrichProcess(MetricsProcess):
    """``snowmelt enrich`` with config from ``SNOWMELT_*`` variables and metrics on a free port.

    ``settings`` are dotted config keys, e.g. ``{"enrich.batch_size": "100"}``.
    ``start()`` returns once the process serves ``/metrics``; its output records
    arrive on the topics later (poll them with a deadline).
    """

    name = "enrich"
    dump_signal = signal.SIGUSR1  # the worker's dump of every thread's stack and both loops' tasks

    def __init__(self, bootstrap_servers: str, topics, settings: dict | None = None,
                 group_id: str | None = None, resolver: str | None = None):
        values = {
            "kafka.bootstrap_servers": bootstrap_servers,
            "topics.raw": topics.raw,
            "topics.bad": topics.bad,
            "topics.enriched": topics.enriched,
            "enrich.group_id": group_id or f"enrich-{topics.raw}",
        }
        # The worker's temporary files (Faust's working folder) go here, removed by close()
        # even after a kill -9.
        self.tmp = tempfile.mkdtemp(prefix="snowmelt-enrich-test-")
        super().__init__(["enrich"] + (["--resolver", resolver] if resolver else []), "enrich", values, settings,
                         extra_env={"TMPDIR": self.tmp})

    def close(self) -> None:
        """Kill the process if it still runs and remove its log and temporary files."""
        super().close()
        shutil.rmtree(self.tmp, ignore_errors=True)
