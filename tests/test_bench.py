"""`make bench` keeps working: a tiny fleet through every phase writes a report of the right shape.

Only the shape is checked (which rows, which baselines): speed is what the report says, never
what a test asserts.
"""

from __future__ import annotations

import re

import pytest

from bench.__main__ import main
from bench.fleet import SimulatorProcess

pytestmark = pytest.mark.slow  # processes, fleets, real time: not in make check


def test_bench_writes_a_report_with_every_goal_and_baseline(tmp_path, capsys):
    argv = ["--sizes", "3,4", "--latency", "0.05", "--rounds", "2", "--scrapes", "3"]
    assert main(argv, results=tmp_path) == 0
    report = (tmp_path / "report.md").read_text()
    assert report in capsys.readouterr().out
    for size in ("3", "4"):
        rows = [line for line in report.splitlines() if line.startswith(f"| {size} |")]
        assert [row.split(" | ")[1].split(" (")[0] for row in rows] == [
            "resident memory at the first full view",
            "first full view",
            "CPU per poll / bare aiohttp loop",
        ], rows
        assert "3/3 up" in report or size == "4"
    # Each goal row states its measured figure, the goal and whether it was met.
    for row in re.findall(r"^\| \d+ \| .*$", report, re.MULTILINE):
        assert re.search(r"\| (yes|\*\*no\*\*|-) \|$", row), row
    assert "netapp-ontap + threads" in report  # at the first size only
    assert report.count("netapp-ontap + threads") == 1
    assert "prometheus-client collector" in report
    assert "Load average" in report
    assert report.count("- Key managers: ") == 2  # the default fleet is the mixed one


async def test_bench_fleet_is_mixed_unless_asked_for_akv_only():
    # Seed 7 (the bench's): 40 clusters include some with another key manager.
    mixed, akv_only = SimulatorProcess(40, providers="mixed"), SimulatorProcess(40, providers="akv")
    try:
        for simulator in (mixed, akv_only):
            await simulator.start()
        assert mixed.mix().startswith("AKV on every cluster; ")
        assert any(cluster.others for cluster in mixed.clusters)
        assert akv_only.mix() == "AKV only"
        assert [c.name for c in akv_only.clusters] == [c.name for c in mixed.clusters]
    finally:
        mixed.stop()
        akv_only.stop()
