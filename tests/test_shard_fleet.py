"""Three shards over 300 simulated clusters, each shard its own `akv-exporter run` process.

Proven at the simulator's side: it counts every authenticated request by User-Agent, and a
sharded exporter names its shard there. Every configured cluster is asked by exactly one shard,
the one its stable hash names; a reload that drops, adds and reorders clusters keeps that.
"""

from __future__ import annotations

import io
import random

import pytest

from akv_exporter import __version__
from akv_exporter.shard import hashmod
from tests.helpers.exposition import find, samples
from tests.helpers.fleet import BackgroundLoop
from tests.helpers.loopback import http_json, wait_until
from tests.helpers.processes import fleet_config_file, start_exporter

pytestmark = pytest.mark.slow  # processes, fleets, real time: not in make check

SHARDS = 3
CLUSTERS = 300
CONFIGURED = 270  # the other 30 come in with the reload


def agent(ordinal: int) -> str:
    return f"akv-exporter/{__version__} (shard {ordinal} of {SHARDS})"


@pytest.fixture(scope="module")
def simulator():
    from ontap_simulator import SimulatorOptions, start_simulator

    loop = BackgroundLoop()
    running = loop.run(
        start_simulator(
            SimulatorOptions(clusters=CLUSTERS, seed=11, control_port=0, out=io.StringIO())
        )
    )
    try:
        yield running
    finally:
        loop.run(running.stop())
        loop.close()


def clients(simulator) -> dict[str, dict[str, int]]:
    """Return the simulator's count of authenticated requests by cluster and User-Agent."""
    listed = http_json(f"{simulator.control_url}/simulator/clusters")
    return {cluster["name"]: cluster["clients"] for cluster in listed}


def requests_since(simulator, names, before: dict[str, dict[str, int]]) -> dict[str, dict]:
    """Return, per cluster of ``names``, the requests by User-Agent since ``before``."""
    now = clients(simulator)
    out = {}
    for name in names:
        earlier = before.get(name, {})
        out[name] = {
            ua: n - earlier.get(ua, 0) for ua, n in now[name].items() if n > earlier.get(ua, 0)
        }
    return out


def owner(name: str, address: str, unnamed: bool) -> int:
    return hashmod(address if unnamed else name, SHARDS)


def test_three_shards_poll_every_cluster_exactly_once_across_a_reload(simulator, tmp_path):
    names = [cluster.name for cluster in simulator.clusters]
    urls = {cluster.name: cluster.url for cluster in simulator.clusters}
    first = names[:CONFIGURED]
    # Every 5th cluster has no configured name: it is sharded by its address.
    config = fleet_config_file(tmp_path / "akv.yml", simulator, first, unnamed_every=5)
    unnamed = {name for index, name in enumerate(first) if index % 5 == 0}
    shards = []
    try:
        for ordinal in range(SHARDS):
            flags = ("--shard", str(ordinal), "--total-shards", str(SHARDS))
            log = tmp_path / f"shard-{ordinal}.log"
            shards.append(start_exporter(config, log, *flags, hash_seed=str(ordinal)))

        def every_cluster_asked(wanted, before):
            seen = requests_since(simulator, wanted, before)
            return seen if all(seen.values()) else None

        seen = wait_until(lambda: every_cluster_asked(first, {}), "every cluster polled", 120)
        for name in first:
            expected = agent(owner(name, urls[name], name in unnamed))
            assert set(seen[name]) == {expected}, (name, seen[name])
        counted = clients(simulator)
        assert all(counted[name] == {} for name in names[CONFIGURED:])
        counts = [sum(1 for n in first if agent(i) in seen[n]) for i in range(SHARDS)]
        assert sum(counts) == CONFIGURED and min(counts) > CONFIGURED / SHARDS / 2, counts
        for ordinal, shard in enumerate(shards):
            body = shard.metrics()
            assert find(body, "akv_exporter_shard_ordinal") == [float(ordinal)]
            assert find(body, "akv_exporter_total_shards") == [float(SHARDS)]

        # The reload: 30 clusters go, the 30 unconfigured ones come, the order is shuffled.
        second = names[30:]
        random.Random(5).shuffle(second)
        fleet_config_file(config, simulator, second, unnamed_every=5)
        unnamed = {name for index, name in enumerate(second) if index % 5 == 0}
        for shard in shards:
            shard.reload()
        before = clients(simulator)
        seen = wait_until(lambda: every_cluster_asked(second, before), "a round after reload", 120)
        for name in second:
            expected = agent(owner(name, urls[name], name in unnamed))
            assert set(seen[name]) == {expected}, (name, seen[name])
        gone = requests_since(simulator, names[:30], before)
        assert gone == {name: {} for name in names[:30]}

        # An unnamed cluster is labelled by ONTAP's name once known, else by its address.
        simulated = {**{url: name for name, url in urls.items()}, **{n: n for n in names}}
        polled = []
        for shard in shards:
            up = samples(shard.metrics())
            labels = {dict(pairs)["cluster"] for (m, pairs) in up if m == "akv_exporter_cluster_up"}
            polled.append({simulated[label] for label in labels})
        assert set().union(*polled) == set(second)
        assert sum(len(p) for p in polled) == len(second)  # disjoint
    finally:
        for shard in shards:
            shard.stop()
