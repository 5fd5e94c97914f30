"""Builders for Grafana's dashboard JSON model: panels, targets, variables, layout.

Nothing here knows about AKV or ONTAP; `common.py` holds what the three dashboards share.
Every builder returns a fresh dictionary, so a dashboard can never alias another's panel.
The model targets Grafana 10.4 and later (schemaVersion 39).
"""

from __future__ import annotations

import string
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

SCHEMA_VERSION = 39
GRID_WIDTH = 24

# The one datasource reference: every panel and every target points at the dashboard's
# `datasource` variable, so the JSON never names a datasource uid of someone's Grafana.
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}

Json = dict[str, Any]


@dataclass(frozen=True)
class Query:
    """One PromQL expression of a panel; `legend` is Grafana's legendFormat."""

    expr: str
    legend: str = ""


@dataclass(frozen=True)
class Cell:
    """A panel and its size on the 24-column grid."""

    panel: Json
    width: int
    height: int


@dataclass(frozen=True)
class Row:
    """A titled row of cells; a collapsed row holds its panels inside itself."""

    title: str
    cells: Sequence[Cell]
    collapsed: bool = False


@dataclass(frozen=True)
class Dashboard:
    """What distinguishes one dashboard; `render` adds the rest of the model."""

    uid: str
    title: str
    description: str
    rows: Sequence[Row]
    variables: Sequence[Json]
    links: Sequence[Json] = field(default_factory=tuple)
    tags: Sequence[str] = ("akv-exporter", "netapp", "ontap")


# --- field configuration -----------------------------------------------------------------


def thresholds(base: str, *steps: tuple[float, str]) -> Json:
    """Absolute thresholds: `base` colour below the first step, then each (value, colour)."""
    return {
        "mode": "absolute",
        "steps": [{"color": base, "value": None}]
        + [{"color": color, "value": value} for value, color in steps],
    }


def value_words(*words: tuple[float, str, str]) -> Json:
    """A value mapping from numbers to (word, colour), so colour never carries meaning alone."""
    return {
        "type": "value",
        "options": {
            _number_key(value): {"color": color, "index": index, "text": text}
            for index, (value, text, color) in enumerate(words)
        },
    }


def range_words(low: float | None, high: float | None, text: str, color: str) -> Json:
    """A value mapping of the closed range [low, high] (None: unbounded) to a word."""
    return {
        "type": "range",
        "options": {"from": low, "to": high, "result": {"color": color, "index": 0, "text": text}},
    }


def _number_key(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def field_config(
    *,
    unit: str = "none",
    mappings: Sequence[Json] = (),
    steps: Json | None = None,
    no_value: str | None = None,
    decimals: int | None = None,
    minimum: float | None = None,
    maximum: float | None = None,
    custom: Json | None = None,
    links: Sequence[Json] = (),
    overrides: Sequence[Json] = (),
) -> Json:
    """Panel field defaults (unit, mappings, thresholds, text for no data) and overrides."""
    defaults: Json = {
        "color": {"mode": "thresholds"},
        "mappings": list(mappings),
        "thresholds": steps or thresholds("green"),
        "unit": unit,
    }
    if no_value is not None:
        defaults["noValue"] = no_value
    if decimals is not None:
        defaults["decimals"] = decimals
    if minimum is not None:
        defaults["min"] = minimum
    if maximum is not None:
        defaults["max"] = maximum
    if custom is not None:
        defaults["custom"] = custom
    if links:
        defaults["links"] = list(links)
    return {"defaults": defaults, "overrides": list(overrides)}


def override(field_name: str, **properties: Any) -> Json:
    """Per-column settings of a table (or per-series of a graph), matched by field name."""
    return {
        "matcher": {"id": "byName", "options": field_name},
        "properties": [
            {"id": _override_property(key), "value": value}
            for key, value in sorted(properties.items())
        ],
    }


def _override_property(key: str) -> str:
    # Python keywords cannot say `custom.cellOptions`; callers write custom_cellOptions.
    return key.replace("custom_", "custom.")


def data_link(title: str, url: str) -> Json:
    """A link from a value (table cell, series point) to another dashboard."""
    return {"targetBlank": False, "title": title, "url": url}


# --- panels --------------------------------------------------------------------------------


def _targets(queries: Sequence[Query], *, instant: bool, table: bool) -> list[Json]:
    if len(queries) > len(string.ascii_uppercase):
        raise ValueError("a panel holds at most 26 queries")
    return [
        {
            "datasource": dict(DATASOURCE),
            "editorMode": "code",
            "expr": query.expr,
            "format": "table" if table else "time_series",
            "instant": instant,
            "legendFormat": query.legend,
            "range": not instant,
            "refId": ref_id,
        }
        for ref_id, query in zip(string.ascii_uppercase, queries, strict=False)
    ]


def _panel(
    kind: str,
    title: str,
    description: str,
    queries: Sequence[Query],
    *,
    fields: Json,
    options: Json,
    instant: bool,
    table: bool = False,
    transformations: Sequence[Json] = (),
) -> Json:
    return {
        "datasource": dict(DATASOURCE),
        "description": description,
        "fieldConfig": fields,
        "options": options,
        "targets": _targets(queries, instant=instant, table=table),
        "title": title,
        "transformations": list(transformations),
        "type": kind,
    }


def _with_defaults(fields: Json, **defaults: Any) -> Json:
    """A copy of `fields` whose defaults gain the given keys, unless the caller set them."""
    return {**fields, "defaults": {**defaults, **fields["defaults"]}}


def stat(title: str, description: str, queries: Sequence[Query], fields: Json) -> Json:
    """Big numbers (or words, through value mappings), one tile per series, at the last value."""
    options = {
        "colorMode": "background",
        "graphMode": "none",
        "justifyMode": "auto",
        "orientation": "auto",
        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
        "showPercentChange": False,
        "textMode": "value_and_name" if any(q.legend for q in queries) else "value",
        "wideLayout": True,
    }
    return _panel("stat", title, description, queries, fields=fields, options=options, instant=True)


def bar_gauge(title: str, description: str, queries: Sequence[Query], fields: Json) -> Json:
    """Horizontal bars, one per series, at the query's instant value."""
    options = {
        "displayMode": "gradient",
        "minVizHeight": 16,
        "minVizWidth": 8,
        "namePlacement": "left",
        "orientation": "horizontal",
        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
        "showUnfilled": True,
        "valueMode": "color",
    }
    return _panel(
        "bargauge", title, description, queries, fields=fields, options=options, instant=True
    )


def timeseries(title: str, description: str, queries: Sequence[Query], fields: Json) -> Json:
    """Lines over the dashboard's time range, legend as a table with last and max."""
    # Lines are told apart by colour and legend; thresholds colour only stats and tables.
    fields = _with_defaults(
        fields,
        custom={
            "drawStyle": "line",
            "fillOpacity": 10,
            "lineWidth": 1,
            "showPoints": "never",
            "spanNulls": False,
        },
    )
    fields["defaults"]["color"] = {"mode": "palette-classic"}
    options = {
        "legend": {
            "calcs": ["lastNotNull", "max"],
            "displayMode": "table",
            "placement": "right",
            "showLegend": True,
        },
        "tooltip": {"mode": "multi", "sort": "desc"},
    }
    return _panel(
        "timeseries", title, description, queries, fields=fields, options=options, instant=False
    )


def state_timeline(title: str, description: str, queries: Sequence[Query], fields: Json) -> Json:
    """One band per series over time, coloured and worded by the value mappings."""
    fields = _with_defaults(fields, custom={"fillOpacity": 80, "lineWidth": 0})
    options = {
        "alignValue": "left",
        "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
        "mergeValues": True,
        "rowHeight": 0.85,
        "showValue": "auto",
        "tooltip": {"mode": "single", "sort": "none"},
    }
    return _panel(
        "state-timeline", title, description, queries, fields=fields, options=options, instant=False
    )


def table(
    title: str,
    description: str,
    queries: Sequence[Query],
    fields: Json,
    transformations: Sequence[Json] = (),
    sort_by: str | None = None,
) -> Json:
    """A table of instant queries in table format (labels become columns)."""
    options: Json = {
        "cellHeight": "sm",
        "footer": {"countRows": False, "fields": "", "reducer": ["sum"], "show": False},
        "showHeader": True,
    }
    if sort_by is not None:
        options["sortBy"] = [{"desc": False, "displayName": sort_by}]
    return _panel(
        "table",
        title,
        description,
        queries,
        fields=fields,
        options=options,
        instant=True,
        table=True,
        transformations=transformations,
    )


def merge() -> Json:
    """Join several table queries into one row per key.

    Grafana's merge keys rows on the fields present in every frame, so each query of a merged
    table aggregates `by` the same key labels, and each other column comes from one query only.
    """
    return {"id": "merge", "options": {}}


def organize(hidden: Iterable[str], columns: dict[str, str]) -> Json:
    """Hide columns; show ``columns`` (field name -> title) in their order, renamed."""
    return {
        "id": "organize",
        "options": {
            "excludeByName": {name: True for name in sorted(hidden)},
            "indexByName": {name: index for index, name in enumerate(columns)},
            "renameByName": dict(sorted(columns.items())),
        },
    }


# --- variables and links -------------------------------------------------------------------


def datasource_variable() -> Json:
    """The `datasource` variable every panel and target refers to."""
    return {
        "current": {},
        "hide": 0,
        "includeAll": False,
        "label": "Data source",
        "multi": False,
        "name": "datasource",
        "options": [],
        "query": "prometheus",
        "refresh": 1,
        "regex": "",
        "skipUrlSync": False,
        "type": "datasource",
    }


def label_variable(name: str, label: str, selector: str) -> Json:
    """A multi-value query variable over a label's values; All means the regex `.*`.

    `=~".*"` also matches a series that lacks the label, so a variable with no values at all
    (a label nobody configured) selects everything instead of breaking the queries.
    """
    definition = f"label_values({selector}, {name})"
    return {
        "allValue": ".*",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "datasource": dict(DATASOURCE),
        "definition": definition,
        "hide": 0,
        "includeAll": True,
        "label": label,
        "multi": True,
        "name": name,
        "options": [],
        "query": definition,
        "refresh": 2,
        "regex": "",
        "skipUrlSync": False,
        "sort": 1,
        "type": "query",
    }


def dashboard_link(uid: str, title: str, tooltip: str) -> Json:
    """A link in the dashboard's header to another dashboard, keeping time and variables."""
    return {
        "asDropdown": False,
        "icon": "dashboard",
        "includeVars": True,
        "keepTime": True,
        "tags": [],
        "targetBlank": False,
        "title": title,
        "tooltip": tooltip,
        "type": "link",
        "url": f"/d/{uid}",
    }


# --- the whole dashboard -----------------------------------------------------------------------


def render(board: Dashboard) -> Json:
    """The complete dashboard model: rows laid out on the grid, panel ids numbered from 1."""
    return {
        "annotations": {"list": []},
        "description": board.description,
        "editable": True,
        "fiscalYearStartMonth": 0,
        "graphTooltip": 1,
        "id": None,
        "links": list(board.links),
        "panels": _layout(board.rows),
        "refresh": "1m",
        "schemaVersion": SCHEMA_VERSION,
        "tags": list(board.tags),
        "templating": {"list": list(board.variables)},
        "time": {"from": "now-6h", "to": "now"},
        "timepicker": {},
        "timezone": "",
        "title": board.title,
        "uid": board.uid,
        "version": 1,
        "weekStart": "",
    }


def _layout(rows: Sequence[Row]) -> list[Json]:
    panels: list[Json] = []
    ids = iter(range(1, 10_000))
    y = 0
    for row in rows:
        row_panel: Json = {
            "collapsed": row.collapsed,
            "gridPos": {"h": 1, "w": GRID_WIDTH, "x": 0, "y": y},
            "id": next(ids),
            "panels": [],
            "title": row.title,
            "type": "row",
        }
        panels.append(row_panel)
        y += 1
        placed = list(_place(row.cells, y, ids))
        y = max((p["gridPos"]["y"] + p["gridPos"]["h"] for p in placed), default=y)
        (row_panel["panels"] if row.collapsed else panels).extend(placed)
    return panels


def _place(cells: Sequence[Cell], top: int, ids: Iterator[int]) -> Iterator[Json]:
    """Cells left to right, wrapping to a new line below the tallest cell of the line."""
    x, y, line_height = 0, top, 0
    for cell in cells:
        if not 0 < cell.width <= GRID_WIDTH:
            raise ValueError(f"panel {cell.panel['title']!r}: width {cell.width} off the grid")
        if x + cell.width > GRID_WIDTH:
            x, y, line_height = 0, y + line_height, 0
        yield {
            **cell.panel,
            "gridPos": {"h": cell.height, "w": cell.width, "x": x, "y": y},
            "id": next(ids),
        }
        x += cell.width
        line_height = max(line_height, cell.height)
