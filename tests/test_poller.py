"""The poller: schedules, isolation of bad clusters, staleness, streak persistence, reloads."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest
from aiohttp import web

from akv_exporter.config import ConfigError, PollConfig, parse_config
from akv_exporter.exporter import Exporter
from akv_exporter.poller import backoff_delay
from tests.helpers.configs import CANARY, config_for, write_config
from tests.helpers.exporter import Clock, exporter_with_clock
from tests.helpers.exposition import find
from tests.helpers.fake_ontap import InFlight
from tests.helpers.ontap import akv_record


async def test_healthy_cluster_gives_per_node_ekmip_with_codes(fake_ontap, tmp_path):
    fake_ontap.records = [akv_record(ekmip_down=("n2",))]
    exporter = Exporter(config_for(tmp_path, fake_ontap.url), process_metrics=False)
    await exporter.poll_all()
    body = exporter.scrape()
    assert find(body, "ontap_akv_ekmip_reachable", cluster="c0", node="n1", code="0") == [1.0]
    assert find(body, "ontap_akv_ekmip_reachable", cluster="c0", node="n2", code="65537552") == [
        0.0
    ]
    assert find(body, "akv_exporter_cluster_up", cluster="c0") == [1.0]
    await exporter.stop()


async def test_name_comes_from_ontap_when_not_configured(fake_ontap, tmp_path):
    fake_ontap.cluster["name"] = "ontap-says-so"
    exporter = Exporter(config_for(tmp_path, fake_ontap.url, names=False), process_metrics=False)
    (snapshot,) = (await exporter.poll_all()).values()
    assert snapshot.name == "ontap-says-so"
    assert find(exporter.scrape(), "akv_exporter_cluster_up", cluster="ontap-says-so")
    await exporter.stop()


async def test_a_hung_cluster_never_delays_the_others(make_ontap, tmp_path):
    hung, healthy = await make_ontap(), await make_ontap()
    released = asyncio.Event()

    async def hang(request):
        await released.wait()
        return web.json_response({"records": []})

    hung.handler = hang
    order: list[tuple[str, bool]] = []
    exporter = Exporter(config_for(tmp_path, hung.url, healthy.url), process_metrics=False)
    publish = exporter.poller._publish
    exporter.poller._publish = lambda key, snap: (order.append((key, snap.up)), publish(key, snap))
    await exporter.poll_all()
    released.set()
    # The healthy cluster publishes (its AKV poll, then its slow polls) before the hung one.
    polled = list(dict.fromkeys(entry for entry in order if entry[0] in ("c0", "c1")))
    assert polled == [("c1", True), ("c0", False)]
    snapshots = exporter.snapshots()
    assert snapshots["c0"].last.reason == "timeout"
    assert "/api/security/azure-key-vaults: no answer within 2s" in snapshots["c0"].last.error
    await exporter.stop()


async def test_broken_cluster_carries_its_reason_while_neighbours_stay_up(make_ontap, tmp_path):
    good, bad = await make_ontap(), await make_ontap()

    async def forbidden(request):
        return web.json_response({"error": {"code": "6", "message": "not authorized"}}, status=403)

    bad.handler = forbidden
    exporter = Exporter(config_for(tmp_path, good.url, bad.url), process_metrics=False)
    await exporter.poll_all()
    body = exporter.scrape()
    assert find(body, "akv_exporter_cluster_up", cluster="c0") == [1.0]
    assert find(body, "akv_exporter_cluster_up", cluster="c1") == [0.0]
    assert find(
        body, "akv_exporter_cluster_poll_errors_total", cluster="c1", reason="forbidden"
    ) == [1.0]
    assert find(body, "akv_exporter_ontap_requests_total", cluster="c1", status="403") == [1.0]
    await exporter.stop()


async def test_failing_cluster_is_down_at_once_and_its_series_go_stale(fake_ontap, tmp_path):
    clock = Clock()
    exporter = exporter_with_clock(config_for(tmp_path, fake_ontap.url), clock)
    await exporter.poll_all()

    async def unavailable(request):
        return web.Response(status=500)

    fake_ontap.handler = unavailable
    clock.now += 60
    await exporter.poll_all()
    body = exporter.scrape()
    assert find(body, "akv_exporter_cluster_up", cluster="c0") == [0.0]
    assert find(body, "ontap_akv_azure_reachable", cluster="c0") == [1.0]  # last known, kept
    clock.now += 180  # stale_after (default 180s) has now passed since the last good answer
    await exporter.poll_all()
    body = exporter.scrape()
    assert find(body, "ontap_akv_azure_reachable", cluster="c0") == []
    assert find(body, "akv_exporter_cluster_up", cluster="c0") == [0.0]
    await exporter.stop()


async def test_unreachable_since_survives_an_exporter_restart(fake_ontap, tmp_path):
    fake_ontap.records = [akv_record(reachable=False)]
    clock = Clock()
    config = config_for(tmp_path, fake_ontap.url)
    first = exporter_with_clock(config, clock)
    await first.poll_all()
    started = clock.now
    await first.stop()
    clock.now += 600
    second = exporter_with_clock(config, clock)
    await second.poll_all()
    body = second.scrape()
    assert find(body, "ontap_akv_azure_unreachable_since_timestamp_seconds", cluster="c0") == [
        started
    ]
    fake_ontap.records = [akv_record(reachable=True)]
    await second.poll_all()
    assert find(second.scrape(), "ontap_akv_azure_unreachable_since_timestamp_seconds") == []
    assert json.loads((tmp_path / "state.json").read_text())["azure_unreachable_since"] == {}
    await second.stop()


async def test_corrupt_state_file_is_ignored_with_a_warning(fake_ontap, tmp_path, caplog):
    (tmp_path / "state.json").write_text("{not json")
    with caplog.at_level(logging.WARNING):
        exporter = Exporter(config_for(tmp_path, fake_ontap.url), process_metrics=False)
    assert "unreadable" in caplog.text
    fake_ontap.records = [akv_record(reachable=False)]
    await exporter.poll_all()
    assert "azure_unreachable_since" in (tmp_path / "state.json").read_text()
    await exporter.stop()


async def test_malformed_records_are_counted_and_the_rest_kept(fake_ontap, tmp_path):
    fake_ontap.records = [akv_record(), "garbage", {"no": "uuid"}]
    exporter = Exporter(config_for(tmp_path, fake_ontap.url), process_metrics=False)
    await exporter.poll_all()
    body = exporter.scrape()
    assert find(body, "akv_exporter_cluster_skipped_records_total", cluster="c0") == [2.0]
    assert find(body, "akv_exporter_cluster_up", cluster="c0") == [1.0]
    await exporter.stop()


async def test_bad_reload_is_refused_and_the_running_state_stays(make_ontap, tmp_path):
    first, second = await make_ontap(), await make_ontap()
    config = config_for(tmp_path, first.url)
    exporter = Exporter(config, process_metrics=False)
    await exporter.start()
    await asyncio.wait_for(exporter.wait_ready(), 10)
    config.path.write_text("clusters:\n  - adress: nowhere\n")
    problems = await exporter.reload()
    assert "clusters[0].adress: unknown key (did you mean 'address'?)" in problems
    body = exporter.scrape()
    assert find(body, "akv_exporter_config_last_reload_successful") == [0.0]
    assert find(body, "akv_exporter_cluster_up", cluster="c0") == [1.0]
    good = config_for(tmp_path, second.url)  # c0 now points elsewhere
    assert good.path == config.path
    assert await exporter.reload() is None
    await asyncio.sleep(0)
    await exporter.poll("c0")
    body = exporter.scrape()
    assert find(body, "akv_exporter_config_last_reload_successful") == [1.0]
    assert len(second.requests) >= 1
    await exporter.stop()


async def test_reload_drops_removed_clusters_from_the_output(make_ontap, tmp_path):
    a, b = await make_ontap(), await make_ontap()
    exporter = Exporter(config_for(tmp_path, a.url, b.url), process_metrics=False)
    await exporter.poll_all()
    config_for(tmp_path, a.url)
    assert await exporter.reload() is None
    assert find(exporter.scrape(), "akv_exporter_cluster_up", cluster="c1") == []
    await exporter.stop()


async def test_secret_canary_never_shows_in_logs_errors_or_metrics(make_ontap, tmp_path, caplog):
    reject = await make_ontap()

    async def unauthorized(request):
        return web.Response(status=401)

    reject.handler = unauthorized
    good = await make_ontap()
    exporter = Exporter(config_for(tmp_path, reject.url, good.url), process_metrics=False)
    with caplog.at_level(logging.DEBUG):
        snapshots = await exporter.poll_all()
    assert snapshots["c0"].last.reason == "auth"
    exposed = exporter.scrape().decode()
    for text in (caplog.text, exposed, repr(snapshots), repr(exporter.config)):
        assert CANARY not in text
    with pytest.raises(ConfigError) as caught:
        parse_config(
            f"clusters:\n  - address: a\n    username: u\n    password: {CANARY}\n    bogus: 1\n"
        )
    assert CANARY not in str(caught.value)
    await exporter.stop()


def test_backoff_doubles_per_failure_up_to_the_cap():
    poll = PollConfig(interval=60, max_backoff=300)
    assert [backoff_delay(poll, n) for n in range(6)] == [60, 60, 120, 240, 300, 300]


async def test_ready_after_the_first_round_even_when_a_cluster_fails(make_ontap, tmp_path):
    good = await make_ontap()
    exporter = Exporter(config_for(tmp_path, good.url, "http://127.0.0.1:9"), process_metrics=False)
    assert not exporter.ready
    await exporter.start()
    await asyncio.wait_for(exporter.wait_ready(), 20)
    await exporter.stop()


async def test_reload_that_changes_a_cluster_keeps_it_up_until_its_next_poll(fake_ontap, tmp_path):
    exporter = Exporter(config_for(tmp_path, fake_ontap.url), process_metrics=False)
    await exporter.poll_all()
    config_for(tmp_path, fake_ontap.url, extra="  labels:\n    datacenter: dc9\n")
    assert await exporter.reload() is None
    body = exporter.scrape()
    assert find(body, "akv_exporter_cluster_up", cluster="c0", datacenter="dc9") == [1.0]
    assert find(body, "ontap_akv_azure_reachable", cluster="c0", datacenter="dc9") == [1.0]
    await exporter.stop()


async def test_a_cluster_not_yet_polled_has_no_series(fake_ontap, tmp_path):
    exporter = Exporter(config_for(tmp_path, fake_ontap.url), process_metrics=False)
    assert find(exporter.scrape(), "akv_exporter_cluster_up") == []
    await exporter.stop()


@pytest.mark.parametrize(
    "change",
    ["a cluster added above, moving every line", "a new poll interval"],
)
async def test_reload_keeps_an_unchanged_clusters_connection(make_ontap, tmp_path, change):
    kept, added = await make_ontap(), await make_ontap()
    peers: list[int] = []

    async def answer(request):
        peers.append(request.transport.get_extra_info("peername")[1])
        return web.json_response({"records": [akv_record()]})

    kept.handler = answer
    body = (
        "state_file: {state}\npoll: {{interval: {interval}}}\n"
        "defaults: {{username: u, password: p}}\nclusters:\n{clusters}"
    )
    state = tmp_path / "s.json"
    path = tmp_path / "akv.yml"
    path.write_text(body.format(state=state, interval="60s", clusters=f"  - address: {kept.url}\n"))
    from akv_exporter.config import load_config

    exporter = Exporter(load_config(path), process_metrics=False)
    await exporter.poll_all()
    if change.startswith("a cluster added"):
        clusters = f"  - address: {added.url}\n  - address: {kept.url}\n"
        path.write_text(body.format(state=state, interval="60s", clusters=clusters))
    else:
        clusters = f"  - address: {kept.url}\n"
        path.write_text(body.format(state=state, interval="30s", clusters=clusters))
    assert await exporter.reload() is None
    await exporter.poll_all()
    assert len(peers) == 2 and peers[0] == peers[1]  # the same keep-alive connection
    await exporter.stop()


async def test_an_answer_byte_for_byte_the_last_is_not_decoded_again(
    fake_ontap, tmp_path, monkeypatch
):
    """Most polls bring the same bytes: neither decoded nor parsed again, yet a change shows."""
    import akv_exporter.ontap.client as client_module

    decoded: list[bytes] = []
    real = client_module.decode_json

    def counting(body: bytes):
        decoded.append(body)
        return real(body)

    monkeypatch.setattr(client_module, "decode_json", counting)
    exporter = Exporter(config_for(tmp_path, fake_ontap.url), process_metrics=False)
    await exporter.poll_all()  # identity and AKVs (fields=**), both decoded
    await exporter.poll_all()  # AKVs with the release's fields: a new query, decoded
    asked = len(decoded)
    await exporter.poll_all()
    await exporter.poll_all()
    assert len(decoded) == asked  # the same bytes twice: not decoded again
    assert find(exporter.scrape(), "ontap_akv_azure_reachable", cluster="c0") == [1.0]

    fake_ontap.records = [akv_record(reachable=False)]
    await exporter.poll_all()
    assert len(decoded) == asked + 1
    assert find(exporter.scrape(), "ontap_akv_azure_reachable", cluster="c0") == [0.0]
    await exporter.stop()


async def test_the_global_concurrency_cap_holds(make_ontap, tmp_path):
    fakes = [await make_ontap() for _ in range(4)]
    slow = InFlight()
    for fake in fakes:
        fake.handler = slow
    config = config_for(tmp_path, *(f.url for f in fakes), poll="  concurrency: 2\n")
    exporter = Exporter(config, process_metrics=False)
    snapshots = await exporter.poll_all()
    assert all(s.up for s in snapshots.values())
    assert slow.most == 2
    await exporter.stop()


async def test_slow_polls_never_hold_up_the_fleets_first_view(make_ontap, tmp_path):
    """The first slow polls (policy, volumes, events) wait for every cluster's first AKV poll.

    With the cap at one, the first cluster's slow polls used to keep the only slot while the
    second cluster waited for its AKV poll: at 1,000 clusters, a first view four times later.
    """
    asked: list[str] = []
    never = asyncio.Event()

    async def akv(_request):
        asked.append("akv")
        return web.json_response({"records": [akv_record()], "num_records": 1})

    async def hang(request):
        asked.append(request.path)
        await never.wait()

    fakes = [await make_ontap() for _ in range(2)]
    for fake in fakes:
        fake.handler = akv
        fake.key_manager_config = fake.volumes = fake.events = hang
    poll = "  concurrency: 1\n"
    exporter = Exporter(config_for(tmp_path, *(f.url for f in fakes), poll=poll))
    await exporter.start()
    try:
        await asyncio.wait_for(exporter.wait_ready(), 60)  # hang guard, not a timing
        assert all(s.up for s in exporter.snapshots().values())
        # ... and then the slow polls follow, within the cap: one cluster's at a time.
        while "/api/security/key-manager-configs" not in asked:
            await asyncio.sleep(0.02)
        assert asked[:3] == ["akv", "akv", "/api/security/key-manager-configs"]
    finally:
        never.set()
        await exporter.stop()


async def test_a_failed_poll_logs_one_line_naming_cluster_endpoint_and_reason(
    fake_ontap, tmp_path, caplog
):
    async def unavailable(request):
        return web.Response(status=500)

    fake_ontap.handler = unavailable
    exporter = Exporter(config_for(tmp_path, fake_ontap.url), process_metrics=False)
    with caplog.at_level(logging.WARNING, logger="akv_exporter.poller"):
        await exporter.poll_all()
    (record,) = [r for r in caplog.records if r.getMessage().startswith("poll failed")]
    line = record.getMessage()
    assert "\n" not in line
    assert "cluster=c0" in line and "reason=http" in line
    assert "/api/security/azure-key-vaults: HTTP 500" in line
    assert (record.cluster, record.reason) == ("c0", "http")  # structured fields for JSON logs
    await exporter.stop()


async def test_disabled_tls_verification_is_one_warning_naming_the_count(tmp_path, caplog):
    addresses = "".join(f"  - address: https://127.0.0.1:{port}\n" for port in range(9, 21))
    body = (
        f"state_file: {tmp_path / 's.json'}\n"
        "defaults: {username: u, password: p, tls: {verify: false}}\n"
        f"clusters:\n{addresses}"
    )
    config = parse_config(body, write_config(tmp_path, body))
    with caplog.at_level(logging.WARNING, logger="akv_exporter.poller"):
        exporter = Exporter(config, process_metrics=False)
        await exporter.poll_all()
        await exporter.poll_all()
        assert await exporter.reload() is None  # unchanged clusters are not warned about again
    warnings = [
        r.getMessage() for r in caplog.records if "verification is disabled" in r.getMessage()
    ]
    assert warnings == [  # one line at 12 (or 1,000) clusters, not one each
        "TLS certificate verification is disabled for 12 cluster(s): https://127.0.0.1:9,"
        " https://127.0.0.1:10, https://127.0.0.1:11, https://127.0.0.1:12, https://127.0.0.1:13"
        " and 7 more"
    ]
    await exporter.stop()


async def test_akv_error_answer_keeps_the_last_known_configurations(fake_ontap, tmp_path):
    clock = Clock()
    fake_ontap.records = [akv_record(reachable=False)]
    exporter = exporter_with_clock(config_for(tmp_path, fake_ontap.url), clock)
    first = (await exporter.poller.poll_all())["c0"]
    assert first.refused == {}

    async def refused(request):
        if request.path == "/api/cluster":
            return web.json_response(fake_ontap.cluster)
        body = {"error": {"code": "65537549", "message": "unreachable from one or more nodes."}}
        return web.json_response(body, status=500)

    fake_ontap.handler = refused
    clock.now += 60
    second = (await exporter.poller.poll_all())["c0"]
    assert second.up and second.last.ok
    assert second.refused["akv"].code == "65537549"
    assert second.key_managers == first.key_managers
    assert second.key_managers_as_of == first.key_managers_as_of
    assert second.unreachable_since == first.unreachable_since
    body = exporter.exposition.scrape()
    assert find(body, "ontap_akv_get_error_info", cluster="c0", code="65537549") == [1.0]
    assert find(body, "akv_exporter_cluster_poll_errors_total", reason="ontap_error") == [0.0]
    await exporter.stop()


@pytest.mark.slow
async def test_the_first_full_view_freezes_the_heap_and_a_reload_that_drops_refreshes_it(
    make_ontap, tmp_path, monkeypatch
):
    """What lives at the first full view is out of the collector's sight until the exporter
    stops; a reload that closed clients collects (and freezes) again."""
    import gc

    import akv_exporter.heap as heap

    refreshed = []
    real_refresh = heap.refresh
    monkeypatch.setattr(heap, "refresh", lambda: (refreshed.append(1), real_refresh()))
    a, b = await make_ontap(), await make_ontap()
    exporter = Exporter(config_for(tmp_path, a.url, b.url), process_metrics=False)
    await exporter.start()
    try:
        await asyncio.wait_for(exporter.wait_ready(), 30)  # hang guard
        while gc.get_freeze_count() == 0:
            await asyncio.sleep(0.01)
        config_for(tmp_path, a.url, b.url)  # the same clusters: nothing closed, no collection
        assert await exporter.reload() is None
        assert refreshed == []
        config_for(tmp_path, a.url)
        assert await exporter.reload() is None
        assert refreshed == [1] and gc.get_freeze_count() > 0
    finally:
        await exporter.stop()
    assert gc.get_freeze_count() == 0
