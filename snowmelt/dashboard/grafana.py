"""The Grafana dashboard for the same panels: ``deploy/grafana/snowmelt-dashboard.json``.

:func:`grafana_dashboard` builds it from :data:`snowmelt.dashboard.queries.PANELS`
(the same SQL text the page runs), for Grafana's ClickHouse data source plugin
(``grafana-clickhouse-datasource``, v4: ``rawSql`` targets, ``format`` 0 =
time series, 1 = table).  Two dashboard variables: ``datasource`` (any
ClickHouse data source: a ClickHouse server the loader writes to, or a running
``snowmelt up``'s SQL port) and ``database`` (``snowplow``, the loader's
``clickhouse.database``).  The queries keep their own fixed windows (last
5/30 minutes, 24 hours) like the page, so the dashboard's time picker does
not change them; it refreshes every 5 seconds.

``python -m snowmelt.dashboard.grafana`` prints the JSON; the shipped file is
that output (a unit test keeps them equal).
"""
from __future__ import annotations

import json

from snowmelt.dashboard.queries import PANELS

__all__ = ["grafana_dashboard", "PLUGIN", "UID"]

PLUGIN = "grafana-clickhouse-datasource"
UID = "snowmelt-live"
_DATASOURCE = {"type": PLUGIN, "uid": "${datasource}"}
_TIMESERIES, _TABLE = 0, 1


def _sql(panel: str) -> str:
    return PANELS[panel].replace("{database}", "${database}")


def _target(panel: str, fmt: int) -> dict:
    return {"datasource": _DATASOURCE, "editorType": "sql", "format": fmt,
            "queryType": "timeseries" if fmt == _TIMESERIES else "table",
            "rawSql": _sql(panel), "refId": "A"}


def _panel(ident: int, panel: str, title: str, kind: str, grid: tuple[int, int, int, int], fmt: int = _TABLE,
           **extra) -> dict:
    x, y, w, h = grid
    return {"id": ident, "type": kind, "title": title, "datasource": _DATASOURCE,
            "gridPos": {"x": x, "y": y, "w": w, "h": h}, "targets": [_target(panel, fmt)],
            "description": f"snowmelt dashboard panel `{panel}` (snowmelt/dashboard/queries.py)", **extra}


def _stat() -> dict:
    return {"options": {"reduceOptions": {"values": False, "calcs": ["lastNotNull"], "fields": ""},
                        "orientation": "horizontal", "textMode": "value_and_name", "colorMode": "none",
                        "graphMode": "none", "justifyMode": "auto"},
            "fieldConfig": {"defaults": {"unit": "short", "decimals": 0}, "overrides": []}}


def _table() -> dict:
    return {"options": {"showHeader": True, "cellHeight": "sm", "footer": {"show": False}},
            "fieldConfig": {"defaults": {}, "overrides": []}}


def grafana_dashboard() -> dict:
    """The dashboard as Grafana's JSON model (import it, or provision it from ``deploy/grafana/``)."""
    bars = {"options": {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                        "tooltip": {"mode": "multi", "sort": "none"}},
            "fieldConfig": {"defaults": {"custom": {"drawStyle": "bars", "fillOpacity": 80, "lineWidth": 1,
                                                    "stacking": {"mode": "normal", "group": "A"}},
                                         "unit": "short", "decimals": 0},
                            "overrides": [
                                {"matcher": {"id": "byName", "options": "good"},
                                 "properties": [{"id": "color", "value": {"mode": "fixed", "fixedColor": "blue"}}]},
                                {"matcher": {"id": "byName", "options": "bad"},
                                 "properties": [{"id": "color", "value": {"mode": "fixed", "fixedColor": "red"}}]}]}}
    panels = [
        _panel(1, "active", "Active users, sessions and events (5 / 30 min)", "stat", (0, 0, 16, 4), **_stat()),
        _panel(2, "totals", "Stored", "stat", (16, 0, 8, 4), **_stat()),
        _panel(3, "events_per_minute", "Events per minute (last 30 min, good / bad)", "timeseries", (0, 4, 24, 8),
               fmt=_TIMESERIES, **bars),
        _panel(4, "top_pages", "Top pages (30 min)", "table", (0, 12, 8, 8), **_table()),
        _panel(5, "referrers", "Referrers (30 min)", "table", (8, 12, 8, 8), **_table()),
        _panel(6, "campaigns", "Campaigns (30 min)", "table", (16, 12, 8, 8), **_table()),
        _panel(7, "countries", "Countries (30 min)", "table", (0, 20, 8, 9), **_table()),
        _panel(8, "devices", "Devices: type, OS, browser (30 min)", "table", (8, 20, 16, 9), **_table()),
        _panel(9, "bad_row_reasons", "Bad-row reasons (24 h)", "table", (0, 29, 24, 8), **_table()),
    ]
    return {
        "uid": UID,
        "title": "snowmelt live",
        "description": "What happened in the last minutes: the panels of snowmelt's own dashboard page, "
                       "over the loader's ClickHouse tables events and bad_rows and the models page_views and users.",
        "tags": ["snowmelt", "snowplow", "clickhouse"],
        "timezone": "utc",
        "editable": True,
        "graphTooltip": 1,
        "refresh": "5s",
        "schemaVersion": 39,
        "version": 1,
        "time": {"from": "now-30m", "to": "now"},
        "timepicker": {"refresh_intervals": ["5s", "10s", "30s", "1m", "5m"]},
        "annotations": {"list": []},
        "links": [],
        "templating": {"list": [
            {"name": "datasource", "label": "ClickHouse", "type": "datasource", "query": PLUGIN,
             "current": {}, "hide": 0, "refresh": 1, "regex": "", "options": []},
            {"name": "database", "label": "Database", "type": "textbox", "query": "snowplow",
             "current": {"text": "snowplow", "value": "snowplow"}, "hide": 0,
             "options": [{"selected": True, "text": "snowplow", "value": "snowplow"}]},
        ]},
        "panels": panels,
    }


def main() -> None:
    print(json.dumps(grafana_dashboard(), indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
