"""`make bench` keeps working: a tiny run writes a report with both baselines."""

from __future__ import annotations

from bench.__main__ import main


def test_bench_writes_a_report_with_ratios(tmp_path, capsys):
    assert main(["--clusters", "3", "--rounds", "2", "--scrapes", "2"], results=tmp_path) == 0
    report = (tmp_path / "report.md").read_text()
    assert "netapp-ontap + threads" in report
    assert "prometheus-client collector" in report
    assert report.count("x |") == 3
    assert report in capsys.readouterr().out
