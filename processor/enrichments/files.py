"""Where an enrichment's data file is: Snowplow's ``database`` + ``uri`` pair.

Used by ``referer_parser``, ``ua_parser_config``, ``ip_lookups`` and
``iab_spiders_and_robots_enrichment``.  ``uri`` is the folder holding the file
``database``:

- a local path or a ``file:`` URI (relative paths against
  ``LoadContext.base_dir``); with no ``uri`` at all, ``database`` itself is
  such a path;
- an ``http(s)`` URI: ``uri/database`` is downloaded once into
  ``LoadContext.cache_dir`` (written to a temporary name, then renamed) and
  reused from there by later starts;
- ``s3:``/``gs:`` (or any other scheme) are refused: there is no cloud SDK here.

Every failure is a :class:`ConfigError` naming the field
(``<field_path>.database`` or ``<field_path>.uri``).
"""
from __future__ import annotations

import os
import shutil
import tempfile
import threading
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

from processor.enrichments.base import ConfigError, LoadContext

DOWNLOAD_TIMEOUT_SECONDS = 60
# where downloads go when ``LoadContext.cache_dir`` is not set and the caller allows it
TEMP_CACHE_DIR = Path(tempfile.gettempdir()) / "snowmelt-enrichments"


def locate_file(database: str | None, uri: str | None, ctx: LoadContext,
                field_path: str = "$.data.parameters", *, temp_cache: bool = False) -> Path:
    """The local file named by ``database`` + ``uri`` (see the module docstring).

    ``field_path`` is the config object holding the pair
    (``$.data.parameters`` for the referer parser, ``$.data.parameters.geo``
    for IP lookups).  An ``http(s)`` file needs ``ctx.cache_dir``; with
    ``temp_cache`` a temporary folder (:data:`TEMP_CACHE_DIR`) is used when
    none is set, otherwise the config is refused.
    """
    if not database:
        raise ConfigError(f"{field_path}.database: must name the database file")
    database = str(database)
    if not uri:
        path = ctx.resolve_path(database)
    else:
        uri = str(uri).rstrip("/")
        if "/" in database or database in (".", ".."):
            raise ConfigError(f"{field_path}.database: {database!r} must be a plain file name")
        scheme = urlsplit(uri).scheme.lower()
        if scheme in ("http", "https"):
            return _download(f"{uri}/{database}", database, field_path, ctx, temp_cache)
        if scheme not in ("", "file") and len(scheme) > 1:  # one letter: a Windows drive
            raise ConfigError(f"{field_path}.uri: {scheme}: URIs are not supported; "
                              f"use a local folder, a file: URI or http(s): ({uri!r})")
        path = ctx.resolve_path(uri) / database
    if not path.is_file():
        raise ConfigError(f"{field_path}.uri: database file {str(path)!r} does not exist")
    return path


_download_lock = threading.Lock()


def _download(url: str, database: str, field_path: str, ctx: LoadContext, temp_cache: bool) -> Path:
    if ctx.cache_dir is not None:
        folder = Path(ctx.cache_dir)
    elif temp_cache:
        folder = TEMP_CACHE_DIR
    else:
        raise ConfigError(f"{field_path}.uri: {url!r} is remote and no cache folder is configured "
                          "to download it into; give a local path or a file: URI")
    target = folder / database
    with _download_lock:
        if target.is_file():
            return target  # downloaded by an earlier start
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".download-")
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_SECONDS) as resp:
                shutil.copyfileobj(resp, out, 1 << 20)
            os.replace(tmp, target)
        except OSError as exc:  # URLError and HTTPError are OSErrors
            Path(tmp).unlink(missing_ok=True)
            raise ConfigError(f"{field_path}.uri: cannot download {url!r}: {exc}") from None
    return target
