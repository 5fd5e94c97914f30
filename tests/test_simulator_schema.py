"""The simulator's records against NetApp's own definitions: the OpenAPI schema and library."""

from __future__ import annotations

import asyncio
import io
import ssl
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import aiohttp
import jsonschema
import pytest
from netapp_ontap import HostConnection
from netapp_ontap.resources import AzureKeyVault, Cluster
from ontap_simulator import RunningSimulator, SimulatorOptions, start_simulator
from ontap_simulator.model import apply_patch

from akv_exporter.ontap.akv import fields_query
from tests.helpers.ontap import AKV_PATH, akv_schema, relax_9_8
from tests.helpers.simulator import all_pages


@pytest.fixture
async def fleet() -> AsyncIterator[RunningSimulator]:
    # 40 generated clusters with seed 3 include 9.8 clusters, inactive and cluster-scoped ones.
    options = SimulatorOptions(clusters=40, seed=3, out=io.StringIO())
    running = await start_simulator(options)
    yield running
    await running.stop()


def _patch_some_failures(running: RunningSimulator) -> None:
    # Failures too must validate: patch a few clusters through the control API's state path.
    for cluster in list(running.fleet)[:5]:
        patch = {
            "akvs": {
                "*": {
                    "azure_reachability": {"reachable": False},
                    "state": {"available": False},
                    "ekmip_reachability": {"*": {"reachable": False}},
                }
            }
        }
        cluster.set_state(apply_patch(cluster.state, patch))


@pytest.mark.parametrize("fields", ["**", "exporter"], ids=["all", "exporter"])
async def test_every_record_validates_against_netapp_schema(
    fleet: RunningSimulator, fields: str
) -> None:
    _patch_some_failures(fleet)
    validator = jsonschema.Draft4Validator(akv_schema())
    versions = {cluster.name: cluster.state.version for cluster in fleet.fleet}
    relaxed_clusters = set()
    seen = {"advanced": 0, "inactive": 0, "cluster_scope": 0}
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(ssl=_client_context(fleet))
    ) as session:
        for info in fleet.clusters:
            # "exporter": what the exporter asks a cluster of that release.
            query = fields if fields == "**" else fields_query(versions[info.name][:2])
            records, _ = await all_pages(
                session, info.url, f"{AKV_PATH}?fields={query}&max_records=2"
            )
            assert records
            for record in records:
                record, relaxed = relax_9_8(record)
                # The one relaxation: 9.8 clusters send integer codes and state.cluster_state.
                assert relaxed == (versions[info.name] < (9, 10, 0) and "state" in record)
                if relaxed:
                    relaxed_clusters.add(info.name)
                errors = sorted(validator.iter_errors(record), key=str)
                assert not errors, f"{info.name}: {errors[0].message} in {record}"
                seen["advanced"] += "state" in record
                seen["inactive"] += record.get("enabled") is False
                seen["cluster_scope"] += record["scope"] == "cluster"
    assert relaxed_clusters, "the fleet should include 9.8 clusters"
    assert all(seen.values()), seen


def _client_context(running: RunningSimulator) -> ssl.SSLContext:
    assert running.ca_file is not None
    return ssl.create_default_context(cafile=str(running.ca_file))


async def test_netapp_ontap_library_reads_advanced_fields_over_https(
    fleet: RunningSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # requests prefers REQUESTS_CA_BUNDLE over the session's CA: point it at the simulator's.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(fleet.ca_file))
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    info = next(
        c for c in fleet.clusters if fleet.fleet.clusters[c.name].state.version >= (9, 14, 0)
    )
    state = fleet.fleet.clusters[info.name].state
    url = urlsplit(info.url)

    def read() -> tuple[str, list[AzureKeyVault]]:
        connection = HostConnection(
            url.hostname,
            port=url.port,
            username=info.username,
            password=info.password,
            verify=True,
        )
        with connection:
            cluster = Cluster()
            cluster.get(fields="name,uuid,version")
            # max_records=1 makes the library follow every `_links.next`.
            vaults = list(
                AzureKeyVault.get_collection(
                    fields="state,azure_reachability,ekmip_reachability,svm,scope,name",
                    max_records=1,
                )
            )
        return cluster.name, vaults

    name, vaults = await asyncio.to_thread(read)
    assert name == info.name
    assert sorted(v.uuid for v in vaults) == sorted(a.uuid for a in state.akvs)
    active = [v for v in vaults if state.active(state.akv(v.uuid))]
    assert active
    for vault in active:
        assert vault.azure_reachability.reachable is True
        assert vault.state.code == "0"
        assert [e.node.name for e in vault.ekmip_reachability] == [n.name for n in state.nodes]
