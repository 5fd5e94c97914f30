"""Debian's Prometheus and Alertmanager as real processes, a webhook receiver the test runs,
and the shipped alerting configuration shortened for end-to-end tests."""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web

from tests.helpers.loopback import STARTUP_SECONDS, free_port, wait_until
from tests.helpers.processes import stop_process
from tests.helpers.repository import REPO, require_binary


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

    def rule_evaluations(self) -> float:
        """Return how often Prometheus has evaluated its rule groups (its own /metrics)."""
        with urllib.request.urlopen(f"{self.url}/metrics", timeout=10) as response:
            lines = response.read().decode().splitlines()
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in lines
            if line.startswith("prometheus_rule_group_iterations_total{")
        )

    def wait_for_evaluations(self, rounds: int, timeout: float = 120) -> None:
        """Wait until every rule group has been evaluated ``rounds`` more times (a condition, not
        a fixed time: a loaded machine evaluates late, and the wait follows)."""
        with urllib.request.urlopen(f"{self.url}/api/v1/rules", timeout=10) as response:
            groups = len(json.load(response)["data"]["groups"])
        target = self.rule_evaluations() + rounds * groups
        wait_until(
            lambda: self.rule_evaluations() >= target,
            f"{rounds} more evaluations of every rule group",
            timeout,
            self.log,
        )


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


SCALE = 60  # a `for: 5m` in the shipped rules waits 5s here


def shortened_rules() -> str:
    """Return the shipped rules with every `for:` wait divided by SCALE.

    The 30-minute escalations (`>= 30 * 60`, streak ages) are divided the same way: 30 s here.
    """
    text = (REPO / "config/prometheus/alerts.yml").read_text()

    def shorter(match: re.Match) -> str:
        seconds = int(match.group(2)) * {"s": 1, "m": 60, "h": 3600}[match.group(3)]
        return f"{match.group(1)}{max(1, seconds // SCALE)}s"

    shortened, count = re.subn(r"^(\s+for: )(\d+)([smh])\s*$", shorter, text, flags=re.M)
    assert count >= 5, "the rules file changed shape: no `for:` lines found"
    shortened, count = re.subn(r">= (\d+) \* 60\b", r">= \1", shortened)
    assert count >= 1, "the rules file changed shape: no `>= N * 60` escalation found"
    return shortened


def alertmanager_config(webhook_url: str) -> str:
    """Return the shipped Alertmanager example, delivering to the test's webhook, quickly."""
    config = yaml.safe_load((REPO / "config/alertmanager/alertmanager.yml").read_text())
    config["route"].update(group_wait="1s", group_interval="2s")
    for receiver in config["receivers"]:
        for webhook in receiver.get("webhook_configs", []):
            webhook["url"] = f"{webhook_url}/{receiver['name']}"
    return yaml.safe_dump(config)


@contextlib.contextmanager
def alerting_stack(directory: Path, clusters: int, seed: int):
    """Yield (fleet, webhook, prometheus): a simulated fleet polled by an exporter, a real
    Prometheus on the shortened shipped rules scraping it every second, and a real Alertmanager
    on the shipped example delivering to a webhook; everything stopped on the way out."""
    from tests.helpers.fleet import start_fleet  # the fleet imports the simulator: only here

    fleet = start_fleet(directory, clusters=clusters, seed=seed, interval=1.0)
    webhook = Webhook()
    fleet.loop.run(webhook.start())
    alertmanager = prometheus = None
    try:
        alertmanager = start_alertmanager(directory / "am", alertmanager_config(webhook.url))
        rules = directory / "alerts.yml"
        rules.write_text(shortened_rules())
        target = {"targets": [alertmanager.url.removeprefix("http://")]}
        prometheus = start_prometheus(
            directory / "prometheus",
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(rules)],
                "alerting": {"alertmanagers": [{"static_configs": [target]}]},
                "scrape_configs": [
                    {"job_name": "akv-exporter", "static_configs": [{"targets": [fleet.target]}]}
                ],
            },
        )
        wait_until(
            lambda: prometheus.values(f"count(akv_exporter_cluster_up == 1) == {clusters}"),
            f"Prometheus to see {clusters} healthy clusters",
            60,
            prometheus.log,
        )
        yield fleet, webhook, prometheus
    finally:
        for process in (prometheus, alertmanager):
            if process is not None:
                process.stop()
        fleet.loop.run(webhook.stop())
        fleet.stop()
