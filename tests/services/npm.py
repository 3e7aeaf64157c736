"""npm packages the tests drive (the official trackers): installed on first use, or the test skips and says why."""
from __future__ import annotations

import fcntl
import shutil
import subprocess
from pathlib import Path

import pytest

TIMEOUT = 300.0


def npm_install(folder: Path, installed: Path, *options: str) -> None:
    """``npm ci`` (``npm install`` without a lock file) in ``folder`` unless ``installed`` exists.

    Skips the calling test when npm is missing or the install fails or does not
    produce ``installed`` (no registry reachable, an old Node).
    """
    if installed.exists():
        return
    # parallel test workers: one installs, the others wait for it and find the packages there
    with open(folder / ".npm-install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not installed.exists():
            _install(folder, installed, options)


def _install(folder: Path, installed: Path, options: tuple[str, ...]) -> None:
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip(f"npm is needed to install the packages of {folder}")
    command = [npm, "ci" if (folder / "package-lock.json").exists() else "install", "--no-audit", "--no-fund",
               *options]
    try:
        done = subprocess.run(command, cwd=folder, capture_output=True, text=True, timeout=TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        pytest.skip(f"`npm {' '.join(command[1:])}` in {folder} did not finish in {TIMEOUT:.0f}s")
    if done.returncode != 0 or not installed.exists():
        pytest.skip(f"`npm {' '.join(command[1:])}` in {folder} failed (exit {done.returncode}): "
                    f"{(done.stderr or done.stdout)[-800:]}")
