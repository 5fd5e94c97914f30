"""Poll rounds measured in this process: the exporter's poller and its baselines.

Each round polls every simulated cluster once (the simulator runs in its own process, so the
CPU time measured here is the poller's alone). The first round opens every TLS connection; the
later ones reuse them, as a running exporter does between polls.
"""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import aiohttp

from akv_exporter.exporter import Exporter
from akv_exporter.ontap.cluster import release_of
from akv_exporter.ontap.key_manager_registry import BY_KIND
from bench.fleet import PASSWORD, USERNAME, SimulatedCluster


@dataclass(frozen=True)
class Round:
    """One poll round: wall-clock seconds and this process's CPU seconds."""

    wall: float
    cpu: float


async def timed_round(poll_round) -> Round:
    """Run one poll round (a coroutine function) and return what it took."""
    coroutine = poll_round()
    wall, cpu = time.perf_counter(), time.process_time()
    await coroutine
    return Round(time.perf_counter() - wall, time.process_time() - cpu)


async def exporter_round(exporter: Exporter, concurrency: int) -> None:
    """One round through the exporter's poll of each cluster: request, parse, snapshot, render.

    Only the AKV poll, the requests the bare loop makes too (the slow polls of policy, volumes
    and events come on their own schedules and are not part of this comparison).
    """
    gate = asyncio.Semaphore(concurrency)

    async def one(key: str):
        async with gate:
            return await exporter.poll(key)

    snapshots = await asyncio.gather(*(one(key) for key in exporter.snapshots()))
    down = [s.last.error for s in snapshots if not s.up]
    if down:
        raise SystemExit(f"bench: {len(down)} clusters failed to poll, e.g. {down[0]}")


class BareLoop:
    """The least a poller can do: the same GETs with aiohttp and json.loads, nothing else."""

    def __init__(
        self, clusters: list[SimulatedCluster], context: ssl.SSLContext, concurrency: int
    ) -> None:
        query = "&max_records=1000&return_timeout=30"
        self.urls = [
            f"{c.url}/api/security/azure-key-vaults?fields={c.fields}{query}" for c in clusters
        ]
        # A cluster with another key manager is asked its endpoint too, as the exporter asks it
        # every poll (its key stores list it): the same GETs, or the comparison is not fair.
        for c in clusters:
            release = release_of(c.version)
            endpoints = {BY_KIND[k].endpoint.path: BY_KIND[k].endpoint for k in c.others}
            self.urls += [
                f"{c.url}{endpoint.path}?fields={endpoint.fields(release)}{query}"
                for endpoint in endpoints.values()
            ]
        self.gate = asyncio.Semaphore(concurrency)
        connector = aiohttp.TCPConnector(
            limit=0, limit_per_host=1, ssl=context, keepalive_timeout=120
        )
        auth = "Basic " + base64.b64encode(f"{USERNAME}:{PASSWORD}".encode()).decode()
        self.session = aiohttp.ClientSession(connector=connector, headers={"Authorization": auth})

    async def _one(self, url: str) -> int:
        async with self.gate, self.session.get(url) as response:
            body = json.loads(await response.read())
            if response.status != 200:
                raise SystemExit(f"bench: the bare loop got HTTP {response.status} from {url}")
            return len(body["records"])

    async def round(self) -> None:
        await asyncio.gather(*(self._one(url) for url in self.urls))

    async def close(self) -> None:
        await self.session.close()


def netapp_ontap_rounds(
    clusters: list[SimulatedCluster], concurrency: int, rounds: int
) -> list[Round]:
    """NetApp's own library (requests): one HostConnection per cluster, a thread per request."""
    from netapp_ontap import HostConnection
    from netapp_ontap.resources import AzureKeyVault

    warnings.filterwarnings("ignore")  # urllib3's InsecureRequestWarning: verify is off below
    connections = {}
    for cluster in clusters:
        host, port = cluster.url.removeprefix("https://").rsplit(":", 1)
        connections[cluster.name] = HostConnection(
            host, username=USERNAME, password=PASSWORD, verify=False, port=int(port)
        )

    def one(cluster: SimulatedCluster) -> int:
        records = AzureKeyVault.get_collection(
            fields=cluster.fields, connection=connections[cluster.name]
        )
        return len(list(records))

    samples = []
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        for _ in range(rounds):
            wall, cpu = time.perf_counter(), time.process_time()
            list(pool.map(one, clusters))
            samples.append(Round(time.perf_counter() - wall, time.process_time() - cpu))
    for connection in connections.values():
        connection.session.close()
    return samples
