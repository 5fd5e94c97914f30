"""Sharding: the stable hash, the partition, the flags, the shard metrics and /probe's refusal."""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys

import aiohttp
import pytest

from akv_exporter.cli import build_parser, main, shard_of_args
from akv_exporter.exporter import Exporter
from akv_exporter.shard import UNSHARDED, Shard, hashmod, ordinal_from_hostname
from tests.helpers.configs import cluster_config, config_for
from tests.helpers.exporter import started
from tests.helpers.exposition import find

# MD5's last 8 bytes as an unsigned big-endian integer: what Prometheus' hashmod reduces.
PINNED = {
    "cluster-a": 5764202587329187232,
    "cluster-b": 2816735631910361673,
    "ontap-c.example.com": 9168939205281306278,
    "10.0.0.10": 9138202231047667376,
    "ü-cluster": 15323636431369990045,
}


def test_hash_is_pinned_so_no_release_moves_a_cluster_to_another_shard():
    for key, value in PINNED.items():
        for modulus in (1, 2, 3, 7, 1000):
            assert hashmod(key, modulus) == value % modulus, (key, modulus)


@pytest.mark.slow
def test_hash_is_the_same_in_other_processes_whatever_their_hash_seed():
    keys = [f"cluster-{i}" for i in range(50)]
    expected = [hashmod(key, 7) for key in keys]
    program = (
        "import sys; from akv_exporter.shard import hashmod; "
        "print(','.join(str(hashmod(k, 7)) for k in sys.argv[1:]))"
    )
    for seed in ("0", "1", "random"):
        answer = subprocess.run(
            [sys.executable, "-c", program, *keys],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        )
        assert answer.stdout.strip() == ",".join(map(str, expected)), seed


def test_every_cluster_belongs_to_exactly_one_shard_whatever_the_file_order(tmp_path):
    urls = [f"http://127.0.0.1:{10000 + i}" for i in range(90)]
    named = config_for(tmp_path, *urls)
    unnamed = config_for(tmp_path, *urls, names=False)  # keyed by address
    for config in (named, unnamed):
        shards = [Shard(i, 3) for i in range(3)]
        polled = [[c.key for c in shard.select(config).clusters] for shard in shards]
        flat = [key for keys in polled for key in keys]
        assert sorted(flat) == sorted(c.key for c in config.clusters)  # each exactly once
        assert all(len(keys) > 10 for keys in polled)  # and spread, not all on one shard
        shuffled = list(config.clusters)
        random.Random(3).shuffle(shuffled)
        reordered = config.__class__(**{**_fields(config), "clusters": tuple(shuffled)})
        again = [{c.key for c in shard.select(reordered).clusters} for shard in shards]
        assert again == [set(keys) for keys in polled]


def _fields(config) -> dict:
    return {name: getattr(config, name) for name in config.__dataclass_fields__}


def test_a_cluster_is_sharded_by_its_name_else_its_address():
    named = cluster_config("https://10.0.0.10:443", name="cluster-a", address="10.0.0.10")
    unnamed = cluster_config("https://10.0.0.10:443", address="10.0.0.10")
    assert Shard(0, 3).of(named) == PINNED["cluster-a"] % 3
    assert Shard(0, 3).of(unnamed) == PINNED["10.0.0.10"] % 3
    assert UNSHARDED.of(named) == 0 and UNSHARDED.owns(named)


def test_each_shard_keeps_its_own_state_file(tmp_path):
    config = config_for(tmp_path, "http://127.0.0.1:1")
    assert UNSHARDED.select(config) is config
    assert Shard(2, 3).select(config).state_file == tmp_path / "state.shard-2-of-3.json"


def test_shard_must_lie_within_the_total():
    with pytest.raises(ValueError, match=r"shard 3 is outside 0\.\.2 \(--total-shards 3\)"):
        Shard(3, 3)
    with pytest.raises(ValueError, match="at least 1"):
        Shard(0, 0)


@pytest.mark.parametrize(
    ("hostname", "ordinal"),
    [
        ("akv-exporter-2", 2),
        ("akv-exporter-b-12", 12),
        ("akv-exporter-0.akv-exporter.monitoring.svc.cluster.local", 0),
    ],
)
def test_ordinal_comes_from_the_statefulset_pod_host_name(hostname, ordinal):
    assert ordinal_from_hostname(hostname) == ordinal


def test_a_host_name_without_an_ordinal_is_refused_naming_it():
    with pytest.raises(ValueError, match="'monitoring-host' does not end in -<ordinal>"):
        ordinal_from_hostname("monitoring-host")


def _run_args(*flags: str):
    return build_parser().parse_args(["run", "--config", "x.yml", *flags])


def test_sharding_flags_give_the_shard_or_one_line_naming_the_missing_flag():
    assert shard_of_args(_run_args()) == UNSHARDED
    assert shard_of_args(_run_args("--shard", "1", "--total-shards", "3")) == Shard(1, 3)
    from_host = _run_args("--shard-from-hostname", "--total-shards", "4")
    assert shard_of_args(from_host, hostname="akv-exporter-3") == Shard(3, 4)
    with pytest.raises(ValueError, match="--shard needs --total-shards"):
        shard_of_args(_run_args("--shard", "1"))
    with pytest.raises(ValueError, match="--shard-from-hostname needs --total-shards"):
        shard_of_args(_run_args("--shard-from-hostname"))
    with pytest.raises(ValueError, match="--total-shards needs --shard"):
        shard_of_args(_run_args("--total-shards", "3"))
    with pytest.raises(ValueError, match=r"outside 0\.\.3"):
        shard_of_args(from_host, hostname="akv-exporter-4")


def test_run_refuses_bad_sharding_flags_with_exit_2_before_reading_the_file(capsys):
    assert main(["run", "--config", "/nonexistent.yml", "--shard", "5", "--total-shards", "2"]) == 2
    error = capsys.readouterr().err.strip()
    assert error == "akv-exporter run: shard 5 is outside 0..1 (--total-shards 2)"
    with pytest.raises(SystemExit):  # argparse: --shard and --shard-from-hostname exclude
        build_parser().parse_args(["run", "--config", "x", "--shard", "1", "--shard-from-hostname"])


@pytest.mark.slow
async def test_a_shard_serves_its_metrics_status_and_refuses_another_shards_probe(
    make_ontap, tmp_path
):
    ontaps = [await make_ontap() for _ in range(8)]
    config = config_for(tmp_path, *(o.url for o in ontaps))
    shard = Shard(1, 3)
    mine = {c.key for c in config.clusters if shard.owns(c)}
    theirs = {c.key: shard.of(c) for c in config.clusters if not shard.owns(c)}
    assert mine and theirs  # the 8 names c0..c7 spread over more than one shard
    exporter, runner, base = await started(config, process_metrics=False, shard=shard)
    try:
        await asyncio.wait_for(exporter.wait_ready(), 10)
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base}/metrics") as response:
                body = await response.read()
            async with http.get(f"{base}/api/v1/status") as response:
                status = await response.json()
            async with http.get(f"{base}/") as response:
                page = await response.text()
            foreign, owner = next(iter(theirs.items()))
            async with http.get(f"{base}/probe", params={"target": foreign}) as response:
                refused = (response.status, await response.text())
            own = next(iter(mine))
            async with http.get(f"{base}/probe", params={"target": own}) as response:
                probed = (response.status, await response.read())
    finally:
        await runner.cleanup()
        await exporter.stop()
    assert find(body, "akv_exporter_shard_ordinal") == [1.0]
    assert find(body, "akv_exporter_total_shards") == [3.0]
    polled = {cluster for cluster in mine if find(body, "akv_exporter_cluster_up", cluster=cluster)}
    assert polled == mine
    assert not any(find(body, "akv_exporter_cluster_up", cluster=c) for c in theirs)
    assert status["exporter"]["shard"] == {"ordinal": 1, "total": 3}
    assert status["exporter"]["configured_clusters"] == 8
    assert {c["name"] for c in status["clusters"]} == mine
    assert f"shard 1 of 3</b> ({len(mine)} of 8 configured clusters)" in page
    assert refused == (
        400,
        f'target "{foreign}" belongs to shard {owner} of 3; this exporter is shard 1 of 3\n',
    )
    assert probed[0] == 200 and find(probed[1], "akv_exporter_probe_success") == [1.0]
    # Only this shard's clusters were ever asked anything.
    for key, ontap in zip((c.key for c in config.clusters), ontaps, strict=True):
        assert bool(ontap.requests) == (key in mine), key


async def test_an_unsharded_exporter_says_shard_0_of_1_even_after_a_failed_reload(
    fake_ontap, tmp_path
):
    exporter = Exporter(config_for(tmp_path, fake_ontap.url), process_metrics=False)
    body = exporter.exposition.scrape()
    assert find(body, "akv_exporter_shard_ordinal") == [0.0]
    assert find(body, "akv_exporter_total_shards") == [1.0]
    exporter.exposition.set_reload(successful=False, timestamp=None)
    assert find(exporter.exposition.scrape(), "akv_exporter_total_shards") == [1.0]
