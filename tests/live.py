"""Real processes on loopback for end-to-end tests: the simulated fleet and the exporter (in a
background event loop), Prometheus, Alertmanager, and a webhook receiver that the test runs.

Missing binaries fail the test (never skip it): `make test` installs Debian's packages.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
from aiohttp import web

from tests.conftest import require_binary

T = TypeVar("T")
STARTUP_SECONDS = 60.0


def free_port() -> int:
    """Return a port free on 127.0.0.1 now (for programs that cannot report a port 0 bind)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def fetch(url: str, timeout: float = 2) -> bytes:
    """Return the body of a GET of ``url``."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read()


def http_json(url: str, method: str = "GET", body: Any = None, timeout: float = 10) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        text = response.read()
    return json.loads(text) if text else None


def wait_until(condition: Callable[[], T], what: str, timeout: float, log: Path | None = None) -> T:
    """Return the first truthy value of ``condition()``; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = condition()
        except (OSError, ValueError, KeyError):
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            tail = log.read_text()[-3000:] if log and log.exists() else ""
            pytest.fail(f"timed out after {timeout:g}s waiting for {what}\n{tail}")
        time.sleep(0.2)


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
class Prometheus:
    """A running Prometheus and helpers for its HTTP API."""

    url: str
    log: Path
    process: subprocess.Popen | None = None

    def query(self, expr: str) -> dict[str, Any]:
        """Return the parsed answer of an instant query; HTTP errors come back as their body."""
        address = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        try:
            with urllib.request.urlopen(address, timeout=10) as response:
                return json.load(response)
        except urllib.error.HTTPError as error:
            return json.load(error)

    def values(self, expr: str) -> list[tuple[dict[str, str], float]]:
        answer = self.query(expr)
        assert answer["status"] == "success", (expr, answer)
        return [(item["metric"], float(item["value"][1])) for item in answer["data"]["result"]]

    def scalar(self, expr: str) -> float:
        (only,) = self.values(expr)
        return only[1]

    def stop(self) -> None:
        stop_process(self.process)


def stop_process(process: subprocess.Popen | None) -> None:
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _start_daemon(name: str, package: str, arguments: list[str], log: Path, port: int):
    """Start a Debian daemon on 127.0.0.1:``port``; return (url, process) once /-/ready is 200."""
    binary = require_binary(name, package)
    with log.open("wb") as output:
        process = subprocess.Popen(
            [binary, *arguments, f"--web.listen-address=127.0.0.1:{port}"],
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        if process.poll() is not None:
            pytest.fail(f"{name} exited ({process.returncode}):\n{log.read_text()[-3000:]}")
        with urllib.request.urlopen(f"{url}/-/ready", timeout=2) as response:
            return response.status == 200

    try:
        wait_until(ready, f"{name} to be ready", STARTUP_SECONDS, log)
    except BaseException:
        stop_process(process)
        raise
    return url, process


def start_prometheus(directory: Path, config: dict[str, Any]) -> Prometheus:
    """Start Debian's prometheus on a free loopback port with ``config``; wait until ready."""
    directory.mkdir(parents=True, exist_ok=True)
    config_file = directory / "prometheus.yml"
    config_file.write_text(json.dumps(config))
    log = directory / "prometheus.log"
    arguments = [f"--config.file={config_file}", f"--storage.tsdb.path={directory / 'data'}"]
    url, process = _start_daemon("prometheus", "prometheus", arguments, log, free_port())
    return Prometheus(url, log, process)


@dataclass
class Alertmanager:
    url: str
    log: Path
    process: subprocess.Popen

    def stop(self) -> None:
        stop_process(self.process)


def start_alertmanager(directory: Path, config_yaml: str) -> Alertmanager:
    """Start Debian's prometheus-alertmanager on free loopback ports; wait until ready."""
    directory.mkdir(parents=True, exist_ok=True)
    config_file = directory / "alertmanager.yml"
    config_file.write_text(config_yaml)
    gossip = f"127.0.0.1:{free_port()}"
    arguments = [
        f"--config.file={config_file}",
        f"--storage.path={directory / 'data'}",
        f"--cluster.listen-address={gossip}",
        f"--cluster.advertise-address={gossip}",
    ]
    log = directory / "alertmanager.log"
    url, process = _start_daemon(
        "prometheus-alertmanager", "prometheus-alertmanager", arguments, log, free_port()
    )
    return Alertmanager(url, log, process)


@dataclass
class Webhook:
    """Alertmanager's webhook notifications, as received: (arrival, receiver, notification).

    Point a receiver at ``url + "/" + name``; the name is recorded with each notification.
    """

    url: str = ""
    received: list[tuple[float, str, dict[str, Any]]] = field(default_factory=list)
    runner: web.AppRunner | None = None

    async def start(self) -> None:
        async def receive(request: web.Request) -> web.Response:
            notification = await request.json()
            self.received.append((time.monotonic(), request.match_info["receiver"], notification))
            return web.Response(text="ok")

        app = web.Application()
        app.router.add_post("/alerts/{receiver}", receive)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}/alerts"

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    def alerts(self, alertname: str, status: str) -> list[tuple[float, str, dict[str, Any]]]:
        """Return (arrival, receiver, alert) for every received alert of that name and status."""
        return [
            (arrived, receiver, alert)
            for arrived, receiver, notification in list(self.received)
            for alert in notification["alerts"]
            if alert["labels"].get("alertname") == alertname and alert["status"] == status
        ]


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

    def stop(self) -> None:
        async def stop() -> None:
            await self.runner.cleanup()
            await self.exporter.stop()
            await self.simulator.stop()

        self.loop.run(stop())
        self.loop.close()


def start_fleet(directory: Path, clusters: int, seed: int, interval: float = 1.0) -> Fleet:
    """Start a simulated HTTPS fleet and an exporter polling it every ``interval`` seconds."""
    import io
    from dataclasses import replace

    from akv_exporter.demo import demo_config
    from akv_exporter.exporter import Exporter
    from akv_exporter.simulator import SimulatorOptions, start_simulator
    from akv_exporter.web.app import serve

    loop = BackgroundLoop()

    async def start() -> Fleet:
        simulator = await start_simulator(
            SimulatorOptions(clusters=clusters, seed=seed, control_port=0, out=io.StringIO())
        )
        config = demo_config(simulator, "127.0.0.1:0", interval, directory / "state.json")
        # Two datacenters, so the dashboards' datacenter variable has something to select.
        labelled = tuple(
            replace(cluster, labels=(("datacenter", f"dc{index % 2 + 1}"),))
            for index, cluster in enumerate(config.clusters)
        )
        config = replace(
            config, clusters=labelled, poll=replace(config.poll, timeout=min(5.0, interval * 3))
        )
        exporter = Exporter(config)
        await exporter.start()
        runner = await serve(exporter, "127.0.0.1", 0)
        url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        return Fleet(loop, simulator, exporter, runner, url)

    fleet = loop.run(start())
    wait_until(
        lambda: fleet.exporter.poller.ready.is_set(), "the exporter's first round", STARTUP_SECONDS
    )
    return fleet
