"""The ``snowmelt`` command as a shell runs it: output into a pipe that is closed early, files it leaves."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from snowmelt.cli import CLOSED_OUTPUT_STATUS
from snowmelt.config import UpConfig

REPO = Path(__file__).resolve().parents[2]


def run_into_closed_pipe(args: list[str]) -> subprocess.CompletedProcess:
    """``snowmelt ARGS | reader`` where the reader has already gone: every write meets a closed pipe."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run([sys.executable, "-m", "snowmelt.cli", *args], stdout=write_end,
                              stderr=subprocess.PIPE, text=True, timeout=60, cwd=REPO)
    finally:
        os.close(write_end)


def enriched_file(path: Path, app_id: str) -> Path:
    with path.open("w") as f:
        for i in range(3):
            fields = [""] * 131
            fields[0], fields[6] = app_id, f"5a1e2c3d-0000-4000-8000-{i:012d}"
            f.write("\t".join(fields) + "\n")
    return path


@pytest.mark.parametrize("command", ["config", "diff"])
def test_output_into_a_closed_pipe_ends_quietly_with_the_sigpipe_status(tmp_path, command):
    args = ["config"] if command == "config" else \
        ["diff", str(enriched_file(tmp_path / "a.tsv", "a")), str(enriched_file(tmp_path / "b.tsv", "b"))]
    result = run_into_closed_pipe(args)
    assert result.stderr == "" and result.returncode == CLOSED_OUTPUT_STATUS == 141, result.stderr[-2000:]


def test_help_into_a_closed_pipe_is_quiet():
    result = run_into_closed_pipe(["--help"])
    assert result.stderr == "" and result.returncode in (0, CLOSED_OUTPUT_STATUS), result.stderr[-2000:]


@pytest.mark.skipif(shutil.which("git") is None or not (REPO / ".git").exists(), reason="not a git checkout")
def test_the_default_data_folder_of_up_is_ignored_by_git():
    folder = Path(UpConfig().data_dir).name
    for path in (f"{folder}/enriched/2026-01-01.tsv", f"{folder}/clickhouse/store", f"{folder}/.lock"):
        result = subprocess.run(["git", "check-ignore", "-q", path], cwd=REPO)
        assert result.returncode == 0, f"{path} is not ignored by .gitignore"
