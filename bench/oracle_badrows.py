"""Bad rows of two enrichers compared: by type and count, then row by row on the event they carry.

A bad row is a self-describing JSON document (``{"schema": "iglu:com.snowplowanalytics.snowplow.badrows/...",
"data": {"processor": ..., "failure": ..., "payload": ...}}``).  Rows are joined on
``payload.enriched.event_id`` or, for a row without an enriched part, on the ``eid`` tracker parameter of
``payload.raw`` (or of ``payload`` itself).  Before comparing, what names the run or the implementation is
left out (any ``timestamp``, ``lastAttempt``, ``processor``, ``etl_tstamp`` and ``v_etl``) and ``lookupHistory`` lists are
sorted by repository.  A list whose items are the same in another order is reported as ``PATH (order only)``.
"""
from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable

IGNORED_KEYS = frozenset({"timestamp", "lastAttempt", "processor", "etl_tstamp", "v_etl"})


def parse(lines: Iterable[bytes | str]) -> list[Any]:
    """The bad rows of a topic dump, one JSON document a line (unparseable lines kept as strings)."""
    rows = []
    for line in lines:
        if isinstance(line, bytes):
            line = line.decode("utf-8", "backslashreplace")
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except ValueError:
            rows.append(line)
    return rows


def row_type(row: Any) -> str:
    """The bad row's schema key without the ``iglu:`` prefix (``(not JSON)`` for an unparseable line)."""
    if isinstance(row, dict) and isinstance(row.get("schema"), str):
        return row["schema"].removeprefix("iglu:")
    return "(not JSON)"


def _eid_of_parameters(params: Any) -> str | None:
    if isinstance(params, list):
        for p in params:
            if isinstance(p, dict) and p.get("name") == "eid" and p.get("value"):
                return str(p["value"])
    elif isinstance(params, dict) and params.get("eid"):
        return str(params["eid"])
    return None


def join_key(row: Any) -> str:
    """What joins a row to its twin on the other side: the event_id, else the raw eid, else a content hash."""
    payload = row.get("data", {}).get("payload") if isinstance(row, dict) and isinstance(row.get("data"), dict) \
        else None
    if isinstance(payload, dict):
        enriched = payload.get("enriched")
        if isinstance(enriched, dict) and enriched.get("event_id"):
            return f"event_id:{enriched['event_id']}"
        for part in (payload.get("raw"), payload):
            if isinstance(part, dict):
                eid = _eid_of_parameters(part.get("parameters"))
                if eid:
                    return f"eid:{eid}"
    digest = hashlib.sha1(json.dumps(normalise(row), sort_keys=True).encode()).hexdigest()[:16]
    return f"content:{row_type(row)}:{digest}"


def _raw_key(row: Any) -> str | None:
    """The row's raw request (parameters as a sorted multiset, with the collector timestamp), or ``None``."""
    try:
        raw = row["data"]["payload"]["raw"]
        params = sorted((p["name"], p.get("value")) for p in raw["parameters"])
    except (KeyError, TypeError):
        return None
    return _canon([params, raw.get("timestamp")])


def normalise(doc: Any) -> Any:
    """``doc`` without the ignored keys, with every ``lookupHistory`` sorted by repository."""
    if isinstance(doc, dict):
        out = {}
        for k, v in doc.items():
            if k in IGNORED_KEYS:
                continue
            v = normalise(v)
            if k == "lookupHistory" and isinstance(v, list):
                v = sorted(v, key=lambda h: (str(h.get("repository")) if isinstance(h, dict) else "", _canon(h)))
            out[k] = v
        return out
    if isinstance(doc, list):
        return [normalise(v) for v in doc]
    return doc


def _canon(doc: Any) -> str:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"))


def differing_paths(a: Any, b: Any, path: str = "") -> set[str]:
    """The JSON paths where ``a`` and ``b`` differ; list indexes are written ``[]``."""
    if a == b and type(a) is type(b):
        return set()
    if isinstance(a, dict) and isinstance(b, dict):
        out: set[str] = set()
        for k in a.keys() | b.keys():
            sub = f"{path}.{k}" if path else k
            if k not in a:
                out.add(f"{sub} (only in B)")
            elif k not in b:
                out.add(f"{sub} (only in A)")
            else:
                out |= differing_paths(a[k], b[k], sub)
        return out
    if isinstance(a, list) and isinstance(b, list):
        if len(a) == len(b) and sorted(map(_canon, a)) == sorted(map(_canon, b)):
            return {f"{path} (order only)"}
        if len(a) != len(b):
            return {f"{path} (length {len(a)} vs {len(b)})"}
        out = set()
        for x, y in zip(a, b):
            out |= differing_paths(x, y, f"{path}[]")
        return out
    return {path or "(root)"}


def _short(value: Any, limit: int = 160) -> str:
    text = value if isinstance(value, str) else _canon(value)
    return text if len(text) <= limit else text[:limit] + "..."


def value_at(doc: Any, path: str) -> list[Any]:
    """The values at ``path`` (``a.b[].c``; a trailing `` (...)`` note is dropped) in ``doc``."""
    path = path.split(" (")[0]
    values = [doc]
    for part in path.split("."):
        name, lists = part.rstrip("[]"), part.count("[]")
        nxt = []
        for v in values:
            if isinstance(v, dict) and name in v:
                items = [v[name]]
                for _ in range(lists):
                    items = [i for it in items if isinstance(it, list) for i in it]
                nxt.extend(items)
        values = nxt
    return values


@dataclass
class BadRowReport:
    types_a: Counter
    types_b: Counter
    joined: int
    only_a: int
    only_b: int
    duplicate_keys_a: int
    duplicate_keys_b: int
    identical: int
    paths: Counter                                        #: path -> joined rows differing there
    examples: dict[str, tuple[str, str, str]] = field(default_factory=dict)  #: path -> (key, A, B)
    only_a_examples: list[str] = field(default_factory=list)
    only_b_examples: list[str] = field(default_factory=list)


def _by_key(rows: list[Any]) -> tuple[dict[str, Any], int]:
    keyed: dict[str, Any] = {}
    dup = 0
    counts: Counter = Counter()
    for row in rows:
        key = join_key(row)
        counts[key] += 1
        if counts[key] > 1:  # several rows of one event (e.g. one per failure): keep them apart
            dup += 1
            key = f"{key}#{counts[key]}"
        keyed[key] = row
    return keyed, dup


def compare(rows_a: list[Any], rows_b: list[Any]) -> BadRowReport:
    """Bad rows of A and B compared by type and count, and joined row by row (see the module docstring)."""
    a, dup_a = _by_key(rows_a)
    b, dup_b = _by_key(rows_b)
    paths: Counter = Counter()
    examples: dict[str, tuple[str, str, str]] = {}
    joined = identical = 0
    joined_keys = a.keys() & b.keys()
    for key in joined_keys:
        joined += 1
        na, nb = normalise(a[key]), normalise(b[key])
        diff = differing_paths(na, nb)
        if not diff:
            identical += 1
        for p in diff:
            paths[p] += 1
            if p not in examples:
                va, vb = value_at(na, p), value_at(nb, p)
                examples[p] = (key, _short(va[0] if len(va) == 1 else va), _short(vb[0] if len(vb) == 1 else vb))
    # second pass: rows left over on both sides joined on their raw parameters (an invalid or empty eid
    # makes each enricher generate its own event_id, so the first key cannot match)
    left_a = {_raw_key(a[k]): k for k in a.keys() - b.keys()}
    left_b = {_raw_key(b[k]): k for k in b.keys() - a.keys()}
    for rk in left_a.keys() & left_b.keys():
        if rk is None:
            continue
        ka, kb = left_a[rk], left_b[rk]
        b[ka] = b.pop(kb)
    for key in (a.keys() & b.keys()) - joined_keys:
        joined += 1
        na, nb = normalise(a[key]), normalise(b[key])
        diff = differing_paths(na, nb)
        if not diff:
            identical += 1
        for p in diff:
            paths[p] += 1
            if p not in examples:
                va, vb = value_at(na, p), value_at(nb, p)
                examples[p] = (key, _short(va[0] if len(va) == 1 else va), _short(vb[0] if len(vb) == 1 else vb))
    only_a = sorted(a.keys() - b.keys())
    only_b = sorted(b.keys() - a.keys())
    return BadRowReport(
        types_a=Counter(map(row_type, rows_a)), types_b=Counter(map(row_type, rows_b)),
        joined=joined, only_a=len(only_a), only_b=len(only_b), duplicate_keys_a=dup_a, duplicate_keys_b=dup_b,
        identical=identical, paths=paths, examples=examples,
        only_a_examples=only_a[:3], only_b_examples=only_b[:3])


def format_markdown(report: BadRowReport, names: tuple[str, str] = ("A", "B")) -> str:
    """Two tables: bad rows by type on each side, and the paths that differ in joined rows."""
    lines = [f"| bad row type | {names[0]} | {names[1]} |", "|---|---|---|"]
    for t in sorted(report.types_a.keys() | report.types_b.keys()):
        lines.append(f"| `{t}` | {report.types_a.get(t, 0)} | {report.types_b.get(t, 0)} |")
    lines.append("")
    lines.append(f"Bad rows joined: {report.joined} (identical after normalising: {report.identical}); "
                 f"only in {names[0]}: {report.only_a}, only in {names[1]}: {report.only_b}"
                 + ".")
    for name, keys in ((names[0], report.only_a_examples), (names[1], report.only_b_examples)):
        if keys:
            lines.append(f"Only in {name}, e.g.: {', '.join(keys)}.")
    if report.paths:
        lines += ["", f"| path differing | rows | example {names[0]} | example {names[1]} |", "|---|---|---|---|"]
        for p, n in sorted(report.paths.items(), key=lambda kv: (-kv[1], kv[0])):
            _, va, vb = report.examples[p]
            cell = lambda s: "`" + s.replace("|", "\\|").replace("`", "'") + "`"  # noqa: E731
            lines.append(f"| `{p}` | {n} | {cell(va)} | {cell(vb)} |")
    return "\n".join(lines)
