"""The fleet assessment, GET /api/v1/status against its schema, and the status page's HTML."""

from __future__ import annotations

import asyncio
import html
import json
import re
from html.parser import HTMLParser
from urllib.parse import urljoin

import aiohttp
import pytest
from aiohttp import web

from akv_exporter.assessment import ExporterInfo
from akv_exporter.assessment_json import to_json
from akv_exporter.check import exit_code, status_line, table
from akv_exporter.fleet_assessment import assess, assess_cluster
from akv_exporter.ontap import akv
from akv_exporter.ontap.cluster import ClusterIdentity
from akv_exporter.ontap.key_manager_endpoint import Check, parse_records
from akv_exporter.ontap.volumes import parse_volumes
from akv_exporter.snapshot import BlastRadius, ClusterSnapshot, EventCount, PollOutcome
from akv_exporter.web.status_page import render_page
from tests.helpers.configs import CANARY, config_for
from tests.helpers.exporter import closed_port_url, started
from tests.helpers.exposition import validate
from tests.helpers.ontap import akv_record, volume

INFO = ExporterInfo("0.0.0", 1_700_000_000.0, True, None)
NOW = 1_700_000_100.0


def snapshot(name: str, records: list, *, up: bool = True, **overrides) -> ClusterSnapshot:
    outcome = PollOutcome(NOW - 1, 0.25) if up else PollOutcome(NOW - 1, 2.0, "timeout", "x: no")
    fields = {
        "name": name,
        "address": f"{name}.example.com",
        "labels": (("datacenter", "dc1"),),
        "up": up,
        "identity": ClusterIdentity(name, "uuid-" + name, "9.14.1", "NetApp Release 9.14.1"),
        "key_managers": parse_records(akv.ENDPOINT, records).key_managers,
        "key_managers_as_of": NOW - 1,
        "last_success": NOW - 1 if up else None,
        "last": outcome,
        "history": (PollOutcome(NOW - 61, 0.3), outcome),
    }
    fields.update(overrides)
    return ClusterSnapshot(**fields)


class Elements(HTMLParser):
    """Collects the start tags of a page: (tag, attributes) in document order."""

    def __init__(self, html: str):
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def clusters(self) -> list[tuple[str, str | None]]:
        """Return (tag, data-name) of every filterable cluster element, in order."""
        return [
            (tag, attrs.get("data-name"))
            for tag, attrs in self.tags
            if "cluster" in (attrs.get("class") or "").split()
        ]


# --- the assessment ------------------------------------------------------------------------------


def test_inactive_configuration_is_inactive_never_healthy():
    view = assess_cluster(snapshot("c1", [akv_record(enabled=False)]), NOW)
    assert view.state == "inactive"
    assert view.key_managers[0].status.service is None
    assert view.problems == ()  # informational: a note, not a problem
    assert view.notes == (
        "svm vs1: inactive configuration 'default' (enabled false; NetApp's REST reference: "
        "an inactive AKV configuration has no state or reachability)",
    )


def test_an_inactive_second_configuration_never_makes_its_cluster_need_attention():
    # ONTAP 9.14+: an SVM's active configuration beside an inactive one (key migration).
    records = [akv_record("u1"), akv_record("u2", enabled=False)]
    fleet = assess([snapshot("c1", records), snapshot("c2", [akv_record("u3")])], INFO, NOW)
    c1 = fleet.clusters[0]
    assert (c1.state, c1.problems, len(c1.notes)) == ("healthy", (), 1)
    assert [view.state for view in c1.key_managers] == ["healthy", "inactive"]
    assert fleet.summary.status == "ok" and fleet.summary.configurations_inactive == 1
    document = to_json(fleet)
    assert document["clusters"][0]["state"] == "healthy"
    assert document["clusters"][0]["problems"] == []
    assert document["clusters"][0]["notes"] == list(c1.notes)
    page = render_page(fleet)
    attention, healthy = page.split('<section id="healthy">')
    assert "Needs attention (0)" in attention and 'data-name="c1"' not in attention
    assert 'data-name="c1"' in healthy and "2 configurations (1 inactive)" in healthy
    assert "<h2>Healthy (2)</h2>" in healthy
    lines = table(fleet)
    assert "Problems:" not in lines
    assert lines[-2:] == ["Notes:", f"c1: {c1.notes[0]}"]


def test_a_cluster_whose_only_configuration_is_inactive_is_listed_as_inactive_not_a_problem():
    fleet = assess([snapshot("c1", [akv_record(enabled=False)])], INFO, NOW)
    page = render_page(fleet)
    attention, healthy = page.split('<section id="healthy">')
    assert 'data-name="c1"' not in attention
    assert "<h2>Healthy or inactive (1)</h2>" in healthy
    assert '<span class="state unknown">INACTIVE</span>' in healthy


def test_configuration_without_advanced_fields_is_unknown():
    record = akv_record()
    del record["azure_reachability"], record["ekmip_reachability"]
    view = assess_cluster(snapshot("c1", [record]), NOW)
    assert view.state == "unknown"
    assert view.problems == (
        "svm vs1: state unknown (ONTAP did not report azure_reachability, ekmip_reachability)",
    )


def test_a_down_cluster_is_down_whatever_its_last_known_configurations_say():
    view = assess_cluster(snapshot("c1", [akv_record()], up=False), NOW)
    assert view.state == "down"
    assert view.problems[0] == "cluster not answering (timeout): x: no"


def test_unreachable_configuration_carries_its_volumes_offline_deadline():
    records = [akv_record("u1", reachable=False)]
    view = assess_cluster(snapshot("c1", records, unreachable_since={"u1": NOW - 600}), NOW)
    assert view.state == "azure_unreachable"
    assert (
        view.key_managers[0].volumes_offline_deadline
        == NOW - 600 + akv.PROVIDER.volumes_offline_after
    )


def test_summary_verdict_puts_critical_before_unknown_before_warning():
    def status_of(*snaps):
        return assess(snaps, INFO, NOW).summary.status

    kek = snapshot("k", [akv_record(kek=False)])
    down = snapshot("d", [], up=False)
    unreachable = snapshot("u", [akv_record(reachable=False)])
    ekmip = snapshot("e", [akv_record(ekmip_down=("n1",))])
    healthy = snapshot("h", [akv_record(), akv_record("u2", enabled=False)])
    assert status_of(healthy) == "ok"
    assert status_of(healthy, kek) == "warning"
    assert status_of(kek, down) == "unknown"
    assert status_of(kek, down, unreachable) == "critical"
    assert status_of(healthy, ekmip) == "critical"


def test_problem_clusters_sort_first_by_severity():
    fleet = assess(
        [
            snapshot("a-healthy", [akv_record()]),
            snapshot("b-kek", [akv_record(kek=False)]),
            snapshot("c-ekmip", [akv_record(ekmip_down=("n2",))]),
            snapshot("d-azure", [akv_record(reachable=False)]),
            snapshot("e-down", [], up=False),
        ],
        INFO,
        NOW,
    )
    order = [c.snapshot.name for c in fleet.by_urgency()]
    assert order == ["e-down", "d-azure", "c-ekmip", "b-kek", "a-healthy"]
    page = Elements(render_page(fleet))
    assert [name for _, name in page.clusters()] == order
    assert page.clusters()[-1][0] == "tr"  # the healthy cluster is a compact row


def test_volumes_are_at_stake_only_where_the_summary_counts_them():
    # vs1's configuration cannot reach Azure: its 3 volumes are at stake. vs2's reads healthy:
    # its 2 volumes are counted, never called "at stake", on the page, in the JSON or the summary.
    volumes = [volume("vs1", index=i) for i in range(3)] + [volume("vs2", index=i) for i in (3, 4)]
    records = [akv_record("u1", "vs1", reachable=False), akv_record("u2", "vs2")]
    blast = BlastRadius(volumes=parse_volumes(volumes), volumes_as_of=NOW - 1)
    fleet = assess([snapshot("c1", records, blast=blast)], INFO, NOW)
    assert fleet.summary.volumes_at_stake == 3
    broken, healthy = to_json(fleet)["clusters"][0]["akvs"]
    assert (broken["volumes_at_stake"], broken["encrypted_volumes"]) == (3, 3)
    assert (healthy["volumes_at_stake"], healthy["encrypted_volumes"]) == (0, 2)
    assert healthy["svms"] == [{"svm": "vs2", "encrypted_volumes": 2, "offline_volumes": 0}]
    assert healthy["svms_at_stake"] == [] and broken["svms_at_stake"] == broken["svms"]
    per_configuration = sum(akv["volumes_at_stake"] for akv in (broken, healthy))
    assert per_configuration == to_json(fleet)["summary"]["volumes_at_stake"]
    page = " ".join(render_page(fleet).split())
    assert '<span class="bad">3 encrypted volumes at stake in SVM vs1</span>' in page
    assert "2 encrypted volumes in SVM vs2" in page
    assert page.count(" at stake in SVM ") == 1


def key_expired(ago: float, svm: str = "vs1") -> BlastRadius:
    """ONTAP's log with one ekmip.akv.keyExpired for ``svm`` ``ago`` seconds before NOW."""
    return BlastRadius(events=(EventCount("n1", "ekmip.akv.keyExpired", 0, NOW - ago, svm),))


def test_a_recent_key_expired_event_is_a_warning_on_every_surface():
    # NetApp's EMS reference: keyExpired (ERROR), no interruption to data availability. Recent
    # is the alert OntapAkvKeyExpired's window: ONTAP's event time within 24 hours.
    fleet = assess(
        [
            snapshot("c1", [akv_record()], blast=key_expired(2 * 3600)),
            snapshot("c2", [akv_record()], blast=key_expired(25 * 3600)),  # too old
        ],
        INFO,
        NOW,
    )
    c1, c2 = fleet.clusters
    # As the alert, only while the cluster answers: a down cluster is down, no more.
    c3 = assess_cluster(snapshot("c3", [akv_record()], blast=key_expired(60), up=False), NOW)
    assert (c1.state, c2.state, c3.state) == ("key_expired", "healthy", "down")
    assert c1.problems == (
        "ONTAP logged ekmip.akv.keyExpired for SVM vs1 at 2023-11-14 20:15:00 UTC (node n1): the "
        "current version of the Azure Key Vault key (vault https://vault1.vault.azure.net/, key "
        "https://vault1.vault.azure.net/keys/key1/0123456789abcdef0123456789abcdef) has expired; "
        "NetApp's EMS reference: ONTAP still unwraps the KEK with it, no interruption to data "
        "availability; update the key to an active, non-expired version in Azure Key Vault "
        "(ONTAP logs ekmip.akv.keyVersionChanged when it has re-wrapped the KEK)",
    )
    assert not any("keyExpired" in problem for problem in c3.problems)
    summary = fleet.summary
    assert (summary.status, summary.clusters_key_expired) == ("warning", 1)
    document = to_json(fleet)
    validate(document)
    assert document["clusters"][0]["key_expired"] == {
        "event": "ekmip.akv.keyExpired",
        "node": "n1",
        "svm": "vs1",
        "time": NOW - 7200,
    }
    assert document["clusters"][1]["key_expired"] is None
    attention, healthy = render_page(fleet).split('<section id="healthy">')
    assert 'data-name="c1"' in attention and 'data-name="c1"' not in healthy
    assert '<span class="state warn">KEY VERSION EXPIRED</span> c1' in attention
    assert "ONTAP logged ekmip.akv.keyExpired for SVM vs1 at 2023-11-14 20:15:00 UTC" in attention
    assert 'data-name="c2"' in healthy
    assert exit_code(summary) == 1
    assert "1 cluster logged ekmip.akv.keyExpired in the last 24 h" in status_line(summary)
    assert "c1: ONTAP logged ekmip.akv.keyExpired" in "\n".join(table(fleet))


def events(*entries: tuple[str, float, str]) -> BlastRadius:
    """ONTAP's log: (event name, seconds before NOW, SVM) each, on node n1."""
    return BlastRadius(
        events=tuple(EventCount("n1", name, 0, NOW - ago, svm) for name, ago, svm in entries)
    )


def test_a_later_key_version_change_for_the_same_svm_ends_key_expired():
    # NetApp: keyVersionChanged says the KEK was re-wrapped with the current key version. The
    # renewal ends the expiry on every surface; another SVM's renewal does not.
    renewed = events(
        ("ekmip.akv.keyExpired", 7200, "vs1"), ("ekmip.akv.keyVersionChanged", 3600, "vs1")
    )
    elsewhere = events(
        ("ekmip.akv.keyExpired", 7200, "vs1"), ("ekmip.akv.keyVersionChanged", 3600, "vs2")
    )
    expired_again = events(
        ("ekmip.akv.keyVersionChanged", 7200, "vs1"), ("ekmip.akv.keyExpired", 3600, "vs1")
    )
    fleet = assess(
        [
            snapshot("renewed", [akv_record()], blast=renewed),
            snapshot("elsewhere", [akv_record()], blast=elsewhere),
            snapshot("again", [akv_record()], blast=expired_again),
        ],
        INFO,
        NOW,
    )
    assert [c.state for c in fleet.clusters] == ["healthy", "key_expired", "key_expired"]
    assert fleet.clusters[0].key_expired is None
    assert not any("keyExpired" in problem for problem in fleet.clusters[0].problems)
    assert fleet.summary.clusters_key_expired == 2
    only_renewed = assess([snapshot("renewed", [akv_record()], blast=renewed)], INFO, NOW)
    assert exit_code(only_renewed.summary) == 0
    assert to_json(fleet)["clusters"][0]["key_expired"] is None


def test_key_expired_names_the_vault_and_key_of_its_own_svm_only():
    # Two SVMs with their own vaults: svm_vdi's expiry must never name svm_db's vault or key.
    db, vdi = akv_record("u1", "svm_db"), akv_record("u2", "svm_vdi")
    vdi["name"] = "https://kv-vdi.vault.azure.net/"
    vdi["key_id"] = "https://kv-vdi.vault.azure.net/keys/vdi/00112233445566778899aabbccddeeff"
    view = assess_cluster(snapshot("c1", [db, vdi], blast=key_expired(600, svm="svm_vdi")), NOW)
    (problem,) = view.problems
    assert "for SVM svm_vdi" in problem
    vault = "(vault https://kv-vdi.vault.azure.net/, key https://kv-vdi.vault.azure.net/keys/vdi/"
    assert vault in problem
    assert "vault1" not in problem
    # An SVM the exporter has no configuration for: the vault is not guessed.
    view = assess_cluster(snapshot("c1", [db, vdi], blast=key_expired(600, svm="svm_x")), NOW)
    (problem,) = view.problems
    assert "for SVM svm_x" in problem and "(vault" not in problem


def offline_in_vs1(*entries: tuple[str, float, str]) -> ClusterSnapshot:
    """A healthy configuration of vs1 with 1 of 2 encrypted volumes offline, and ONTAP's log."""
    blast = BlastRadius(
        volumes=parse_volumes([volume("vs1", "offline"), volume("vs1", index=1)]),
        volumes_as_of=NOW - 1,
        events=events(*entries).events,
    )
    return snapshot("c1", [akv_record()], blast=blast)


def test_offline_volumes_blame_akv_only_when_ontaps_vol_offline_is_current():
    # An administrator's offline volume, 15 minutes after a healed outage: ONTAP's volOffline is
    # older than its volOnline, so nothing ONTAP said ties the volume to AKV. A warning (check
    # exit 1), never "for lack of Azure Key Vault".
    healed = offline_in_vs1(
        ("ekmip.akv.volOffline", 3600, "vs1"), ("ekmip.akv.volOnline", 900, "vs1")
    )
    other_svm = offline_in_vs1(("ekmip.akv.volOffline", 600, "vs2"))
    for snap in (healed, other_svm, offline_in_vs1()):
        fleet = assess([snap], INFO, NOW)
        (cluster,) = fleet.clusters
        assert cluster.state == "volumes_offline_other"
        assert fleet.summary.status == "warning" and exit_code(fleet.summary) == 1
        (problem,) = cluster.problems
        assert problem == (
            "svm vs1: 1 of 2 encrypted volumes offline in SVM vs1 (ONTAP logged no current "
            "ekmip.akv.volOffline for it: no AKV cause reported)"
        )
        assert (fleet.summary.volumes_offline, fleet.summary.volumes_offline_for_akv) == (1, 0)
        line = status_line(fleet.summary)
        assert "1 encrypted volume offline (no AKV cause from ONTAP)" in line
        validate(to_json(fleet))
        assert "VOLUMES OFFLINE" in render_page(fleet)
    # ONTAP's volOffline for vs1 after its last volOnline and available: critical, with the time.
    acted = offline_in_vs1(
        ("ekmip.akv.volOnline", 7200, "vs1"),
        ("ekmip.akv.available", 7000, "vs1"),
        ("ekmip.akv.volOffline", 600, "vs1"),
    )
    fleet = assess([acted], INFO, NOW)
    assert fleet.clusters[0].state == "volumes_offline"
    assert fleet.summary.status == "critical" and exit_code(fleet.summary) == 2
    assert fleet.clusters[0].problems == (
        "svm vs1: 1 of 2 encrypted volumes offline in SVM vs1 (ONTAP logged "
        "ekmip.akv.volOffline for it at 2023-11-14 22:05:00 UTC)",
    )
    assert fleet.summary.volumes_offline_for_akv == 1
    assert "1 encrypted volume offline (ONTAP logged ekmip.akv.volOffline)" in status_line(
        fleet.summary
    )


def test_key_expired_never_hides_a_worse_state_or_the_verdict_precedence():
    unreachable = snapshot("c1", [akv_record(reachable=False)], blast=key_expired(60))
    fleet = assess([unreachable], INFO, NOW)
    assert fleet.clusters[0].state == "azure_unreachable"
    assert fleet.summary.status == "critical"
    assert any("keyExpired" in problem for problem in fleet.clusters[0].problems)


# --- the page ------------------------------------------------------------------------------------


def test_page_escapes_cluster_names_labels_messages_and_the_filter_text():
    record = akv_record(reachable=False)
    record["azure_reachability"]["message"] = '<img src=x onerror="alert(1)"> timed out'
    evil = snapshot(
        "<script>alert('name')</script>",
        [record],
        labels=(("owner", '"><script>alert(2)</script>'),),
    )
    page = render_page(assess([evil], INFO, NOW), query='"><script>alert(3)</script>')
    assert "<script>alert" not in page
    assert "<img src=x" not in page
    assert "&lt;script&gt;alert(&#39;name&#39;)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt; timed out" in page
    assert 'value="&#34;&gt;&lt;script&gt;alert(3)&lt;/script&gt;"' in page
    assert page.count("<script") == 1  # the page's own, a file


def test_page_has_no_inline_script_or_style_so_a_strict_csp_holds():
    page = render_page(assess([snapshot("c1", [akv_record(reachable=False)])], INFO, NOW))
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", page, flags=re.S)
    assert scripts == [(' src="static/status.js?v=0.0.0" defer', "")]
    assert "<style" not in page and " style=" not in page
    assert not re.search(r"\son[a-z]+=", page)  # no inline event handlers
    assert '<link rel="stylesheet" href="static/status.css?v=0.0.0">' in page


def test_states_are_written_in_words_next_to_their_colour():
    page = render_page(
        assess(
            [
                snapshot("c1", [akv_record(reachable=False, ekmip_down=("n2",))]),
                snapshot("c2", [akv_record(enabled=False)]),
            ],
            INFO,
            NOW,
        )
    )
    badges = re.findall(r'<span class="state (\w+)">([^<]+)</span>', page)
    assert ("bad", "UNREACHABLE") in badges
    assert ("bad", "AZURE UNREACHABLE") in badges
    assert ("unknown", "INACTIVE") in badges
    assert ("unknown", "UNKNOWN") in badges  # the inactive configuration's Azure state
    assert ("ok", "HEALTHY") not in badges
    assert all(word.strip() for _, word in badges)


@pytest.mark.slow
def test_a_thousand_clusters_render_as_page_and_json():
    nodes = ("n1", "n2", "n3", "n4")
    snaps = []
    for index in range(1000):
        records = [
            akv_record(f"{index}-a", f"vs{index}", nodes),
            akv_record(f"{index}-b", None, nodes, kek=index % 97 != 0),
        ]
        if index % 250 == 0:
            records[0] = akv_record(f"{index}-a", f"vs{index}", nodes, reachable=False)
        history = tuple(PollOutcome(NOW - 60 * k, 0.2) for k in range(20, 0, -1))
        snaps.append(
            snapshot(f"cluster-{index:04d}", records, up=index % 333 != 0, history=history)
        )
    fleet = assess(snaps, INFO, NOW)
    summary = fleet.summary
    assert (summary.clusters, summary.configurations) == (1000, 2000)
    assert summary.clusters_down == 4  # 0, 333, 666, 999
    assert summary.configurations_unreachable == 4  # 0, 250, 500, 750
    page = Elements(render_page(fleet))
    clusters = page.clusters()
    assert len(clusters) == 1000
    problems = [name for tag, name in clusters if tag == "article"]
    assert problems[:4] == [f"cluster-{i:04d}" for i in (0, 333, 666, 999)]
    assert problems[4:7] == [f"cluster-{i:04d}" for i in (250, 500, 750)]
    assert len(problems) == 4 + 3 + sum(1 for i in range(1000) if i % 97 == 0 and i % 333)
    document = to_json(fleet)
    validate(document)
    assert len(document["clusters"]) == 1000
    assert len(json.loads(json.dumps(document))["clusters"][999]["history"]) == 20


# --- over HTTP -----------------------------------------------------------------------------------


async def test_status_api_matches_its_schema_and_never_shows_secrets(make_ontap, tmp_path):
    healthy, broken, inactive = await make_ontap(), await make_ontap(), await make_ontap()
    broken.records = [akv_record("u1", reachable=False), akv_record("u2", None, kek=False)]
    inactive.records = [akv_record(enabled=False)]
    config = config_for(tmp_path, healthy.url, broken.url, inactive.url, closed_port_url())
    exporter, runner, base = await started(config)
    await exporter.poll_all()
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base}/api/v1/status") as response:
            assert response.status == 200
            assert response.content_type == "application/json"
            text = await response.text()
        async with http.get(f"{base}/") as response:
            assert response.status == 200
            assert response.content_type == "text/html"
            page = await response.text()
    await runner.cleanup()
    await exporter.stop()
    assert CANARY not in text
    assert CANARY not in page
    document = json.loads(text)
    validate(document)
    assert document["summary"] == {
        "status": "critical",
        "clusters": 4,
        "clusters_up": 3,
        "clusters_down": 1,
        "clusters_pending": 0,
        "configurations": 4,
        "configurations_unreachable": 1,
        "configurations_ekmip_unreachable": 0,
        "configurations_kek_unavailable": 1,
        "configurations_unknown": 0,
        "configurations_inactive": 1,
        "ekmip_nodes_down": 0,
        "clusters_akv_error": 0,
        "clusters_key_expired": 0,
        "volumes_offline": 0,
        "volumes_offline_for_akv": 0,
        "volumes_at_stake": 0,
        "key_servers_down": 0,
        "nodes_without_key_server": 0,
        "configurations_action_needed": 0,
        "key_stores_blocked": 0,
    }
    by_name = {cluster["name"]: cluster for cluster in document["clusters"]}
    assert [c["name"] for c in document["clusters"]] == ["c0", "c1", "c2", "c3"]
    assert by_name["c3"]["state"] == "down"
    assert by_name["c3"]["last_poll"]["reason"] == "connect"
    assert by_name["c3"]["ontap"] is None
    assert by_name["c0"]["ontap"]["version"] == "9.14.1"
    u1 = next(akv for akv in by_name["c1"]["akvs"] if akv["uuid"] == "u1")
    assert u1["azure"] == {
        "reachable": False,
        "code": "65537549",
        "message": "AKV service is not reachable from all nodes - reason: timed out.",
    }
    assert u1["volumes_offline_deadline"] == u1["azure_unreachable_since"] + 3600
    assert by_name["c2"]["akvs"][0]["state"] == "inactive"
    assert by_name["c2"]["akvs"][0]["azure"] is None
    assert [n["reachable"] for n in by_name["c0"]["akvs"][0]["ekmip"]] == [True, True]
    assert 'href="metrics"' in page and 'href="api/v1/status"' in page


@pytest.mark.parametrize(
    ("query", "expected"), [("", "15"), ("?refresh=1", "1"), ("?refresh=x", "15")]
)
async def test_page_refresh_interval_comes_from_the_query(fake_ontap, tmp_path, query, expected):
    exporter, runner, base = await started(config_for(tmp_path, fake_ontap.url))
    async with aiohttp.ClientSession() as http, http.get(f"{base}/{query}") as response:
        page = await response.text()
    await runner.cleanup()
    await exporter.stop()
    assert f'<body data-refresh="{expected}">' in page


async def test_the_page_style_and_script_are_served_as_files(fake_ontap, tmp_path):
    exporter, runner, base = await started(config_for(tmp_path, fake_ontap.url))
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base}/") as response:
            page = await response.text()
        assets = re.findall(r'(?:href|src)="(static/[^"]+)"', page)
        assert sorted(a.split("?")[0] for a in assets) == [
            "static/status.css",
            "static/status.js",
        ]
        served = {}
        for asset in assets:
            async with http.get(f"{base}/{asset}") as response:
                assert response.status == 200
                served[response.content_type] = await response.text()
        async with http.get(f"{base}/static/status.html") as response:
            missing = response.status
    await runner.cleanup()
    await exporter.stop()
    assert ".state.bad" in served["text/css"]
    assert 'getElementById("filter")' in served["text/javascript"]
    assert missing == 404  # only the shipped static files, never the templates


async def test_the_page_works_behind_a_reverse_proxy_under_a_path_prefix(fake_ontap, tmp_path):
    # A reverse proxy publishing the exporter at http://proxy/akv/ (as nginx's
    # `location /akv/ { proxy_pass http://exporter/; }`): every link of the page must stay
    # under /akv/, so none may start at the root.
    exporter, runner, base = await started(config_for(tmp_path, fake_ontap.url))
    await asyncio.wait_for(exporter.wait_ready(), 10)
    upstream = aiohttp.ClientSession()

    async def forward(request: web.Request) -> web.Response:
        url = f"{base}/{request.match_info['tail']}"
        async with upstream.get(url, params=request.query, allow_redirects=False) as answer:
            return web.Response(
                status=answer.status,
                body=await answer.read(),
                content_type=answer.content_type,
            )

    proxy = web.Application()
    proxy.router.add_get("/akv/{tail:.*}", forward)
    proxy_runner = web.AppRunner(proxy)
    await proxy_runner.setup()
    site = web.TCPSite(proxy_runner, "127.0.0.1", 0)
    await site.start()
    page_url = f"http://127.0.0.1:{proxy_runner.addresses[0][1]}/akv/"
    answers = {}
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(page_url) as response:
                assert response.status == 200
                page = await response.text()
            links = re.findall(r'(?:href|src|action)="([^"#][^"]*)"', page)
            for link in links:
                target = urljoin(page_url, html.unescape(link))
                async with http.get(target) as response:
                    answers[link] = (target, response.status)
    finally:
        await proxy_runner.cleanup()
        await upstream.close()
        await runner.cleanup()
        await exporter.stop()
    assert not re.findall(r'(?:href|src|action)="/', page), "a link from the root leaves /akv/"
    assert {link.split("?")[0] for link in answers} >= {
        "static/status.css",
        "static/status.js",
        "metrics",
        "api/v1/status",
    }
    for link, (target, status) in answers.items():
        assert target.startswith(page_url) and status == 200, (link, target, status)


@pytest.mark.parametrize(
    ("overrides", "said", "never"),
    [
        (  # answered 72 s ago; its state was dropped after poll.stale_after since
            {"up": False, "last_success": NOW - 72, "key_managers_as_of": None},
            "the last good poll was 72 s ago (2023-11-14 22:13:48 UTC)",
            "has not answered",
        ),
        (
            {"up": False, "last_success": None, "key_managers_as_of": None},
            "the cluster has not answered since the exporter started",
            "the last good poll was",
        ),
        (
            {"refused": {"akv": Check(False, "65537549", "unreachable from one or more nodes.")}},
            "No AKV state known: ONTAP answered the AKV query with an error.",
            "No AKV configuration on this cluster",
        ),
        # Healthy, so folded into one row on the page: only the words are checked.
        ({}, "No AKV configuration on this cluster.", "No AKV state known"),
    ],
    ids=["stale-after-a-good-poll", "never-answered", "akv-query-error", "none-configured"],
)
def test_a_cluster_without_configurations_says_why_in_words_true_of_it(overrides, said, never):
    cluster = snapshot("c1", [], **overrides)
    fleet = assess([cluster], INFO, NOW)
    (view,) = fleet.clusters
    assert said in view.no_configuration
    assert never not in view.no_configuration
    page = html.unescape(render_page(fleet))
    assert never not in page
    assert (said in page) == view.needs_attention
