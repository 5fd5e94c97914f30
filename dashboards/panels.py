"""The dashboards' conventions, applied through Grafana's own builders (grafana-foundation-sdk).

Grafana Labs' SDK owns the JSON model: every panel, query, variable and link below is one of its
typed builders, and `render` serialises what they build. This module only says how these
dashboards use them: every panel and query reads the `datasource` variable, stats and tables
are instant queries, rows are laid out left to right on the 24-column grid, panel ids count
from 1. Nothing here knows about AKV or ONTAP; `common.py` holds what the dashboards share.
"""

from __future__ import annotations

import json
import string
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from grafana_foundation_sdk.builders import bargauge, prometheus, statetimeline
from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as builders
from grafana_foundation_sdk.builders import stat as stat_builders
from grafana_foundation_sdk.builders import table as table_builders
from grafana_foundation_sdk.builders import timeseries as timeseries_builders
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common as common_models
from grafana_foundation_sdk.models import dashboard as models
from grafana_foundation_sdk.models import prometheus as prometheus_models

GRID_WIDTH = 24

# The one datasource reference: every panel and every target points at the dashboard's
# `datasource` variable, so the JSON never names a datasource uid of someone's Grafana.
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}

Json = dict[str, Any]
TABLE, TIME_SERIES = (
    prometheus_models.PromQueryFormat.TABLE,
    prometheus_models.PromQueryFormat.TIME_SERIES,
)
# Any of the SDK's panel builders (stat, table, timeseries, ...).
PanelBuilder = Any


def _datasource() -> models.DataSourceRef:
    return models.DataSourceRef(type_val=DATASOURCE["type"], uid=DATASOURCE["uid"])


@dataclass(frozen=True)
class Query:
    """One PromQL expression of a panel; `legend` is Grafana's legendFormat."""

    expr: str
    legend: str = ""


@dataclass(frozen=True)
class Override:
    """Per-column settings of a table (or per-series of a graph), matched by field name."""

    field_name: str
    properties: tuple[tuple[str, Any], ...]


@dataclass(frozen=True)
class Fields:
    """A panel's field defaults (unit, mappings, thresholds, text for no data) and overrides."""

    unit: str = "none"
    mappings: tuple[Any, ...] = ()
    steps: models.ThresholdsConfig | None = None
    no_value: str | None = None
    decimals: int | None = None
    minimum: float | None = None
    maximum: float | None = None
    links: tuple[models.DashboardLink, ...] = ()
    overrides: tuple[Override, ...] = ()
    # Tables only: every cell coloured by the thresholds and mappings (else Grafana's auto).
    colored_cells: bool = False


@dataclass(frozen=True)
class Cell:
    """A panel builder and its size on the 24-column grid."""

    panel: PanelBuilder
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
    variables: Sequence[Any]
    links: Sequence[Any] = field(default_factory=tuple)
    tags: Sequence[str] = ("akv-exporter", "netapp", "ontap")


# --- field configuration -----------------------------------------------------------------


def thresholds(base: str, *steps: tuple[float, str]) -> models.ThresholdsConfig:
    """Absolute thresholds: `base` colour below the first step, then each (value, colour)."""
    return models.ThresholdsConfig(
        mode=models.ThresholdsMode.ABSOLUTE,
        steps=[models.Threshold(value=None, color=base)]
        + [models.Threshold(value=value, color=color) for value, color in steps],
    )


def value_words(*words: tuple[float | str, str, str]) -> models.ValueMap:
    """A value mapping from numbers (or texts) to (word, colour): colour never speaks alone."""
    return models.ValueMap(
        options={
            _key(value): models.ValueMappingResult(text=text, color=color, index=index)
            for index, (value, text, color) in enumerate(words)
        }
    )


def range_words(low: float | None, high: float | None, text: str, color: str) -> models.RangeMap:
    """A value mapping of the closed range [low, high] (None: unbounded) to a word."""
    return models.RangeMap(
        options=models.DashboardRangeMapOptions(
            from_val=low,
            to=high,
            result=models.ValueMappingResult(text=text, color=color, index=0),
        )
    )


def _key(value: float | str) -> str:
    if isinstance(value, str):
        return value
    return str(int(value)) if float(value).is_integer() else str(value)


def field_config(
    *,
    unit: str = "none",
    mappings: Sequence[Any] = (),
    steps: models.ThresholdsConfig | None = None,
    no_value: str | None = None,
    decimals: int | None = None,
    minimum: float | None = None,
    maximum: float | None = None,
    links: Sequence[models.DashboardLink] = (),
    overrides: Sequence[Override] = (),
    colored_cells: bool = False,
) -> Fields:
    """Panel field defaults (unit, mappings, thresholds, text for no data) and overrides."""
    return Fields(
        unit=unit,
        mappings=tuple(mappings),
        steps=steps,
        no_value=no_value,
        decimals=decimals,
        minimum=minimum,
        maximum=maximum,
        links=tuple(links),
        overrides=tuple(overrides),
        colored_cells=colored_cells,
    )


def override(field_name: str, **properties: Any) -> Override:
    """Per-column settings, matched by field name; `custom_x` stands for Grafana's `custom.x`."""
    return Override(field_name, tuple(sorted(properties.items())))


def data_link(title: str, url: str) -> models.DashboardLink:
    """A link from a value (table cell, series point) to another dashboard."""
    return builders.DashboardLink(title).url(url).target_blank(False).build()


class _Built(cogbuilder.Builder):
    """A builder of an already built SDK object (the SDK's list setters take builders)."""

    def __init__(self, built: Any) -> None:
        self._built = built

    def build(self) -> Any:
        return self._built


def _apply(panel: PanelBuilder, fields: Fields, *, palette: bool = False) -> PanelBuilder:
    panel = (
        panel.unit(fields.unit)
        .mappings(list(fields.mappings))
        .thresholds(_Built(fields.steps or thresholds("green")))
        .color_scheme(
            builders.FieldColor().mode(
                models.FieldColorModeId.PALETTE_CLASSIC
                if palette
                else models.FieldColorModeId.THRESHOLDS
            )
        )
    )
    if fields.no_value is not None:
        panel = panel.no_value(fields.no_value)
    if fields.decimals is not None:
        panel = panel.decimals(fields.decimals)
    if fields.minimum is not None:
        panel = panel.min(fields.minimum)
    if fields.maximum is not None:
        panel = panel.max(fields.maximum)
    if fields.links:
        panel = panel.data_links([_Built(link) for link in fields.links])
    for item in fields.overrides:
        panel = panel.override_by_name(
            item.field_name,
            [
                models.DynamicConfigValue(id_val=key.replace("custom_", "custom."), value=value)
                for key, value in item.properties
            ],
        )
    return panel


# --- panels --------------------------------------------------------------------------------


def _targets(queries: Sequence[Query], *, instant: bool, table: bool) -> list[Any]:
    if len(queries) > len(string.ascii_uppercase):
        raise ValueError("a panel holds at most 26 queries")
    targets = []
    for ref_id, query in zip(string.ascii_uppercase, queries, strict=False):
        target = (
            prometheus.Dataquery()
            .datasource(_datasource())
            .editor_mode(prometheus_models.QueryEditorMode.CODE)
            .expr(query.expr)
            .format(
                prometheus_models.PromQueryFormat.TABLE
                if table
                else prometheus_models.PromQueryFormat.TIME_SERIES
            )
            .legend_format(query.legend)
            .ref_id(ref_id)
        )
        targets.append(target.instant() if instant else target.range())
    return targets


def _panel(
    panel: PanelBuilder,
    title: str,
    description: str,
    queries: Sequence[Query],
    *,
    instant: bool,
    table: bool = False,
) -> PanelBuilder:
    return (
        panel.title(title)
        .description(description)
        .datasource(_datasource())
        .targets(_targets(queries, instant=instant, table=table))
    )


def _last_value() -> common_builders.ReduceDataOptions:
    return common_builders.ReduceDataOptions().calcs(["lastNotNull"]).fields("").values(False)


def stat(title: str, description: str, queries: Sequence[Query], fields: Fields) -> PanelBuilder:
    """Big numbers (or words, through value mappings), one tile per series, at the last value."""
    panel = (
        stat_builders.Panel()
        .color_mode(common_models.BigValueColorMode.BACKGROUND)
        .graph_mode(common_models.BigValueGraphMode.NONE)
        .justify_mode(common_models.BigValueJustifyMode.AUTO)
        .orientation(common_models.VizOrientation.AUTO)
        .reduce_options(_last_value())
        .show_percent_change(False)
        .text_mode(
            common_models.BigValueTextMode.VALUE_AND_NAME
            if any(q.legend for q in queries)
            else common_models.BigValueTextMode.VALUE
        )
        .wide_layout(True)
    )
    return _apply(_panel(panel, title, description, queries, instant=True), fields)


def bar_gauge(
    title: str, description: str, queries: Sequence[Query], fields: Fields
) -> PanelBuilder:
    """Horizontal bars, one per series, at the query's instant value."""
    panel = (
        bargauge.Panel()
        .display_mode(common_models.BarGaugeDisplayMode.GRADIENT)
        .min_viz_height(16)
        .min_viz_width(8)
        .name_placement(common_models.BarGaugeNamePlacement.LEFT)
        .orientation(common_models.VizOrientation.HORIZONTAL)
        .reduce_options(_last_value())
        .show_unfilled(True)
        .value_mode(common_models.BarGaugeValueMode.COLOR)
    )
    return _apply(_panel(panel, title, description, queries, instant=True), fields)


def timeseries(
    title: str, description: str, queries: Sequence[Query], fields: Fields
) -> PanelBuilder:
    """Lines over the dashboard's time range, legend as a table with last and max."""
    panel = (
        timeseries_builders.Panel()
        .draw_style(common_models.GraphDrawStyle.LINE)
        .fill_opacity(10)
        .line_width(1)
        .show_points(common_models.VisibilityMode.NEVER)
        .span_nulls(False)
        .legend(
            common_builders.VizLegendOptions()
            .calcs(["lastNotNull", "max"])
            .display_mode(common_models.LegendDisplayMode.TABLE)
            .placement(common_models.LegendPlacement.RIGHT)
            .show_legend(True)
        )
        .tooltip(
            common_builders.VizTooltipOptions()
            .mode(common_models.TooltipDisplayMode.MULTI)
            .sort(common_models.SortOrder.DESCENDING)
        )
    )
    # Lines are told apart by colour and legend; thresholds colour only stats and tables.
    return _apply(_panel(panel, title, description, queries, instant=False), fields, palette=True)


def state_timeline(
    title: str, description: str, queries: Sequence[Query], fields: Fields
) -> PanelBuilder:
    """One band per series over time, coloured and worded by the value mappings."""
    panel = (
        statetimeline.Panel()
        .fill_opacity(80)
        .line_width(0)
        .align_value("left")
        .legend(
            common_builders.VizLegendOptions()
            .display_mode(common_models.LegendDisplayMode.LIST)
            .placement(common_models.LegendPlacement.BOTTOM)
            .show_legend(True)
        )
        .merge_values(True)
        .row_height(0.85)
        .show_value(common_models.VisibilityMode.AUTO)
        .tooltip(
            common_builders.VizTooltipOptions()
            .mode(common_models.TooltipDisplayMode.SINGLE)
            .sort(common_models.SortOrder.NONE)
        )
    )
    return _apply(_panel(panel, title, description, queries, instant=False), fields)


def table(
    title: str,
    description: str,
    queries: Sequence[Query],
    fields: Fields,
    transformations: Sequence[models.DataTransformerConfig] = (),
    sort_by: str | None = None,
) -> PanelBuilder:
    """A table of instant queries in table format (labels become columns)."""
    panel = (
        table_builders.Panel()
        .cell_height(common_models.TableCellHeight.SM)
        .footer(
            common_builders.TableFooterOptions()
            .count_rows(False)
            .fields("")
            .reducer(["sum"])
            .show(False)
        )
        .show_header(True)
        .transformations(list(transformations))
    )
    if fields.colored_cells:
        panel = panel.cell_options(common_models.TableColoredBackgroundCellOptions())
    if sort_by is not None:
        panel = panel.sort_by(
            [common_builders.TableSortByFieldState().display_name(sort_by).desc(False)]
        )
    return _apply(_panel(panel, title, description, queries, instant=True, table=True), fields)


def transformation(name: str, options: Json) -> models.DataTransformerConfig:
    """One of Grafana's data transformations, by its id."""
    return models.DataTransformerConfig(id_val=name, options=options)


def merge() -> models.DataTransformerConfig:
    """Join several table queries into one row per key.

    Grafana's merge keys rows on the fields present in every frame, so each query of a merged
    table aggregates `by` the same key labels, and each other column comes from one query only.
    """
    return transformation("merge", {})


def organize(hidden: Iterable[str], columns: dict[str, str]) -> models.DataTransformerConfig:
    """Hide columns; show ``columns`` (field name -> title) in their order, renamed."""
    return transformation(
        "organize",
        {
            "excludeByName": {name: True for name in sorted(hidden)},
            "indexByName": {name: index for index, name in enumerate(columns)},
            "renameByName": dict(sorted(columns.items())),
        },
    )


# --- variables and links -------------------------------------------------------------------


def datasource_variable() -> builders.DatasourceVariable:
    """The `datasource` variable every panel and target refers to."""
    return (
        builders.DatasourceVariable("datasource")
        .label("Data source")
        .type("prometheus")
        .hide(models.VariableHide.DONT_HIDE)
        .multi(False)
        .include_all(False)
        .regex("")
    )


def label_variable(name: str, label: str, selector: str) -> builders.QueryVariable:
    """A multi-value query variable over a label's values; All means the regex `.*`.

    `=~".*"` also matches a series that lacks the label, so a variable with no values at all
    (a label nobody configured) selects everything instead of breaking the queries.
    """
    return (
        builders.QueryVariable(name)
        .label(label)
        .datasource(_datasource())
        .query(f"label_values({selector}, {name})")
        .hide(models.VariableHide.DONT_HIDE)
        .multi(True)
        .include_all(True)
        .all_value(".*")
        .current(models.VariableOption(selected=True, text=["All"], value=["$__all"]))
        .refresh(models.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(models.VariableSort.ALPHABETICAL_ASC)
        .regex("")
    )


def dashboard_link(uid: str, title: str, tooltip: str) -> builders.DashboardLink:
    """A link in the dashboard's header to another dashboard, keeping time and variables."""
    return (
        builders.DashboardLink(title)
        .type(models.DashboardLinkType.LINK)
        .icon("dashboard")
        .tooltip(tooltip)
        .url(f"/d/{uid}")
        .tags([])
        .as_dropdown(False)
        .target_blank(False)
        .include_vars(True)
        .keep_time(True)
    )


# --- the whole dashboard -----------------------------------------------------------------------


def build(board: Dashboard) -> models.Dashboard:
    """The SDK's dashboard model: rows laid out on the grid, panel ids numbered from 1."""
    sdk = (
        builders.Dashboard(board.title)
        .uid(board.uid)
        .description(board.description)
        .tags(list(board.tags))
        .editable()
        .tooltip(models.DashboardCursorSync.CROSSHAIR)
        .time("now-6h", "now")
        .timezone("")
        .refresh("1m")
        .fiscal_year_start_month(0)
        .week_start("")
        .version(1)
        .links(list(board.links))
        .variables(list(board.variables))
    )
    ids = iter(range(1, 10_000))
    y = 0
    for row in board.rows:
        row_builder = (
            builders.Row(row.title)
            .id(next(ids))
            .grid_pos(models.GridPos(h=1, w=GRID_WIDTH, x=0, y=y))
            .collapsed(row.collapsed)
        )
        y += 1
        placed = list(_place(row.cells, y, ids))
        y = max((top + cell.height for cell, top in placed), default=y)
        if row.collapsed:
            for cell, _ in placed:
                row_builder = row_builder.with_panel(cell.panel)
            sdk = sdk.with_row(row_builder)
        else:
            sdk = sdk.with_row(row_builder)
            for cell, _ in placed:
                sdk = sdk.with_panel(cell.panel)
    return sdk.build()


def _place(cells: Sequence[Cell], top: int, ids: Iterator[int]) -> Iterator[tuple[Cell, int]]:
    """Cells left to right, wrapping to a new line below the tallest cell of the line."""
    x, y, line_height = 0, top, 0
    for cell in cells:
        if not 0 < cell.width <= GRID_WIDTH:
            raise ValueError(f"panel {cell.panel.build().title!r}: width {cell.width} off the grid")
        if x + cell.width > GRID_WIDTH:
            x, y, line_height = 0, y + line_height, 0
        cell.panel.id(next(ids)).grid_pos(models.GridPos(h=cell.height, w=cell.width, x=x, y=y))
        yield cell, y
        x += cell.width
        line_height = max(line_height, cell.height)


def render(board: Dashboard) -> Json:
    """The complete dashboard JSON, as the SDK's encoder writes its model."""
    return json.loads(json.dumps(build(board), cls=JSONEncoder))
