"""The blast radius: ONTAP's key-manager policy, encrypted volumes and AKV EMS events.

Parsers are checked on NetApp's own examples (netapp_ontap's docs) and every answer these tests
serve is validated with netapp_ontap's ``from_dict``; the polling runs against a real loopback
server with a controlled clock.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import jsonschema
import pytest
from netapp_ontap.resources import EmsEvent as NetAppEmsEvent
from netapp_ontap.resources import KeyManagerConfig as NetAppKeyManagerConfig
from netapp_ontap.resources import Volume as NetAppVolume

from akv_exporter.assessment_json import to_json
from akv_exporter.blast_radius import EVENTS, POLICY, VOLUMES
from akv_exporter.config import ConfigError, load_config
from akv_exporter.ontap.ems import parse_events, parse_time, query
from akv_exporter.ontap.key_manager_policy import parse_key_manager_config, release_has_endpoint
from akv_exporter.ontap.volumes import parse_volumes
from akv_exporter.web.status_page import render_page
from tests.helpers.configs import config_for, write_config
from tests.helpers.exporter import Clock, check, exporter_with_clock
from tests.helpers.exposition import SCHEMA, find, perfdata
from tests.helpers.ontap import NETAPP_POLICY, akv_record, event, policy, volume

START = 1_795_000_000.0  # the test clock's start: 2026-11-18


def test_answers_served_here_are_valid_for_netapps_library():
    NetAppKeyManagerConfig.from_dict(policy(offline=False, interval=30))
    NetAppVolume.from_dict(volume("vs1", "offline"))
    NetAppEmsEvent.from_dict(event("n1", 7, START))


def test_netapps_example_policy_parses():
    config = parse_key_manager_config(NETAPP_POLICY)
    assert config.polling_interval_minutes == 15
    assert [p.key_manager for p in config.policies] == ["akv", "aws", "gcp", "ikp", "kmip", "okm"]
    assert config.akv_takes_volumes_offline is True


def test_policy_absent_from_the_answer_is_unknown_not_off():
    # 9.10.1 to 9.14.1 answer the endpoint without health_monitor_policy.
    config = parse_key_manager_config({"health_monitor_polling_interval": 20})
    assert config.policies == () and config.akv_takes_volumes_offline is None
    assert config.polling_interval_minutes == 20


def test_policy_answer_that_is_not_an_object_is_refused():
    with pytest.raises(ValueError, match="not an object"):
        parse_key_manager_config([])


@pytest.mark.parametrize(
    ("release", "has"),
    [("9.8.0", False), ("9.9.1", False), ("9.10.1", True), ("9.15.1", True), ("10.0", True)],
)
def test_endpoint_is_asked_only_from_9_10_1(release, has):
    assert release_has_endpoint(release) is has


def test_volumes_are_counted_per_svm_and_state():
    counted = parse_volumes(
        [volume("vs1"), volume("vs1", "offline"), volume("vs1"), volume("vs2"), {"state": "x"}]
    )
    assert counted.total("vs1") == 3 and counted.total("vs1", "offline") == 1
    assert counted.svms() == ("vs1", "vs2") and counted.skipped == 1


def test_events_need_node_index_time_and_name_and_fold_the_message():
    events, skipped = parse_events(
        [event("n1", 5, START), {"index": 1}, {**event("n2", 3, START), "time": "yesterday"}]
    )
    assert skipped == 2
    (only,) = events
    assert only.time == START and only.severity == "error"
    assert only.log_message == "ekmip.akv.notAvailable: Azure Key Vault is not available (node n1)."


def test_event_time_needs_an_offset_and_the_query_asks_ontap_in_utc():
    assert parse_time("2026-11-29T02:50:00Z") == parse_time("2026-11-29T03:50:00+01:00")
    assert parse_time("2026-11-29T02:50:00") is None
    assert query(START)["time"] == ">=2026-11-18T11:06:40Z"


async def polled(ontap, tmp_path, clock, extra: str = ""):
    """Return an exporter that has polled ``ontap`` once and run its due slow polls."""
    exporter = exporter_with_clock(config_for(tmp_path, ontap.url, extra=extra), clock)
    await exporter.poller.poll_all()
    await exporter.poller.poll_blast_radius("c0")
    return exporter


async def again(exporter, clock, seconds: float) -> bytes:
    """Advance the clock, poll again (AKV, then whatever slow poll is due), return /metrics."""
    clock.now += seconds
    await exporter.poller.poll_all()
    await exporter.poller.poll_blast_radius("c0")
    return exporter.exposition.scrape()


async def test_policy_volumes_and_events_become_series(fake_ontap, tmp_path):
    fake_ontap.key_manager_config = policy(offline=False, interval=20)
    fake_ontap.volumes = [volume("vs1", index=i) for i in range(3)] + [volume("vs2", "offline")]
    fake_ontap.events = [event("n1", 10, START - 3600, "ekmip.akv.keyExpired")]
    exporter = await polled(fake_ontap, tmp_path, Clock(START))
    body = exporter.exposition.scrape()
    assert find(body, "ontap_key_manager_manage_volume_offline", key_manager="akv") == [0.0]
    assert find(body, "ontap_key_manager_health_monitor_enabled", key_manager="kmip") == [1.0]
    assert find(body, "ontap_key_manager_health_monitor_interval_seconds", cluster="c0") == [1200.0]
    assert find(body, "ontap_encrypted_volumes", svm="vs1", state="online") == [3.0]
    assert find(body, "ontap_encrypted_volumes", svm="vs1", state="offline") == [0.0]
    assert find(body, "ontap_encrypted_volumes", svm="vs2", state="offline") == [1.0]
    # History: the series exists at zero; the time is ONTAP's.
    labels = {"node": "n1", "event": "ekmip.akv.keyExpired"}
    assert find(body, "ontap_ems_events_total", **labels) == [0.0]
    assert find(body, "ontap_ems_event_last_timestamp_seconds", **labels) == [START - 3600]
    await exporter.stop()


async def test_ems_series_name_the_svm_the_event_names(fake_ontap, tmp_path):
    # NetApp's ekmip.akv.* events name their SVM in the parameter `svm`: two SVMs' keyExpired on
    # one node are two series, so an alert can quote its own SVM's event and nobody else's.
    fake_ontap.key_manager_config = policy()
    fake_ontap.volumes = [volume("vs1")]
    fake_ontap.events = [
        event("n1", 10, START - 3600, "ekmip.akv.keyExpired", svm="svm_db"),
        event("n1", 11, START - 60, "ekmip.akv.keyExpired", svm="svm_vdi"),
    ]
    exporter = await polled(fake_ontap, tmp_path, Clock(START))
    body = exporter.exposition.scrape()
    name, labels = "ontap_ems_event_last_timestamp_seconds", {"event": "ekmip.akv.keyExpired"}
    assert find(body, name, svm="svm_db", **labels) == [START - 3600]
    assert find(body, name, svm="svm_vdi", **labels) == [START - 60]
    assert "parameters" in fake_ontap.asked(EVENTS)[0].query["fields"].split(",")
    await exporter.stop()


async def test_history_is_not_replayed_and_new_events_count_once(fake_ontap, tmp_path):
    fake_ontap.key_manager_config = policy()
    fake_ontap.volumes = [volume("vs1")]
    fake_ontap.events = [event("n1", 10, START - 60), event("n2", 4, START - 50)]
    clock = Clock(START)
    exporter = await polled(fake_ontap, tmp_path, clock)
    (first,) = fake_ontap.asked(EVENTS)
    # every provider's events (NetApp's EMS names), as ONTAP's `|` alternatives
    assert first.query["message.name"].split("|")[0] == "ekmip.akv.*"
    assert {"ekmip.gckms.*", "ekmip.awskms.*", "km.keyretrieve.failed"} <= set(
        first.query["message.name"].split("|")
    )
    assert first.query["time"] == ">=" + datetime.fromtimestamp(START - 86400, UTC).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )
    # A server that answers the overlap again: the old events must not count.
    fake_ontap.events += [event("n1", 11, START + 30, "ekmip.akv.volOffline")]
    body = await again(exporter, clock, 61)
    assert find(body, "ontap_ems_events_total", node="n1", event="ekmip.akv.volOffline") == [1.0]
    assert find(body, "ontap_ems_events_total", node="n1", event="ekmip.akv.notAvailable") == [0.0]
    assert find(body, "ontap_ems_events_total", node="n2", event="ekmip.akv.notAvailable") == [0.0]
    # The second poll asks from ONTAP's latest event time, less the overlap.
    assert fake_ontap.asked(EVENTS)[-1].query["time"] == ">=" + datetime.fromtimestamp(
        START - 50 - 600, UTC
    ).strftime("%Y-%m-%dT%H:%M:%SZ")
    body = await again(exporter, clock, 61)
    assert find(body, "ontap_ems_events_total", node="n1", event="ekmip.akv.volOffline") == [1.0]
    recent = exporter.poller.snapshots()["c0"].blast.recent_events
    assert [e.index for e in recent] == [11, 4, 10]  # newest first
    await exporter.stop()


async def test_slow_polls_keep_their_own_schedules(fake_ontap, tmp_path):
    fake_ontap.key_manager_config = policy()
    fake_ontap.volumes = [volume("vs1")]
    fake_ontap.events = []
    clock = Clock(START)
    exporter = await polled(fake_ontap, tmp_path, clock)
    for _ in range(4):  # 4 minutes: events every minute, inventory not yet again
        await again(exporter, clock, 61)
    assert len(fake_ontap.asked(EVENTS)) == 5
    assert len(fake_ontap.asked(VOLUMES)) == 1 and len(fake_ontap.asked(POLICY)) == 1
    await again(exporter, clock, 61)
    assert len(fake_ontap.asked(VOLUMES)) == 2 and len(fake_ontap.asked(POLICY)) == 2
    await exporter.stop()


@pytest.mark.parametrize("release", [(9, 8, 0), (9, 9, 1)])
async def test_release_without_the_policy_endpoint_is_not_asked_and_has_no_series(
    fake_ontap, tmp_path, release
):
    generation, major, minor = release
    fake_ontap.cluster["version"] = {"generation": generation, "major": major, "minor": minor}
    fake_ontap.volumes = [volume("vs1")]
    fake_ontap.events = []
    exporter = await polled(fake_ontap, tmp_path, Clock(START))
    body = exporter.exposition.scrape()
    assert fake_ontap.asked(POLICY) == []
    assert find(body, "ontap_key_manager_manage_volume_offline") == []
    assert find(body, "akv_exporter_endpoint_poll_errors_total") == []
    blast = exporter.poller.snapshots()["c0"].blast
    assert (
        blast.policy_unsupported == ".".join(map(str, release))
        and blast.takes_volumes_offline is None
    )
    assert find(body, "ontap_encrypted_volumes", svm="vs1", state="online") == [1.0]
    await exporter.stop()


async def test_a_404_for_the_policy_is_asked_once_per_release(fake_ontap, tmp_path):
    fake_ontap.volumes, fake_ontap.events = [volume("vs1")], []
    clock = Clock(START)
    exporter = await polled(fake_ontap, tmp_path, clock)  # 9.14.1 answering 404
    await again(exporter, clock, 301)
    assert len(fake_ontap.asked(POLICY)) == 1 and len(fake_ontap.asked(VOLUMES)) == 2
    assert exporter.poller.snapshots()["c0"].blast.policy_unsupported == "9.14.1"
    await exporter.stop()


async def test_failing_slow_polls_never_mark_the_cluster_down(fake_ontap, tmp_path, caplog):
    fake_ontap.key_manager_config = policy()
    fake_ontap.events = []
    fake_ontap.volumes = (429, {"error": {"message": "too many requests", "code": "262160"}})
    exporter = await polled(fake_ontap, tmp_path, Clock(START))
    body = exporter.exposition.scrape()
    assert find(body, "akv_exporter_cluster_up", cluster="c0") == [1.0]
    assert find(body, "akv_exporter_cluster_poll_errors_total", reason="rate_limited") == [0.0]
    assert find(
        body, "akv_exporter_endpoint_poll_errors_total", endpoint=VOLUMES, reason="rate_limited"
    ) == [1.0]
    assert find(body, "ontap_encrypted_volumes") == []
    assert find(body, "ontap_key_manager_manage_volume_offline", key_manager="akv") == [1.0]
    assert "endpoint=/api/storage/volumes reason=rate_limited" in caplog.text
    await exporter.stop()


async def test_a_cluster_without_akv_is_not_asked_for_its_blast_radius(fake_ontap, tmp_path):
    fake_ontap.records = []
    exporter = await polled(fake_ontap, tmp_path, Clock(START))
    assert fake_ontap.asked(VOLUMES) == fake_ontap.asked(EVENTS) == []
    await exporter.stop()


ONE_CLUSTER = "clusters:\n  - address: h\n    username: u\n    password: p\n"


def test_slow_poll_intervals_default_to_five_minutes_and_one_minute(tmp_path):
    config = config_for(tmp_path, "http://127.0.0.1:9")
    assert (config.poll.inventory_interval, config.poll.events_interval) == (300.0, 60.0)
    body = "poll:\n  inventory_interval: 15m\n  events_interval: 2m\n" + ONE_CLUSTER
    config = load_config(write_config(tmp_path, body))
    assert (config.poll.inventory_interval, config.poll.events_interval) == (900.0, 120.0)


def test_a_bad_slow_poll_interval_is_one_line_naming_file_line_and_key(tmp_path):
    body = "poll:\n  inventory_interval: soon\n" + ONE_CLUSTER
    path = write_config(tmp_path, body)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    (problem,) = caught.value.problems
    assert problem.startswith(f"{path}:2: poll.inventory_interval:")


@pytest.mark.slow
async def test_check_counts_volumes_at_stake_and_offline_volumes_are_critical(make_ontap, tmp_path):
    unreachable, offline = await make_ontap(), await make_ontap()
    unreachable.records = [akv_record(reachable=False)]
    unreachable.key_manager_config = policy(offline=True)
    unreachable.volumes = [volume("vs1", index=i) for i in range(7)]
    unreachable.events = []
    offline.records = [akv_record(svm=None)]  # cluster-scoped: serves vs2 and vs3
    offline.key_manager_config = policy(offline=True)
    offline.volumes = [volume("vs2", "offline"), volume("vs2", index=1), volume("vs3", index=2)]
    # ONTAP's word that AKV is the cause: its volOffline for vs2.
    offline.events = [event("n1", 3, START - 120, "ekmip.akv.volOffline", svm="vs2")]
    code, out, _ = await check(config_for(tmp_path, unreachable.url, offline.url))
    first, *rest = out.splitlines()
    assert code == 2
    assert first.startswith(
        "AKV CRITICAL - 1 encrypted volume offline (ONTAP logged ekmip.akv.volOffline), "
        "1 of 2 configurations unreachable (7 encrypted volumes at stake) | "
    )
    assert perfdata(first)["volumes_at_stake"] == "7"
    assert perfdata(first)["volumes_offline"] == "1"
    assert any(
        line.startswith(
            "c1: cluster: 1 of 2 encrypted volumes offline in SVM vs2 "
            "(ONTAP logged ekmip.akv.volOffline for it at "
        )
        for line in rest
    )
    assert any(
        line.startswith("c0: svm vs1: ONTAP takes the encrypted volumes (7 at stake) offline at")
        for line in rest
    )


@pytest.mark.slow
async def test_check_says_when_ontaps_policy_keeps_volumes_online(fake_ontap, tmp_path):
    fake_ontap.records = [akv_record(reachable=False)]
    fake_ontap.key_manager_config = policy(offline=False)
    fake_ontap.volumes = [volume("vs1")]
    fake_ontap.events = []
    code, out, _ = await check(config_for(tmp_path, fake_ontap.url), "--format", "json")
    assert code == 2
    (akv,) = json.loads(out)["clusters"][0]["akvs"]
    assert akv["volume_offline_policy"] == "keeps_volumes_online"
    assert akv["volumes_offline_deadline"] is None and akv["volumes_at_stake"] == 1
    code, out, _ = await check(config_for(tmp_path, fake_ontap.url))
    assert (
        "c0: svm vs1: ONTAP will not take the encrypted volumes (1 at stake) offline (policy)"
        in (out.splitlines())
    )


async def test_status_document_carries_policy_volumes_and_events_and_fits_its_schema(
    make_ontap, tmp_path
):
    new, old = await make_ontap(), await make_ontap()
    new.key_manager_config = policy(offline=True, interval=20)
    new.volumes = [volume("vs1", "offline"), volume("vs1", index=1)]
    new.events = [event("n1", 3, START - 120, "ekmip.akv.volOffline", svm="vs1")]
    old.cluster["version"] = {"generation": 9, "major": 9, "minor": 1}
    old.volumes, old.events = [volume("vs1")], []
    clock = Clock(START)
    exporter = exporter_with_clock(config_for(tmp_path, new.url, old.url), clock)
    await exporter.poll_all()
    document = to_json(exporter.status(now=START))
    jsonschema.Draft202012Validator(SCHEMA).validate(document)
    first, second = document["clusters"]
    assert first["key_manager"]["volume_offline_policy"] == "takes_volumes_offline"
    assert first["key_manager"]["health_monitor_interval_minutes"] == 20
    assert [e["name"] for e in first["key_manager"]["recent_events"]] == ["ekmip.akv.volOffline"]
    assert first["akvs"][0]["svms"] == [
        {"svm": "vs1", "encrypted_volumes": 2, "offline_volumes": 1}
    ]
    assert first["akvs"][0]["svms_at_stake"] == []  # Azure reachable: nothing at stake
    assert any(
        p.startswith("svm vs1: 1 of 2 encrypted volumes offline in SVM vs1 (ONTAP logged")
        for p in first["problems"]
    )
    assert document["summary"]["status"] == "critical"
    assert second["key_manager"]["volume_offline_policy"] == "unknown"
    assert second["key_manager"]["policy_note"] == "unknown on ONTAP 9.9.1"
    await exporter.stop()


async def test_ontap_requests_per_cluster_per_hour_at_the_defaults(fake_ontap, tmp_path):
    # The figure of docs/polling.md: one hour of the default schedule (poll.interval 60s,
    # inventory_interval 5m, events_interval 60s), every answer one page.
    fake_ontap.key_manager_config = policy()
    fake_ontap.volumes = [volume("vs1", index=i) for i in range(40)]
    fake_ontap.events = [event("n1", 1, START - 60)]
    clock = Clock(START)
    exporter = exporter_with_clock(config_for(tmp_path, fake_ontap.url), clock)
    for _ in range(60):
        await exporter.poll_all()
        clock.now += 60
    by_path = {}
    for request in fake_ontap.requests:
        by_path[request.path] = by_path.get(request.path, 0) + 1
    assert by_path == {
        "/api/cluster": 1,
        "/api/security/azure-key-vaults": 60,
        POLICY: 12,
        VOLUMES: 12,
        EVENTS: 60,
    }
    assert sum(by_path.values()) == 145
    await exporter.stop()


async def test_status_page_puts_offline_volumes_first_and_says_ontaps_policy_in_words(
    make_ontap, tmp_path
):
    takes, keeps, old = await make_ontap(), await make_ontap(), await make_ontap()
    for ontap in (takes, keeps, old):
        ontap.records = [akv_record(reachable=False), akv_record("u2", svm=None)]
        ontap.events = []
    takes.key_manager_config = policy(offline=True)
    takes.volumes = [volume("vs1", index=i) for i in range(3)] + [
        volume("vs2", "offline"),
        volume("vs2", index=9),
    ]
    takes.events = [
        {
            **event("n1", 7, START - 30, "ekmip.akv.volOffline"),
            "log_message": "Volumes of <b>vs2</b> taken offline",
        }
    ]
    keeps.key_manager_config = policy(offline=False)
    keeps.volumes = [volume("vs1")]
    old.cluster["version"] = {"generation": 9, "major": 9, "minor": 1}
    old.volumes = [volume("vs1", index=i) for i in range(2)]
    exporter = exporter_with_clock(
        config_for(tmp_path, takes.url, keeps.url, old.url), Clock(START)
    )
    await exporter.poll_all()
    page = " ".join(render_page(exporter.status(now=START)).split())
    # c0: vs1 has its own configuration; the cluster-scoped one serves vs2, offline first in red.
    assert "3 encrypted volumes at stake in SVM vs1" in page
    assert '<b class="state bad">1 OFFLINE</b> of 2 encrypted volumes in SVM vs2' in page
    assert "ONTAP takes volumes offline at about" in page
    assert "ONTAP will not take volumes offline (policy)" in page  # c1
    assert "unknown on ONTAP 9.9.1" in page  # c2
    assert "1 encrypted volume at stake in SVM vs1" in page
    # ONTAP's own events, its message escaped like every other value.
    assert "<code>ekmip.akv.volOffline</code>" in page
    assert "Volumes of &lt;b&gt;vs2&lt;/b&gt; taken offline" in page
    await exporter.stop()


async def test_a_cluster_healthy_again_with_volumes_still_offline_needs_attention(
    make_ontap, tmp_path
):
    # The vault is back, every configuration reads healthy, but ONTAP has not brought the
    # SVM's encrypted volumes back: the verdict is critical, so the page must not fold the
    # cluster into "Healthy"; it leads "Needs attention", where a merely inactive one is not.
    recovered, inactive = await make_ontap(), await make_ontap()
    recovered.records = [akv_record()]
    recovered.key_manager_config = policy(offline=True)
    recovered.volumes = [volume("vs1", "offline"), volume("vs1", "offline", index=1)]
    inactive.records = [akv_record("u2", enabled=False)]
    inactive.key_manager_config = policy(offline=True)
    for ontap in (recovered, inactive):
        ontap.events = []
    # ONTAP took them offline for lack of AKV and has logged no volOnline or available since.
    recovered.events = [event("n1", 3, START - 900, "ekmip.akv.volOffline", svm="vs1")]
    inactive.volumes = [volume("vs1")]
    exporter = exporter_with_clock(config_for(tmp_path, recovered.url, inactive.url), Clock(START))
    await exporter.poll_all()
    status = exporter.status(now=START)
    # The cluster says what ONTAP did, in the JSON and on its badge, not "healthy".
    assert [c.state for c in status.clusters] == ["volumes_offline", "inactive"]
    assert to_json(status)["clusters"][0]["state"] == "volumes_offline"
    page = render_page(status)
    assert "VOLUMES OFFLINE" in page
    attention, healthy = page.split('<section id="healthy">')
    assert 'data-name="c0"' in attention and 'data-name="c1"' in healthy
    assert "2 of 2 encrypted volumes offline in SVM vs1" in attention
    assert 'data-name="c0"' not in healthy
    await exporter.stop()


async def test_releases_before_9_15_1_are_asked_for_the_interval_only(fake_ontap, tmp_path):
    fake_ontap.cluster["version"] = {"generation": 9, "major": 12, "minor": 1}
    fake_ontap.key_manager_config = {"health_monitor_polling_interval": 20}
    fake_ontap.volumes, fake_ontap.events = [volume("vs1")], []
    exporter = await polled(fake_ontap, tmp_path, Clock(START))
    (asked,) = fake_ontap.asked(POLICY)
    assert asked.query["fields"] == "health_monitor_polling_interval"
    body = exporter.exposition.scrape()
    assert find(body, "ontap_key_manager_health_monitor_interval_seconds") == [1200.0]
    assert find(body, "ontap_key_manager_manage_volume_offline") == []
    view = exporter.status(now=START).clusters[0]
    assert (view.policy, view.policy_note) == (
        "unknown",
        "unknown: ONTAP 9.12.1 does not report the policy",
    )
    await exporter.stop()


async def test_a_release_refusing_the_policy_field_is_asked_for_the_interval_alone(
    fake_ontap, tmp_path
):
    def answer(request):
        if "health_monitor_policy" in request.query["fields"]:
            error = {"message": 'The value "health_monitor_policy" is invalid', "code": "262197"}
            return (400, {"error": {**error, "target": "fields"}})
        return {"health_monitor_polling_interval": 30}

    # A release that should know the policy but refuses it: the fallback is for the unexpected.
    fake_ontap.cluster["version"] = {"generation": 9, "major": 15, "minor": 1}
    fake_ontap.key_manager_config = answer
    fake_ontap.volumes, fake_ontap.events = [volume("vs1")], []
    clock = Clock(START)
    exporter = await polled(fake_ontap, tmp_path, clock)
    await again(exporter, clock, 301)
    fields = [r.query["fields"] for r in fake_ontap.asked(POLICY)]
    assert fields == [
        "health_monitor_policy,health_monitor_polling_interval",
        "health_monitor_polling_interval",
        "health_monitor_polling_interval",
    ]
    body = exporter.exposition.scrape()
    assert find(body, "akv_exporter_endpoint_poll_errors_total") == []
    assert find(body, "ontap_key_manager_health_monitor_interval_seconds") == [1800.0]
    await exporter.stop()


async def test_an_akv_svm_without_encrypted_volumes_counts_zero(fake_ontap, tmp_path):
    """The KEK alert stays quiet for an SVM with none (sum of ontap_encrypted_volumes is 0)."""
    fake_ontap.records = [akv_record(), akv_record("u2", "vs2")]
    fake_ontap.volumes = [volume("vs1", index=i) for i in range(2)]
    exporter = await polled(fake_ontap, tmp_path, Clock(START))
    body = exporter.exposition.scrape()
    assert find(body, "ontap_encrypted_volumes", svm="vs1", state="online") == [2.0]
    assert find(body, "ontap_encrypted_volumes", svm="vs2", state="online") == [0.0]
    assert find(body, "ontap_encrypted_volumes", svm="vs2", state="offline") == [0.0]


async def test_slow_polls_share_one_timeout_and_a_hang_costs_no_more(fake_ontap, tmp_path):
    # The volumes endpoint hangs: it and the events after it share the round's one timeout
    # (2 s here), the cluster stays up, and the poll returns (a hang guard, not a speed test).
    released = asyncio.Event()

    async def hang(request):
        await released.wait()
        return []

    fake_ontap.key_manager_config = policy()
    fake_ontap.volumes = hang
    fake_ontap.events = []
    exporter = exporter_with_clock(config_for(tmp_path, fake_ontap.url), Clock(START))
    await asyncio.wait_for(exporter.poll_all(), 60)
    released.set()
    body = exporter.exposition.scrape()
    assert find(body, "akv_exporter_cluster_up", cluster="c0") == [1.0]
    timeouts = {
        endpoint: find(
            body, "akv_exporter_endpoint_poll_errors_total", endpoint=endpoint, reason="timeout"
        )
        for endpoint in (VOLUMES, EVENTS)
    }
    assert timeouts == {VOLUMES: [1.0], EVENTS: [1.0]}
    assert find(body, "ontap_key_manager_manage_volume_offline", key_manager="akv") == [1.0]
    await exporter.stop()
