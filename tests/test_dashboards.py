"""Lint of the Grafana dashboards: the committed JSON, its conventions, the provisioning files."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from grafana_foundation_sdk.cog.encoder import JSONEncoder as SdkEncoder
from grafana_foundation_sdk.models.dashboard import Dashboard as SdkDashboard

from dashboards import generate
from dashboards.panels import DATASOURCE
from dashboards.queries import (
    DEFAULT_VARIABLES,
    iter_panels,
    iter_queries,
    substitute_variables,
)

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD_DIR = ROOT / "dashboards"
PROVISIONING = ROOT / "config" / "grafana" / "provisioning"
EXPECTED_UIDS = {"akv-fleet", "akv-cluster", "akv-exporter", "key-managers"}
GRAFANA_BUILTINS = {"__rate_interval", "__interval", "__range"}
TIME_UNITS = {"s", "ms", "dtdurations", "dtdurationms", "dateTimeAsIso", "dateTimeFromNow"}
RATIO_UNITS = {"percentunit", "percent"}

Json = dict[str, Any]


def committed() -> dict[str, Json]:
    return {
        path.name: json.loads(path.read_text(encoding="utf-8"))
        for path in sorted(DASHBOARD_DIR.glob("*.json"))
    }


BOARDS = committed()


def boards() -> list[Any]:
    return [pytest.param(board, id=name) for name, board in BOARDS.items()]


def content_panels(board: Json) -> Iterator[Json]:
    """Every panel that shows data: rows are layout, not panels with queries."""
    return (panel for panel in iter_panels(board) if panel["type"] != "row")


def walk(node: Any) -> Iterator[tuple[str, Any]]:
    """Every (key, value) pair anywhere in a JSON document."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield key, value
            yield from walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from walk(item)


# --- dashboards are code ------------------------------------------------------------------


def test_committed_files_are_exactly_what_the_generator_renders() -> None:
    rendered = generate.render_all()
    assert sorted(rendered) == sorted(BOARDS), "a dashboard JSON without a generator, or missing"
    for name, text in rendered.items():
        on_disk = (DASHBOARD_DIR / name).read_text(encoding="utf-8")
        assert on_disk == text, f"{name} is stale: run `make dashboards` and commit"


def test_generating_into_a_directory_gives_byte_identical_files(tmp_path: Path) -> None:
    assert generate.main(["--output", str(tmp_path)]) == 0
    for name in BOARDS:
        assert (tmp_path / name).read_bytes() == (DASHBOARD_DIR / name).read_bytes()


def test_check_mode_flags_an_edited_dashboard(tmp_path: Path) -> None:
    generate.write_all(tmp_path)
    assert generate.main(["--check", "--output", str(tmp_path)]) == 0
    edited = tmp_path / "akv-fleet.json"
    edited.write_text(edited.read_text().replace("Fleet overview", "Fleet"), encoding="utf-8")
    assert generate.main(["--check", "--output", str(tmp_path)]) == 1


def test_rendering_is_deterministic_with_sorted_keys_and_trailing_newline() -> None:
    first, second = generate.render_all(), generate.render_all()
    assert first == second
    for name, text in first.items():
        assert text.endswith("}\n") and not text.endswith("\n\n"), name
        assert text == json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n", name


def sdk_round_trip(board: Json) -> Json:
    """The board parsed into the SDK's typed dashboard model and encoded back to JSON."""
    return json.loads(json.dumps(SdkDashboard.from_json(board), cls=SdkEncoder))


@pytest.mark.parametrize("board", boards())
def test_every_dashboard_is_valid_for_grafanas_sdk_model(board: Json) -> None:
    # What the SDK's model does not know, it drops: a lossless round trip means every key
    # and value of the file is one Grafana's schema defines.
    assert sdk_round_trip(board) == board


def test_the_sdk_round_trip_loses_a_key_grafana_does_not_know() -> None:
    board = json.loads(json.dumps(BOARDS["akv-fleet.json"]))
    board["panels"][1]["fieldConfig"]["defaults"]["colour"] = "red"  # Grafana spells it color
    assert sdk_round_trip(board) != board


# --- identity and links ---------------------------------------------------------------------


def test_uids_are_fixed_and_match_file_names() -> None:
    assert {board["uid"] for board in BOARDS.values()} == EXPECTED_UIDS
    for name, board in BOARDS.items():
        assert name == f"{board['uid']}.json"
        assert board.get("id") is None, "an exported id would clash on import"


def data_link_urls(panel: Json) -> list[str]:
    """URLs of a panel's data links: field defaults and per-column overrides."""
    fields = panel["fieldConfig"]
    links = list(fields["defaults"].get("links", []))
    for item in fields["overrides"]:
        links += [link for p in item["properties"] if p["id"] == "links" for link in p["value"]]
    return [link["url"] for link in links]


def link_urls(board: Json) -> Iterator[str]:
    for link in board["links"]:
        yield link["url"]
    for panel in content_panels(board):
        yield from data_link_urls(panel)


@pytest.mark.parametrize("board", boards())
def test_links_point_at_existing_dashboards(board: Json) -> None:
    urls = list(link_urls(board))
    assert urls, "every dashboard links to the others"
    for url in urls:
        match = re.match(r"^/d/([\w-]+)", url)
        assert match, f"{url}: not a /d/<uid> link"
        assert match[1] in EXPECTED_UIDS, f"{url}: no dashboard has uid {match[1]}"


@pytest.mark.parametrize("board", boards())
def test_header_links_reach_every_other_dashboard(board: Json) -> None:
    targets = {link["url"].removeprefix("/d/") for link in board["links"]}
    assert targets == EXPECTED_UIDS - {board["uid"]}
    assert all(link["keepTime"] and link["includeVars"] for link in board["links"])


def test_overview_table_and_timeline_open_cluster_detail_with_cluster_set() -> None:
    fleet = BOARDS["akv-fleet.json"]
    linked = {p["type"]: data_link_urls(p) for p in content_panels(fleet) if data_link_urls(p)}
    assert set(linked) == {"table", "state-timeline"}
    for urls in linked.values():
        assert len(urls) == 1
        assert urls[0].startswith("/d/akv-cluster/")
        assert re.search(
            r"var-cluster=\$\{__(data\.fields\.Cluster|field\.labels\.cluster)\}", urls[0]
        )
        assert "${datasource:queryparam}" in urls[0]


# --- panels -------------------------------------------------------------------------------


@pytest.mark.parametrize("board", boards())
def test_panel_ids_are_unique_including_panels_inside_rows(board: Json) -> None:
    ids = [panel["id"] for panel in iter_panels(board)]
    assert len(ids) == len(set(ids)), f"duplicate panel ids: {sorted(ids)}"
    collapsed = [p for p in board["panels"] if p["type"] == "row" and p["collapsed"]]
    for row in collapsed:
        assert row["panels"], f"collapsed row {row['title']!r} hides no panel"


@pytest.mark.parametrize("board", boards())
def test_every_panel_and_target_uses_the_datasource_variable(board: Json) -> None:
    for panel in content_panels(board):
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel["targets"], f"{panel['title']}: no query"
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE, f"{panel['title']} {target['refId']}"


@pytest.mark.parametrize("board", boards())
def test_no_datasource_uid_is_hard_coded_anywhere(board: Json) -> None:
    references = [value for key, value in walk(board) if key == "datasource"]
    assert references
    for reference in references:
        assert reference == DATASOURCE, reference
    variable = board["templating"]["list"][0]
    assert (variable["name"], variable["type"], variable["query"]) == (
        "datasource",
        "datasource",
        "prometheus",
    )


@pytest.mark.parametrize("board", boards())
def test_every_panel_has_a_description(board: Json) -> None:
    for panel in content_panels(board):
        assert len(panel.get("description", "")) >= 40, f"{panel['title']}: describe it"


def units_of(panel: Json, ref_id: str) -> set[str]:
    """Units that apply to a target's values: the panel default, or its table column's."""
    units = {panel["fieldConfig"]["defaults"].get("unit", "none")}
    for item in panel["fieldConfig"]["overrides"]:
        if item["matcher"]["options"] == f"Value #{ref_id}":
            units |= {p["value"] for p in item["properties"] if p["id"] == "unit"}
    renamed = {}
    for transformation in panel.get("transformations", []):
        if transformation["id"] == "organize":
            renamed = transformation["options"]["renameByName"]
    column = renamed.get(f"Value #{ref_id}")
    for item in panel["fieldConfig"]["overrides"]:
        if column and item["matcher"]["options"] == column:
            units |= {p["value"] for p in item["properties"] if p["id"] == "unit"}
    return units


@pytest.mark.parametrize("board", boards())
def test_time_and_ratio_values_carry_a_unit(board: Json) -> None:
    checked = 0
    for panel in content_panels(board):
        for target in panel["targets"]:
            expr = target["expr"]
            shows_time = "time()" in expr or "_seconds" in expr
            shows_ratio = expr.startswith("avg(") or "process_cpu_seconds_total" in expr
            units = units_of(panel, target["refId"])
            if shows_ratio:
                assert units & RATIO_UNITS, f"{panel['title']}: a ratio without a ratio unit"
            elif shows_time:
                assert units & TIME_UNITS, f"{panel['title']}: a time without a time unit"
            checked += shows_time or shows_ratio
    assert checked, "no time or ratio panel found: the heuristic is broken"


@pytest.mark.parametrize("board", boards())
def test_stats_show_zero_or_say_what_no_data_means(board: Json) -> None:
    for panel in content_panels(board):
        if panel["type"] != "stat":
            continue
        says_no_data = "noValue" in panel["fieldConfig"]["defaults"]
        for target in panel["targets"]:
            assert says_no_data or target["expr"].endswith(" or vector(0)"), panel["title"]


@pytest.mark.parametrize("board", boards())
def test_vector_zero_is_the_outermost_fallback(board: Json) -> None:
    # count(x or vector(0)) would count the fallback itself: 1 with no problems at all.
    for title, expr in iter_queries(board):
        if "vector(0)" in expr:
            assert expr.count("vector(0)") == 1 and expr.endswith(" or vector(0)"), title


@pytest.mark.parametrize("board", boards())
def test_one_and_zero_are_spelled_out_in_words(board: Json) -> None:
    for panel in content_panels(board):
        if panel["type"] != "state-timeline":
            continue
        mappings = panel["fieldConfig"]["defaults"]["mappings"]
        words = {o["text"] for m in mappings for o in m["options"].values()}
        assert len(words) == 2 and any(w.isupper() for w in words), panel["title"]


@pytest.mark.parametrize("board", boards())
def test_table_columns_refer_to_existing_queries(board: Json) -> None:
    for panel in content_panels(board):
        ref_ids = {target["refId"] for target in panel["targets"]}
        for transformation in panel.get("transformations", []):
            for name in json.dumps(transformation["options"]).split('"'):
                if name.startswith("Value #"):
                    assert name.removeprefix("Value #") in ref_ids, f"{panel['title']}: {name}"


@pytest.mark.parametrize("board", boards())
def test_column_overrides_name_columns_as_organize_renamed_them(board: Json) -> None:
    # Overrides apply after transformations: matching a raw label name would silently miss.
    for panel in content_panels(board):
        for transformation in panel.get("transformations", []):
            if transformation["id"] != "organize":
                continue
            shown = set(transformation["options"]["renameByName"].values())
            for item in panel["fieldConfig"]["overrides"]:
                assert item["matcher"]["options"] in shown, f"{panel['title']}: {item['matcher']}"


def test_the_fleet_table_merges_queries_that_share_the_configuration_key() -> None:
    (table,) = [p for p in content_panels(BOARDS["akv-fleet.json"]) if p["type"] == "table"]
    assert [t["id"] for t in table["transformations"]] == ["merge", "organize"]
    for target in table["targets"]:
        assert target["instant"] and target["format"] == "table"
        assert "(cluster, svm, uuid" in target["expr"], target["refId"]


# --- variables ----------------------------------------------------------------------------


def variables(board: Json) -> dict[str, Json]:
    return {variable["name"]: variable for variable in board["templating"]["list"]}


@pytest.mark.parametrize("board", boards())
def test_label_variables_are_multi_value_with_all_meaning_any(board: Json) -> None:
    # The exporter puts configured labels (datacenter) on its own per-cluster series too.
    expected = {"datasource", "cluster", "datacenter"}
    if board["uid"] != "akv-exporter":
        expected |= {"svm"}
    found = variables(board)
    assert set(found) == expected
    for name in expected - {"datasource"}:
        variable = found[name]
        assert variable["type"] == "query"
        assert variable["query"].startswith("label_values(")
        assert variable["multi"] and variable["includeAll"]
        assert variable["allValue"] == ".*"


@pytest.mark.parametrize("board", boards())
def test_every_variable_a_query_uses_is_defined(board: Json) -> None:
    values = {name: name for name in variables(board)} | {b: b for b in GRAFANA_BUILTINS}
    for title, expr in iter_queries(board):
        try:
            substitute_variables(expr, values)
        except KeyError as error:
            pytest.fail(f"{title}: {error}")


def test_label_variables_filter_only_with_regex_matchers() -> None:
    # `=~".*"` matches a series without the label; `="..."` would drop clusters that lack it.
    for board in BOARDS.values():
        for title, expr in iter_queries(board):
            for name in ("cluster", "svm", "datacenter"):
                assert f'{name}="$' not in expr, title


# --- substitute_variables -------------------------------------------------------------------


def test_substitute_variables_replaces_every_spelling() -> None:
    expr = (
        'sum(rate(x{cluster=~"$cluster", svm=~"${svm}", datacenter=~"${datacenter:regex}"}'
        "[$__rate_interval])) + sum(increase(y[$__range])) + z[$__interval]"
    )
    assert substitute_variables(expr, DEFAULT_VARIABLES) == (
        'sum(rate(x{cluster=~".*", svm=~".*", datacenter=~".*"}[5m]))'
        " + sum(increase(y[1h])) + z[1m]"
    )


def test_substitute_variables_tells_rate_interval_from_range_and_interval() -> None:
    values = {"__rate_interval": "2m", "__interval": "30s", "__range": "6h"}
    assert substitute_variables("$__interval $__rate_interval $__range", values) == "30s 2m 6h"


def test_substitute_variables_names_a_variable_without_a_value() -> None:
    with pytest.raises(KeyError, match=r"\$node"):
        substitute_variables('x{node=~"$node"}', DEFAULT_VARIABLES)


def test_substitute_variables_leaves_plain_promql_alone() -> None:
    expr = 'count(up{job="akv-exporter"} == 0) or vector(0)'
    assert substitute_variables(expr, {}) == expr


def test_iter_queries_includes_collapsed_rows_and_variable_selectors() -> None:
    titles = [title for title, _ in iter_queries(BOARDS["akv-cluster.json"])]
    assert "AKV configuration details" in titles  # inside the collapsed row
    assert "variable $svm" in titles


# --- provisioning -------------------------------------------------------------------------


def test_datasource_provisioning_declares_a_prometheus_datasource() -> None:
    document = yaml.safe_load((PROVISIONING / "datasources" / "akv-exporter.yml").read_text())
    assert document["apiVersion"] == 1
    (datasource,) = document["datasources"]
    assert datasource["type"] == "prometheus"
    assert datasource["url"].startswith("http")


def test_dashboard_provisioning_reads_the_documented_directory() -> None:
    document = yaml.safe_load((PROVISIONING / "dashboards" / "akv-exporter.yml").read_text())
    assert document["apiVersion"] == 1
    (provider,) = document["providers"]
    assert provider["type"] == "file"
    path = provider["options"]["path"]
    assert path.startswith("/")
    docs = (ROOT / "docs" / "dashboards.md").read_text(encoding="utf-8")
    assert path in docs, "docs/dashboards.md must say where to mount the JSON"
