"""What ONTAP is asked, counted at ONTAP's side: per release, only the key managers it has.

A small ONTAP stand-in on loopback answers each release's endpoints as NetApp's REST reference
dates them (404 "API not found" for a path the release does not have) and records every request.
Key stores (9.10.1+) tell the poller which key managers a cluster has; before 9.10.1, or while
key-stores cannot be read, every endpoint the release has is asked once per inventory interval
and, in between, only those that had configurations.
"""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web

from akv_exporter.exporter import Exporter
from tests.helpers.configs import config_for
from tests.helpers.exporter import Clock
from tests.helpers.exposition import find
from tests.helpers.ontap import akv_record

AKV = "/api/security/azure-key-vaults"
GCP = "/api/security/gcp-kms"
AWS = "/api/security/aws-kms"
BARBICAN = "/api/security/barbican-kms"
KEY_MANAGERS = "/api/security/key-managers"
KEY_STORES = "/api/security/key-stores"
# Each path and the release NetApp's reference first has it in (gcp-kms: see ontap/gcp_kms.py).
SINCE = {
    AKV: (9, 8),
    GCP: (9, 10),
    AWS: (9, 12),
    BARBICAN: (9, 17),
    KEY_MANAGERS: (9, 6),
    KEY_STORES: (9, 10),
}
SLOW = ("/api/security/key-manager-configs", "/api/storage/volumes", "/api/support/ems/events")
KIND_PATH = {
    "akv": AKV,
    "gcp": GCP,
    "aws": AWS,
    "barbican": BARBICAN,
    "kmip": KEY_MANAGERS,
    "okm": KEY_MANAGERS,
}


def gcp_record() -> dict[str, Any]:
    return {
        "uuid": "f72098a2-e908-11ea-bd56-005056bb4222",
        "svm": {"name": "vs_gcp", "uuid": "s1"},
        "scope": "svm",
        "google_reachability": {"reachable": True, "code": "0", "message": ""},
        "state": {"cluster_state": True, "code": "0", "message": ""},
        "ekmip_reachability": [
            {"node": {"name": "n1", "uuid": "u1"}, "reachable": True, "code": "0", "message": ""}
        ],
    }


def kmip_record() -> dict[str, Any]:
    return {
        "uuid": "ac305d46-aef4-11e9-ad3c-005056bb7636",
        "scope": "cluster",
        "status": {"code": 65537200, "message": "No action needed at this time."},
        "external": {"servers": [{"server": "10.0.0.1:5696"}]},
    }


class Ontap:
    """One release's endpoints; ``records`` by path; every request recorded."""

    def __init__(self, release: tuple[int, int], records: dict[str, list]):
        self.release = release
        self.records = records
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.key_stores_status = 200  # another status makes key-stores fail
        self.forbidden: set[str] = set()  # paths the user's role does not have
        self.url = ""

    def key_stores(self) -> list[dict[str, Any]]:
        kinds = {kind: path for kind, path in KIND_PATH.items() if self.records.get(path)}
        stores = []
        for kind, path in kinds.items():
            if path == KEY_MANAGERS:
                kmip = any("external" in r for r in self.records[path])
                if (kind == "kmip") != kmip:
                    continue
            stores.append({"uuid": f"ks-{kind}", "type": kind, "location": "external"})
        return stores

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append((request.path, dict(request.query)))
        if request.path == "/api/cluster":
            major, minor = self.release
            version = {"generation": major, "major": minor, "minor": 1, "full": "NetApp Release"}
            return web.json_response({"name": "c", "uuid": "cu", "version": version})
        if request.path in self.forbidden:
            return web.json_response(
                {"error": {"message": "not authorized for that command", "code": "6"}},
                status=403,
            )
        since = SINCE.get(request.path)
        if request.path in SLOW or since is None or since > self.release:
            return web.json_response(
                {"error": {"message": "API not found", "code": "4"}}, status=404
            )
        if request.path == KEY_STORES:
            if self.key_stores_status != 200:
                return web.json_response(
                    {"error": {"message": "internal error", "code": "1"}},
                    status=self.key_stores_status,
                )
            records = self.key_stores()
        else:
            records = self.records.get(request.path, [])
        return web.json_response({"records": records, "num_records": len(records)})

    def asked(self, path: str) -> list[dict[str, str]]:
        return [query for asked, query in self.requests if asked == path]


@pytest.fixture
async def ontap_factory():
    runners = []

    async def make(release: tuple[int, int], records: dict[str, list]) -> Ontap:
        ontap = Ontap(release, records)
        app = web.Application()
        app.router.add_get("/{tail:.*}", ontap.handle)
        runner = web.AppRunner(app, shutdown_timeout=0.2)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        runners.append(runner)
        host, port = runner.addresses[0][:2]
        ontap.url = f"http://{host}:{port}"
        return ontap

    yield make
    for runner in runners:
        await runner.cleanup()


async def _polls(tmp_path, ontap: Ontap, count: int, every: float = 60.0) -> Exporter:
    """Poll the cluster ``count`` times, ``every`` seconds apart, inventory every 300 s."""
    config = config_for(tmp_path, ontap.url, poll="  inventory_interval: 300s\n")
    clock = Clock()
    exporter = Exporter(config, process_metrics=False)
    exporter.poller._clock = clock
    try:
        for _ in range(count):
            await exporter.poll_all()
            clock.now += every
    finally:
        await exporter.stop()
    return exporter


@pytest.mark.parametrize("release", [(9, 10), (9, 14), (9, 17)])
async def test_an_akv_only_cluster_costs_one_more_request_per_inventory_interval(
    tmp_path, ontap_factory, release
):
    ontap = await ontap_factory(release, {AKV: [akv_record()]})
    await _polls(tmp_path, ontap, count=10)  # 600 s: two inventory intervals
    assert len(ontap.asked(AKV)) == 10  # as before: one per poll
    assert len(ontap.asked(KEY_STORES)) == 2  # one per inventory interval
    others = [p for p, _ in ontap.requests if p not in (AKV, KEY_STORES, "/api/cluster", *SLOW)]
    assert others == []


async def test_a_cluster_is_asked_only_for_the_key_managers_its_key_stores_list(
    tmp_path, ontap_factory
):
    ontap = await ontap_factory((9, 17), {GCP: [gcp_record()], KEY_MANAGERS: [kmip_record()]})
    exporter = await _polls(tmp_path, ontap, count=3)
    assert len(ontap.asked(GCP)) == 3 and len(ontap.asked(KEY_MANAGERS)) == 3
    assert len(ontap.asked(AWS)) == 0 and len(ontap.asked(BARBICAN)) == 0
    # The first poll asks azure-key-vaults beside GET /api/cluster, as every release has it.
    assert len(ontap.asked(AKV)) == 1
    (snapshot,) = exporter.snapshots().values()
    assert sorted(s.kind for s in snapshot.key_managers) == ["gcp", "kmip"]


@pytest.mark.parametrize("release", [(9, 8), (9, 9)])
async def test_before_key_stores_every_endpoint_the_release_has_is_asked_each_inventory(
    tmp_path, ontap_factory, release
):
    ontap = await ontap_factory(release, {AKV: [akv_record()]})
    await _polls(tmp_path, ontap, count=10)
    assert len(ontap.asked(AKV)) == 10
    assert len(ontap.asked(KEY_MANAGERS)) == 2  # no configurations: asked per inventory
    assert ontap.asked(KEY_STORES) == [] and ontap.asked(GCP) == [] and ontap.asked(AWS) == []


async def test_while_key_stores_cannot_be_read_every_endpoint_of_the_release_is_asked(
    tmp_path, ontap_factory
):
    ontap = await ontap_factory((9, 13), {AKV: [akv_record()]})
    ontap.key_stores_status = 500
    exporter = await _polls(tmp_path, ontap, count=5)
    for path in (GCP, AWS, KEY_MANAGERS):
        assert len(ontap.asked(path)) == 1, path
    assert ontap.asked(BARBICAN) == []  # 9.17.1's, never a 9.13 cluster's
    (snapshot,) = exporter.snapshots().values()
    assert snapshot.up  # key-stores failing is no failed poll


@pytest.mark.parametrize("release", [(9, 8), (9, 12), (9, 13), (9, 16), (9, 17)])
async def test_no_request_to_key_managers_carries_a_wildcard_or_onboard(
    tmp_path, ontap_factory, release
):
    ontap = await ontap_factory(release, {AKV: [akv_record()], KEY_MANAGERS: [kmip_record()]})
    await _polls(tmp_path, ontap, count=3, every=400)
    asked = ontap.asked(KEY_MANAGERS)
    assert len(asked) == 3
    for query in asked:
        fields = query.get("fields", "")
        names = fields.split(",")
        assert "*" not in fields and not any(n.startswith("onboard") for n in names), query
        assert "onboard" not in "".join(f"{k}={v}" for k, v in query.items())


async def test_a_role_made_before_the_other_key_managers_still_polls_akv(tmp_path, ontap_factory):
    # The README's role of earlier releases: azure-key-vaults, but none of the new endpoints.
    ontap = await ontap_factory((9, 14), {AKV: [akv_record()]})
    ontap.forbidden = {KEY_STORES, GCP, AWS, KEY_MANAGERS}
    exporter = await _polls(tmp_path, ontap, count=5)
    (snapshot,) = exporter.snapshots().values()
    assert snapshot.up and [s.kind for s in snapshot.key_managers] == ["akv"]
    assert len(ontap.asked(AKV)) == 5
    for path in (KEY_STORES, GCP, AWS, KEY_MANAGERS):
        assert len(ontap.asked(path)) == 1, path  # once per inventory interval


async def test_a_role_without_azure_key_vaults_still_fails_the_poll(tmp_path, ontap_factory):
    ontap = await ontap_factory((9, 14), {AKV: [akv_record()]})
    ontap.forbidden = {AKV}
    exporter = await _polls(tmp_path, ontap, count=1)
    (snapshot,) = exporter.snapshots().values()
    assert not snapshot.up and snapshot.last.reason == "forbidden"


async def test_a_failing_clusters_key_stores_go_stale_with_its_key_managers(
    tmp_path, ontap_factory
):
    ontap = await ontap_factory((9, 17), {AKV: [akv_record()]})
    config = config_for(tmp_path, ontap.url)
    clock = Clock()
    exporter = Exporter(config, process_metrics=False)
    exporter.poller._clock = clock
    try:
        await exporter.poll_all()
        assert find(exporter.scrape(), "ontap_key_store_info", type="akv") == [1]
        ontap.forbidden = {"/api/cluster", AKV, KEY_STORES}  # the cluster stops answering
        clock.now += 60
        await exporter.poll_all()
        assert find(exporter.scrape(), "ontap_key_store_info", type="akv") == [1]  # last known
        clock.now += 180  # poll.stale_after, since the last good answer
        await exporter.poll_all()
        body = exporter.scrape()
        assert find(body, "akv_exporter_cluster_up") == [0]
        assert find(body, "ontap_key_store_info") == [] and find(body, "ontap_akv_info") == []
    finally:
        await exporter.stop()
