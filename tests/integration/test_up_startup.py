"""``snowmelt up`` refuses to start in one line, before it creates or opens anything, when it cannot run.

A port in use (``up.port`` or ``up.sql_port``) used to crash inside chdb
(exit 139) in about half the runs, after creating the data folder; a second
``up`` on the same data folder printed a 40-line traceback; a missing or
invalid resolver file did not say which file.  Each case is run several
times against real processes.
"""
from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from tests.services.process import snowmelt_env
from tests.services.server import free_port
from tests.services.up import UpProcess


def run_up(args: list[str], settings: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "snowmelt.cli", "up", *args], env=snowmelt_env(
        {"collector.host": "127.0.0.1", "up.progress_interval": "0", **(settings or {})}),
        capture_output=True, text=True, timeout=timeout)


def one_line(result: subprocess.CompletedProcess) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and len(lines) == 1, (result.returncode, result.stderr[-3000:])
    return lines[0]


@pytest.mark.parametrize("which", ["up.port", "up.sql_port"])
def test_a_port_in_use_is_one_line_and_nothing_is_created(tmp_path, which):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        for attempt in range(4):
            data = tmp_path / f"data{attempt}"
            ports = {"up.port": port, "up.sql_port": free_port()} if which == "up.port" else \
                {"up.port": free_port(), "up.sql_port": port}
            result = run_up(["--data-dir", str(data), "--port", str(ports["up.port"])],
                            {"up.sql_port": str(ports["up.sql_port"])}, timeout=30)
            line = one_line(result)
            assert f"127.0.0.1:{port}" in line and which in line, line
            assert not data.exists()


def test_a_second_up_on_the_same_data_folder_is_one_line(tmp_path):
    first = UpProcess(tmp_path / "data").start()
    try:
        result = run_up(["--data-dir", str(tmp_path / "data"), "--port", str(free_port())],
                        {"up.sql_port": str(free_port())})
        line = one_line(result)
        assert str(tmp_path / "data") in line and "in use" in line and str(first.proc.pid) in line
        assert first.get("/micro/all") is not None  # the first one is unharmed
    finally:
        assert first.terminate() == 0
        first.remove_log()


def test_resolver_file_problems_name_the_file(tmp_path):
    missing = tmp_path / "nope.json"
    line = one_line(run_up(["--data-dir", str(tmp_path / "d1"), "--resolver", str(missing)]))
    assert str(missing) in line
    broken = tmp_path / "resolver.json"
    broken.write_text("{not json")
    line = one_line(run_up(["--data-dir", str(tmp_path / "d2"), "--resolver", str(broken)]))
    assert str(broken) in line
    assert not (tmp_path / "d1").exists() and not (tmp_path / "d2").exists()
