"""Java libraries from Maven Central, fetched once into a cache outside the repository.

Used by the test Kafka broker (``tests/services/kafka.py``) and by the
enrichments that run a Java library in-process (YAUAA through JPype).  A
"jar set" is a pom whose dependencies Maven resolves;
:func:`fetch_jars` runs ``mvn dependency:copy-dependencies`` for it into
``<cache root>/<name>/libs`` and returns that folder.

- cheap when cached: one small marker file is read; the marker holds a hash
  of the pom and the properties, so a changed pom or version fetches again;
- Maven writes nothing in the repository: the pom is written into the cache
  folder and Maven runs there;
- the jars are copied into a temporary folder renamed into place once
  complete, under a file lock (parallel test workers, CI steps, two stages
  starting at once).

``$SNOWMELT_CACHE`` moves the cache root (default ``~/.cache/snowmelt``).
"""
from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
from pathlib import Path
from typing import Iterable, Mapping
from xml.sax.saxutils import escape

MARKER = ".snowmelt-fetched"


def cache_root() -> Path:
    """``$SNOWMELT_CACHE`` or ``~/.cache/snowmelt``."""
    root = os.environ.get("SNOWMELT_CACHE")
    return Path(root).expanduser() if root else Path.home() / ".cache" / "snowmelt"


def pom_for(artifact_id: str, dependencies: Iterable[str]) -> str:
    """A pom (not a build) whose only purpose is to list ``group:artifact:version`` dependencies."""
    deps = []
    for coordinate in dependencies:
        group, artifact, version = coordinate.split(":")
        deps.append(f"    <dependency><groupId>{escape(group)}</groupId><artifactId>{escape(artifact)}</artifactId>"
                    f"<version>{escape(version)}</version></dependency>")
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<!-- Written by snowmelt/maven.py: not a build, only the jars Maven resolves for {escape(artifact_id)}. -->
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>io.snowmelt.jars</groupId>
  <artifactId>{escape(artifact_id)}</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
{chr(10).join(deps)}
  </dependencies>
  <build>
    <plugins>
      <plugin>
        <groupId>org.apache.maven.plugins</groupId>
        <artifactId>maven-dependency-plugin</artifactId>
        <version>3.8.1</version>
      </plugin>
    </plugins>
  </build>
</project>
"""


def _fingerprint(pom: str, properties: Mapping[str, str]) -> str:
    text = pom + "\0" + "\0".join(f"{k}={v}" for k, v in sorted(properties.items()))
    return hashlib.sha256(text.encode()).hexdigest()


def jars_cached(home: Path, pom: str, properties: Mapping[str, str] | None = None, *,
                fingerprint: str | None = None) -> bool:
    """True when :func:`fetch_jars` would not need Maven."""
    fingerprint = fingerprint or _fingerprint(pom, properties or {})
    try:
        return (home / "libs" / MARKER).read_text().strip() == fingerprint
    except OSError:
        return False


def fetch_jars(home: Path, pom: str, *, properties: Mapping[str, str] | None = None,
               expect: str | None = None, what: str = "jars", quiet: bool = True,
               fingerprint: str | None = None) -> Path:
    """Make sure the jars of ``pom`` are in ``home/libs`` and return that folder.

    ``properties`` are passed to Maven as ``-Dkey=value`` (overriding the
    pom's); ``expect`` names a jar that must be among those copied (a check
    that the right artifact resolved); ``what`` names the set in errors.
    ``fingerprint`` replaces the marker's default hash (a caller whose cache
    predates this module keeps its own, so existing caches stay valid).
    Raises :class:`RuntimeError` when Maven is needed but absent or fails.
    """
    properties = dict(properties or {})
    fingerprint = fingerprint or _fingerprint(pom, properties)
    libs = home / "libs"
    if jars_cached(home, pom, properties, fingerprint=fingerprint):
        return libs
    mvn = shutil.which("mvn")
    if mvn is None:
        raise RuntimeError(f"{what}: not cached in {libs} and `mvn` is not on PATH to fetch them")
    home.mkdir(parents=True, exist_ok=True)
    with open(home / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if jars_cached(home, pom, properties, fingerprint=fingerprint):  # another process fetched while we waited
            return libs
        (home / "pom.xml").write_text(pom)
        staging = home / f"libs.partial-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        cmd = [mvn, "-B", "-f", str(home / "pom.xml"), "dependency:copy-dependencies",
               f"-DoutputDirectory={staging}", "-DincludeScope=runtime"]
        cmd += [f"-D{key}={value}" for key, value in properties.items()]
        if quiet:
            cmd.insert(2, "-q")
        proc = subprocess.run(cmd, cwd=home, capture_output=quiet, text=True, stdin=subprocess.DEVNULL)
        if proc.returncode != 0:
            shutil.rmtree(staging, ignore_errors=True)
            out = ((proc.stdout or "") + (proc.stderr or ""))[-4000:] if quiet else ""
            raise RuntimeError(f"mvn failed ({proc.returncode}) fetching {what}:\n{out}")
        if expect and not (staging / expect).is_file():
            shutil.rmtree(staging, ignore_errors=True)
            raise RuntimeError(f"mvn succeeded but {staging} has no {expect}")
        shutil.rmtree(libs, ignore_errors=True)
        staging.rename(libs)
        (libs / MARKER).write_text(fingerprint + "\n")
    return libs
