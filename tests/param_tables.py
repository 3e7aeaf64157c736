"""A tracker-parameter table for ``ext.map_params`` tests: one parameter of each kind of check."""
from __future__ import annotations

from typing import Callable

import ext


def param_table(events: dict[str, str], expectation: str, call: Callable[[str], object] | None = None) -> dict:
    """``e`` looked up in ``events`` (else ``expectation``), and a string, UUID, int, timestamp, flag,
    double and dimensions parameter; ``tr_tt`` converted by ``call`` when given."""
    table = {
        "e": (ext.PARAM_LOOKUP, "event", (events, expectation)),
        "aid": (ext.PARAM_STRING, "app_id", None),
        "eid": (ext.PARAM_UUID, "event_id", None),
        "vid": (ext.PARAM_INT, "domain_sessionidx", None),
        "dtm": (ext.PARAM_TSTAMP, "dvce_created_tstamp", None),
        "cookie": (ext.PARAM_FLAG, "br_cookies", None),
        "se_va": (ext.PARAM_DOUBLE, "se_value", None),
        "res": (ext.PARAM_DIMENSIONS, "dvce_screenwidth", "dvce_screenheight"),
    }
    if call is not None:
        table["tr_tt"] = (ext.PARAM_CALL, "tr_total", call)
    return table
