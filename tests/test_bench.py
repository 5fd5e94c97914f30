"""`make bench` keeps working: a tiny fleet through every phase writes a report of the right shape.

Only the shape is checked (which rows, which baselines): speed is what the report says, never
what a test asserts.
"""

from __future__ import annotations

import re

from bench.__main__ import main


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
