"""An AKV fleet reads byte for byte as it did: /metrics, /api/v1/status, the page and `check`.

The key-manager seam moved AKV from hand-wired families, words and wording onto one provider
declaration. Whatever moves behind it, an AKV-only fleet's every surface must stay as users,
dashboards, alert rules and Nagios set-ups know it. The fleet is simulated across releases
(9.8's integer codes, 9.13's unreachable vault and EKMIP node, 9.14's inactive configuration,
a 9.17.1 policy that keeps volumes online) and polled twice on a fixed clock; what a run cannot
fix (poll durations, loopback ports, the exporter's start) is masked before comparing.

A change to these surfaces that is meant is regenerated with ``UPDATE_GOLDEN=1`` and shows as
a diff of tests/golden/akv-fleet.* in its commit.
"""

from __future__ import annotations

import json
import os
import platform
import re
from pathlib import Path

import pytest

from akv_exporter import __version__, check
from akv_exporter.assessment_json import to_json
from akv_exporter.web.status_page import render_page
from tests.helpers.exporter import Clock, exporter_with_clock
from tests.helpers.fleet import simulated_fleet

GOLDEN = Path(__file__).parent / "golden"
NOW = 1_700_000_000.0

HEALTHY = {"azure_reachability": {"reachable": True}, "state": {"available": True}}
SCENARIO = {
    "defaults": {"username": "admin", "password": "netapp1!"},
    "clusters": [
        {  # integer codes, state.cluster_state, a KEK unavailable
            "name": "g-98",
            "version": "9.8",
            "nodes": 2,
            "akvs": [{"svm": "svm_files", "state": {"available": False}}],
        },
        {
            "name": "g-9101",
            "version": "9.10.1",
            "nodes": 2,
            "akvs": [{"svm": "svm_data", **HEALTHY}, {"scope": "cluster", **HEALTHY}],
        },
        {  # the vault unreachable, one node's EKMIP server down
            "name": "g-9131",
            "version": "9.13.1",
            "nodes": ["g-9131-01", "g-9131-02"],
            "akvs": [
                {
                    "svm": "svm_db",
                    "azure_reachability": {"reachable": False},
                    "ekmip_reachability": {"g-9131-02": {"reachable": False}},
                }
            ],
        },
        {  # a second, inactive configuration (9.14+)
            "name": "g-9141",
            "version": "9.14.1",
            "nodes": 4,
            "akvs": [
                {"svm": "svm_nfs", **HEALTHY},
                {"svm": "svm_nfs", "enabled": False, "configuration": "migration"},
            ],
        },
        {  # ONTAP's policy keeps volumes online; a known volume count
            "name": "g-9171",
            "version": "9.17.1",
            "nodes": 2,
            "akvs": [{"svm": "svm_k8s", "azure_reachability": {"reachable": False}}],
            "key_manager_config": {
                "health_monitor_polling_interval": 20,
                "health_monitor_policy": {"akv": {"manage_volume_offline": False}},
            },
            "volumes": {"svm_k8s": {"count": 12, "encrypted": 10}},
        },
    ],
}

# What one run cannot fix, masked on every surface.
_METRIC_MASKS = (
    re.compile(r"^(akv_exporter_cluster_poll_duration_seconds\{[^}]*\}) .*$", re.M),
    re.compile(r"^(akv_exporter_cluster_last_success_timestamp_seconds\{[^}]*\}) .*$", re.M),
    # The simulator dates its EMS events by the wall clock.
    re.compile(r"^(ontap_ems_event_last_timestamp_seconds\{[^}]*\}) .*$", re.M),
    re.compile(r"^(akv_exporter_config_last_reload_success_timestamp_seconds) .*$", re.M),
)
_JSON_MASKED = {"duration", "last_success", "address", "started_at", "url", "time"}


def _mask_metrics(text: str) -> str:
    for pattern in _METRIC_MASKS:
        text = pattern.sub(r"\1 <masked>", text)
    return text


def _mask_json(value):
    if isinstance(value, dict):
        return {k: "<masked>" if k in _JSON_MASKED else _mask_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask_json(v) for v in value]
    return value


def _mask_text(text: str, ports: list[str]) -> str:
    for port in ports:
        # Only as a port (":37551"): the same digits inside ONTAP's code 65537551 are the code.
        text = re.sub(rf":{port}\b", ":<port>", text)
    # Durations on the page ("10 ms"), to the run.
    text = re.sub(r"\d+\.\d+ ?s\b", "<duration>", text)
    text = re.sub(r"\b\d+ ms\b", "<duration>", text)
    return text


async def _surfaces(tmp_path: Path) -> dict[str, str]:
    async with simulated_fleet(tmp_path, SCENARIO) as (simulator, config):
        ports = [c.url.rsplit(":", 1)[1] for c in simulator.clusters]
        clock = Clock(NOW)
        exporter = exporter_with_clock(config, clock)
        try:
            await exporter.poll_all()  # the first poll: fields=**, then the slow polls
            clock.now += 60
            await exporter.poll_all()  # the release's own fields
            fleet = exporter.status(now=clock.now)
            metrics = exporter.scrape().decode()
            document = _mask_json(to_json(fleet))
            lines = [check.status_line(fleet.summary), *check.table(fleet)]
            page = render_page(fleet, refresh=0)
        finally:
            await exporter.stop()
        surfaces = {
            "metrics.txt": _mask_metrics(metrics),
            "status.json": json.dumps(document, indent=1, sort_keys=True) + "\n",
            "check.txt": "\n".join(lines) + f"\nexit {check.exit_code(fleet.summary)}\n",
            "page.html": _mask_text(page, ports),
        }
    # The release number and Python's are not the seam's to keep.
    return {
        name: text.replace(__version__, "<version>").replace(
            f'python_version="{platform.python_version()}"', 'python_version="<python>"'
        )
        for name, text in surfaces.items()
    }


async def test_an_akv_fleet_reads_as_before_on_every_surface(tmp_path: Path):
    surfaces = await _surfaces(tmp_path)
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.mkdir(exist_ok=True)
        for name, text in surfaces.items():
            (GOLDEN / f"akv-fleet.{name}").write_text(text, encoding="utf-8")
        pytest.skip("golden files written (UPDATE_GOLDEN set)")
    for name, text in surfaces.items():
        expected = (GOLDEN / f"akv-fleet.{name}").read_text(encoding="utf-8")
        assert text == expected, f"tests/golden/akv-fleet.{name} differs"
