"""Run ``snowmelt collector`` as a real process for integration tests and benchmarks."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class CollectorProcess:
    """``snowmelt collector`` on a free port with config from ``SNOWMELT_*`` variables.

    ``settings`` are dotted config keys, e.g. ``{"collector.delivery": "buffered"}``.
    """

    def __init__(self, bootstrap_servers: str, topics, settings: dict | None = None, port: int | None = None):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("SNOWMELT_") or "EXTENSIONS" in k}
        values = {
            "kafka.bootstrap_servers": bootstrap_servers,
            "topics.raw": topics.raw,
            "topics.bad": topics.bad,
            "collector.host": "127.0.0.1",
            "collector.port": str(self.port),
            "collector.health_probe_interval": "0.5",
        }
        values.update(settings or {})
        for key, value in values.items():
            env["SNOWMELT_" + key.replace(".", "__").upper()] = str(value)
        self.env = env
        self.log = tempfile.NamedTemporaryFile(prefix="snowmelt-collector-", suffix=".log", delete=False)
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 30.0, wait_sink: bool = True) -> "CollectorProcess":
        self.proc = subprocess.Popen([sys.executable, "-m", "snowmelt.cli", "collector"], env=self.env,
                                     stdout=self.log, stderr=subprocess.STDOUT)
        self.wait_ready("/sink-health" if wait_sink else "/health", timeout)
        return self

    def wait_ready(self, path: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"collector exited with {self.proc.returncode}:\n{self.output()}")
            try:
                with urllib.request.urlopen(self.url + path, timeout=1) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"collector not ready on {path} after {timeout}s:\n{self.output()}")

    def output(self) -> str:
        return Path(self.log.name).read_text(errors="replace")[-4000:]

    def terminate(self, timeout: float = 60.0) -> int:
        """SIGTERM and wait: the collector drains before it exits."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.terminate()
        os.unlink(self.log.name)
