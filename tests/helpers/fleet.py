"""The simulated fleet and an exporter polling it, in a background event loop, for
synchronous tests (Prometheus, browsers, Alertmanager end to end)."""

from __future__ import annotations

import asyncio
import contextlib
import io
import threading
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from aiohttp import web

from akv_exporter.config import Config, load_config
from akv_exporter.exporter import Exporter
from akv_exporter.web.app import serve
from tests.helpers.loopback import STARTUP_SECONDS, http_json, wait_until

T = TypeVar("T")


class BackgroundLoop:
    """An asyncio loop in a daemon thread, so synchronous tests can drive async servers."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@dataclass
class Fleet:
    """The simulated fleet and the exporter polling it, running in a background loop."""

    loop: BackgroundLoop
    simulator: Any
    exporter: Any
    runner: web.AppRunner
    exporter_url: str

    @property
    def target(self) -> str:
        return self.exporter_url.removeprefix("http://")

    def clusters(self) -> list[dict[str, Any]]:
        return http_json(f"{self.simulator.control_url}/simulator/clusters")

    def patch(self, cluster: str, body: dict[str, Any]) -> None:
        http_json(f"{self.simulator.control_url}/simulator/clusters/{cluster}", "PATCH", body)

    def reset(self, cluster: str) -> None:
        http_json(f"{self.simulator.control_url}/simulator/clusters/{cluster}/reset", "POST")

    def clock(self, **body: float) -> dict[str, Any]:
        """Change the simulator's clock for ONTAP's key-manager timers: factor=F, advance_s=S."""
        return http_json(f"{self.simulator.control_url}/simulator/clock", "PATCH", body)

    def log_event(self, cluster: str, body: dict[str, Any]) -> dict[str, Any]:
        """Append an EMS event to a simulated cluster's log (docs/simulator.md)."""
        url = f"{self.simulator.control_url}/simulator/clusters/{cluster}/events"
        return http_json(url, "POST", body)

    def stop(self) -> None:
        async def stop() -> None:
            await self.runner.cleanup()
            await self.exporter.stop()
            await self.simulator.stop()

        self.loop.run(stop())
        self.loop.close()


def release(cluster: dict) -> tuple[int, ...]:
    """Return the ONTAP release of one of the simulator's clusters: "9.14.1" -> (9, 14, 1)."""
    return tuple(int(part) for part in cluster["version"].split("."))


def start_fleet(
    directory: Path, clusters: int, seed: int, interval: float = 1.0, clock_factor: float = 1.0
) -> Fleet:
    """Start a simulated HTTPS fleet and an exporter polling it every ``interval`` seconds.

    ``clock_factor`` runs the simulator's ONTAP key-manager timers (health checks, the 60
    minutes before encrypted volumes go offline) that many times as fast.
    """
    import io
    from dataclasses import replace

    from ontap_simulator import SimulatorOptions, start_simulator

    from akv_exporter.demo import demo_config

    loop = BackgroundLoop()

    async def start() -> Fleet:
        simulator = await start_simulator(
            SimulatorOptions(
                clusters=clusters,
                seed=seed,
                control_port=0,
                clock_factor=clock_factor,
                out=io.StringIO(),
            )
        )
        config = demo_config(simulator, "127.0.0.1:0", interval, directory / "state.json")
        # Two datacenters, so the dashboards' datacenter variable has something to select.
        labelled = tuple(
            replace(cluster, labels=(("datacenter", f"dc{index % 2 + 1}"),))
            for index, cluster in enumerate(config.clusters)
        )
        # The slow polls (volumes, policy, events) as often as the AKV poll: tests want them now.
        poll = replace(
            config.poll,
            timeout=min(5.0, interval * 3),
            inventory_interval=interval,
            events_interval=interval,
        )
        config = replace(config, clusters=labelled, poll=poll)
        exporter = Exporter(config)
        await exporter.start()
        runner = await serve(exporter, "127.0.0.1", 0)
        url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        return Fleet(loop, simulator, exporter, runner, url)

    fleet = loop.run(start())
    wait_until(lambda: fleet.exporter.ready, "the exporter's first round", STARTUP_SECONDS)
    return fleet


# --- a simulated fleet from a scenario, in the test's own event loop -----------------------------


@contextlib.asynccontextmanager
async def simulated_fleet(tmp_path: Path, scenario: dict[str, Any]) -> AsyncIterator[tuple]:
    """Yield (the running simulator, a configuration naming each of its clusters)."""
    from ontap_simulator import SimulatorOptions, start_simulator

    (tmp_path / "scenario.yml").write_text(yaml.safe_dump(scenario))
    simulator = await start_simulator(
        SimulatorOptions(
            clusters=0, scenario=tmp_path / "scenario.yml", control_port=0, out=io.StringIO()
        )
    )
    try:
        yield simulator, _config(tmp_path, simulator)
    finally:
        await simulator.stop()


def _config(tmp_path: Path, simulator: Any) -> Config:
    config_file = tmp_path / "akv.yml"
    config_file.write_text(
        yaml.safe_dump(
            {
                "poll": {"interval": "60s", "timeout": "20s"},
                "state_file": str(tmp_path / "state.json"),
                "defaults": {
                    "username": "admin",
                    "password": "netapp1!",
                    "tls": {"ca_file": str(simulator.ca_file)},
                },
                "clusters": [{"name": c.name, "address": c.url} for c in simulator.clusters],
            }
        )
    )
    return load_config(config_file)
