"""Run ``snowmelt enrich`` as a real process for integration tests and benchmarks."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from tests.services.collector import free_port


class EnrichProcess:
    """``snowmelt enrich`` with config from ``SNOWMELT_*`` variables and metrics on a free port.

    ``settings`` are dotted config keys, e.g. ``{"enrich.batch_size": "100"}``.
    ``start()`` returns once the process serves ``/metrics``; its output records
    arrive on the topics later (poll them with a deadline).
    """

    def __init__(self, bootstrap_servers: str, topics, settings: dict | None = None,
                 group_id: str | None = None, resolver: str | None = None):
        self.metrics_port = free_port()
        self.metrics_url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        env = {k: v for k, v in os.environ.items() if not k.startswith("SNOWMELT_") or "EXTENSIONS" in k}
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
        for key, value in values.items():
            env["SNOWMELT_" + key.replace(".", "__").upper()] = str(value)
        # The worker's temporary files (Faust's working folder) go here, removed by close()
        # even after a kill -9.
        self.tmp = tempfile.mkdtemp(prefix="snowmelt-enrich-test-")
        env["TMPDIR"] = self.tmp
        self.env = env
        self.args = [sys.executable, "-m", "snowmelt.cli", "enrich"] + (["--resolver", resolver] if resolver else [])
        self.log = tempfile.NamedTemporaryFile(prefix="snowmelt-enrich-", suffix=".log", delete=False)
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 60.0) -> EnrichProcess:
        self.proc = subprocess.Popen(self.args, env=self.env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"enrich exited with {self.proc.returncode}:\n{self.output()}")
            try:
                with urllib.request.urlopen(self.metrics_url, timeout=1) as resp:
                    if resp.status == 200:
                        return self
            except OSError:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"enrich not serving metrics after {timeout}s:\n{self.output()}")

    def metrics(self) -> str:
        with urllib.request.urlopen(self.metrics_url, timeout=5) as resp:
            return resp.read().decode()

    def output(self) -> str:
        return Path(self.log.name).read_text(errors="replace")[-6000:]

    def kill(self) -> None:
        """SIGKILL: no drain, no commit."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def terminate(self, timeout: float = 60.0) -> int:
        """SIGTERM and wait: the worker finishes its batch, commits and leaves the group."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise

    def close(self) -> None:
        """Kill the process if it still runs and remove its log."""
        self.kill()
        self.log.close()
        if os.path.exists(self.log.name):
            os.unlink(self.log.name)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        try:
            self.terminate()
        finally:
            self.close()
