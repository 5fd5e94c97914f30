"""What each key manager costs ONTAP, counted by the simulator's own request log.

docs/polling.md's "ONTAP requests per cluster per hour" table, end to end: the real exporter
polls simulated HTTPS clusters for one hour of its default schedule (poll.interval 60 s,
inventory_interval 5 min, events_interval 60 s) on a clock the test moves, and the simulator
counts what each cluster was asked.
"""

from __future__ import annotations

import time

import aiohttp

from tests.helpers.exporter import Clock, exporter_with_clock
from tests.helpers.fleet import simulated_fleet
from tests.helpers.simulator import control

ROUNDS = 60  # one hour of poll.interval 60 s
SCENARIO = {
    "clusters": [
        {"name": "akv-only-01", "version": "9.16.1"},
        {
            "name": "akv-gcp-01",
            "version": "9.16.1",
            "gcp_kms": [{"svm": "svm_analytics"}],
        },
        {
            "name": "akv-kmip-01",
            "version": "9.15.1",
            "key_managers": [{"type": "kmip", "svm": "svm_secure", "servers": ["10.0.0.5"]}],
        },
    ]
}


def per_endpoint(log: dict[str, dict[str, int]]) -> dict[str, int]:
    """Return requests per endpoint (every query shape of it together)."""
    return {endpoint: sum(shapes.values()) for endpoint, shapes in log.items()}


async def test_an_hour_costs_ontap_157_requests_for_akv_and_60_more_per_other_key_manager(
    tmp_path,
):
    async with simulated_fleet(tmp_path, SCENARIO) as (simulator, config):
        clock = Clock(time.time())
        exporter = exporter_with_clock(config, clock)
        try:
            for _ in range(ROUNDS):
                await exporter.poll_all()
                clock.now += 60
            async with aiohttp.ClientSession() as session:
                status, log = await control(session, simulator, "GET", "/simulator/requests")
        finally:
            await exporter.stop()
    assert status == 200
    akv_only = per_endpoint(log["akv-only-01"])
    assert akv_only == {
        "/api/cluster": 1,  # the identity, hourly
        "/api/security/azure-key-vaults": 60,  # every poll.interval
        "/api/support/ems/events": 60,  # every events_interval
        "/api/security/key-manager-configs": 12,  # every inventory_interval
        "/api/storage/volumes": 12,
        # Which key managers the cluster has: the one request more per inventory_interval an
        # AKV-only cluster costs than when AKV was all the exporter watched (145 an hour).
        "/api/security/key-stores": 12,
    }
    assert sum(akv_only.values()) == 157
    # Each other key manager the key stores list: its endpoint every poll.interval, no more.
    assert per_endpoint(log["akv-gcp-01"]) == akv_only | {"/api/security/gcp-kms": 60}
    assert per_endpoint(log["akv-kmip-01"]) == akv_only | {"/api/security/key-managers": 60}
