"""The tests' one helpers module: import as ``from tests.helpers import ...``.

Fixtures live in conftest.py; everything a test calls lives here. Sections: the repository and
binaries; ONTAP answers and the simulator's REST dialect; configurations; reading an exposition;
the exporter on loopback; real processes for end-to-end tests (the simulated fleet and the
exporter in a background event loop, Prometheus, Alertmanager, a webhook receiver the test runs).

Missing binaries fail the test (never skip it): `make test` installs Debian's packages.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import functools
import inspect
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import jsonschema
import marshmallow
import pytest
import yaml
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families as parse_text

from akv_exporter.config import ClusterConfig, Config, SecretSource, TlsConfig, parse_config
from akv_exporter.exporter import Exporter
from akv_exporter.web.app import serve

# --- the repository and binaries ------------------------------------------------------------------


REPO = Path(__file__).resolve().parents[1]


def require_binary(name: str, package: str) -> str:
    """Return the path of ``name``; fail (never skip) when missing, naming the Debian package."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: apt-get install {package} (make test does this)")
    return path


# --- ONTAP answers and the simulator's REST dialect -----------------------------------------------


def akv_record(
    uuid: str = "11111111-1111-1111-1111-111111111111",
    svm: str | None = "vs1",
    nodes: tuple[str, ...] = ("n1", "n2"),
    *,
    reachable: bool = True,
    kek: bool = True,
    ekmip_down: tuple[str, ...] = (),
    enabled: bool = True,
) -> dict:
    """Return an azure-key-vaults record as ONTAP 9.14+ sends it with the advanced fields."""
    record: dict = {
        "uuid": uuid,
        "scope": "svm" if svm else "cluster",
        "enabled": enabled,
        "configuration": {"name": "default", "uuid": uuid},
        "name": "https://vault1.vault.azure.net/",
        "key_id": "https://vault1.vault.azure.net/keys/key1/0123456789abcdef0123456789abcdef",
        "client_id": "aaaaaaaa-bbbb-aaaa-bbbb-aaaaaaaaaaaa",
        "tenant_id": "zzzzzzzz-yyyy-zzzz-yyyy-zzzzzzzzzzzz",
        "authentication_method": "client_secret",
    }
    if svm:
        record["svm"] = {"name": svm, "uuid": "22222222-2222-2222-2222-222222222222"}
    if not enabled:
        return record
    record["azure_reachability"] = (
        {"reachable": True, "code": "0", "message": ""}
        if reachable
        else {
            "reachable": False,
            "code": "65537549",
            "message": "AKV service is not reachable from all nodes - reason: timed out.",
        }
    )
    record["state"] = (
        {"available": True, "code": "0", "message": ""}
        if kek
        else {
            "available": False,
            "code": "65537551",
            "message": "Top-level internal key protection key (KEK) is unavailable on the "
            "following nodes with the associated reasons: Node: n1. Reason: unavailable.",
        }
    )
    record["ekmip_reachability"] = [
        {
            "node": {"name": node, "uuid": f"{index:08d}-0000-0000-0000-000000000000"},
            "reachable": node not in ekmip_down,
            "code": "65537552" if node in ekmip_down else "0",
            "message": "embedded KMIP server status unavailable on node."
            if node in ekmip_down
            else "",
        }
        for index, node in enumerate(nodes)
    ]
    return record


EXAMPLE_SCENARIO = REPO / "config" / "simulator" / "scenario.example.yml"


# NetApp's AKV definitions from its public unified.yml (provenance in its x-excerpt-source), kept
# in the repository so the test runs wherever the repository is cloned.
OPENAPI_EXCERPT = REPO / "tests" / "data" / "ontap-akv-openapi-excerpt.json"


AKV_PATH = "/api/security/azure-key-vaults"


def basic_auth(username: str = "admin", password: str = "netapp1!") -> dict[str, str]:
    """Return the Authorization header for HTTP basic authentication."""
    credentials = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"Authorization": f"Basic {credentials}"}


async def get(
    session: aiohttp.ClientSession,
    url: str,
    *,
    auth: tuple[str, str] = ("admin", "netapp1!"),
    headers: dict[str, str] | None = None,
) -> tuple[int, Any, aiohttp.typedefs.LooseHeaders]:
    """Return (status, decoded JSON body or the text, headers) of one GET."""
    headers = {**basic_auth(*auth), **(headers or {})}
    async with session.get(url, headers=headers) as response:
        text = await response.text()
        try:
            body: Any = json.loads(text)
        except json.JSONDecodeError:
            body = text
        return response.status, body, response.headers


def cluster_url(sim: Any, name: str) -> str:
    """Return the ONTAP URL of the running simulator's cluster ``name``."""
    return next(c.url for c in sim.clusters if c.name == name)


async def control(
    session: aiohttp.ClientSession, sim: Any, method: str, path: str, body: Any = None
) -> tuple[int, Any]:
    """Return (status, JSON body) of one request to the simulator's control API; a str body
    goes as it is, anything else as JSON."""
    data = body if isinstance(body, str) else json.dumps(body) if body is not None else None
    async with session.request(method, f"{sim.control_url}{path}", data=data) as response:
        return response.status, await response.json()


async def all_pages(
    session: aiohttp.ClientSession, base_url: str, first: str, **kwargs: Any
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Return (every record, every page body) following ``_links.next`` from ``first``."""
    records: list[dict[str, Any]] = []
    pages: list[dict[str, Any]] = []
    href: str | None = first
    while href is not None:
        status, body, _ = await get(session, base_url + href, **kwargs)
        assert status == 200, body
        pages.append(body)
        records.extend(body["records"])
        href = body["_links"].get("next", {}).get("href")
        assert len(pages) < 1000, "paging does not end"
    return records, pages


def _openapi_to_jsonschema(node: Any) -> Any:
    """Return a Swagger 2.0 schema as JSON Schema: x-nullable allows null, no extra fields."""
    if isinstance(node, list):
        return [_openapi_to_jsonschema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _openapi_to_jsonschema(value) for key, value in node.items()}
    if out.get("x-nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    if out.get("type") == "object" and "properties" in out:
        # Stricter than NetApp's definition: a field the simulator invents fails the test.
        out["additionalProperties"] = False
    return out


def akv_schema() -> dict[str, Any]:
    """Return a JSON Schema for one ``azure_key_vault`` record, from NetApp's OpenAPI excerpt."""
    document = json.loads(OPENAPI_EXCERPT.read_text())
    definitions = _openapi_to_jsonschema(copy.deepcopy(document["definitions"]))
    # The excerpt leaves out `href`, which every `_links.self` refers to.
    definitions["href"] = {
        "type": "object",
        "properties": {"href": {"type": "string"}},
        "additionalProperties": False,
    }
    return {"$ref": "#/definitions/azure_key_vault", "definitions": definitions}


def relax_9_8(record: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """Return the record with 9.8's quirks undone (integer codes, state.cluster_state).

    9.8 clusters send what NetApp's own example answer and its 9.8-era library show, which the
    string-typed schema does not allow; the second value says whether anything was undone.
    """
    relaxed = copy.deepcopy(record)
    changed = False
    checks = [relaxed.get("state"), relaxed.get("azure_reachability")]
    checks += relaxed.get("ekmip_reachability", [])
    for check in checks:
        if isinstance(check, dict) and isinstance(check.get("code"), int):
            check["code"] = str(check["code"])
            changed = True
    state = relaxed.get("state")
    if isinstance(state, dict) and "cluster_state" in state:
        state["available"] = state.pop("cluster_state")
        changed = True
    return relaxed, changed


# --- configurations -------------------------------------------------------------------------------


CANARY = "canary-Pa55w0rd-do-not-leak"


def write_config(tmp_path: Path, body: str, name: str = "akv.yml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body).lstrip(), encoding="utf-8")
    return path


def config_for(tmp_path, *urls, extra: str = "", poll: str = "", names: bool = True) -> Config:
    """Return (and write) a configuration of clusters c0, c1, ... at ``urls``.

    ``extra`` is added to ``defaults``, ``poll`` to ``poll`` (indented lines).
    """
    clusters = "\n".join(
        f"  - name: c{i}\n    address: {url}" if names else f"  - address: {url}"
        for i, url in enumerate(urls)
    )
    body = (
        f"state_file: {tmp_path / 'state.json'}\n"
        f"poll:\n  interval: 60s\n  timeout: 2s\n{poll}"
        f"defaults:\n  username: admin\n  password: {CANARY}\n{extra}"
        f"clusters:\n{clusters}\n"
    )
    return parse_config(body, write_config(tmp_path, body))


class FakeOntap:
    """An ONTAP stand-in on loopback whose answers each test sets; it records what it was asked."""

    def __init__(self) -> None:
        self.records: list = [akv_record()]
        self.cluster = {
            "name": "c1",
            "uuid": "cccc",
            "version": {"full": "NetApp Release 9.14.1", "generation": 9, "major": 14, "minor": 1},
        }
        self.requests: list[web.Request] = []
        self.handler: Callable | None = None  # overrides the AKV answer when set
        self.url = ""
        # The slow-polled endpoints (issue 11): a body (a list becomes a collection), a
        # (status, body) pair, None for ONTAP's 404 of an unknown path, or a function of the
        # request returning one of those.
        self.key_manager_config: Any = None
        self.volumes: Any = None
        self.events: Any = None

    async def _cluster(self, request: web.Request) -> web.Response:
        self.requests.append(request)
        return web.json_response(self.cluster, content_type="application/hal+json")

    async def _akv(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(request)
        if self.handler is not None:
            return await self.handler(request)
        return web.json_response(
            {"records": self.records, "num_records": len(self.records)},
            content_type="application/hal+json",
        )

    async def _slow(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(request)
        answer = {
            "/api/security/key-manager-configs": self.key_manager_config,
            "/api/storage/volumes": self.volumes,
            "/api/support/ems/events": self.events,
        }[request.path]
        if callable(answer):
            answer = answer(request)
            if inspect.isawaitable(answer):
                answer = await answer
        if answer is None:
            return web.json_response(
                {"error": {"message": "API not found", "code": "4"}}, status=404
            )
        if isinstance(answer, tuple):
            return web.json_response(answer[1], status=answer[0])
        if isinstance(answer, list):
            answer = {"records": answer, "num_records": len(answer)}
        return web.json_response(answer, content_type="application/hal+json")

    def asked(self, path: str) -> list[web.Request]:
        """Return the requests made to ``path``."""
        return [r for r in self.requests if r.path == path]

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/api/cluster", self._cluster)
        app.router.add_get("/api/security/azure-key-vaults", self._akv)
        for path in (
            "/api/security/key-manager-configs",
            "/api/storage/volumes",
            "/api/support/ems/events",
        ):
            app.router.add_get(path, self._slow)
        return app


class InFlight:
    """An ONTAP answer that takes ``delay`` seconds and counts the most requests served at once."""

    def __init__(self, delay: float = 0.2):
        self.delay = delay
        self.now = 0
        self.most = 0

    async def __call__(self, request: web.Request) -> web.Response:
        self.now += 1
        self.most = max(self.most, self.now)
        try:
            await asyncio.sleep(self.delay)
        finally:
            self.now -= 1
        return web.json_response({"records": [akv_record()]})


def cluster_config(url: str, **overrides) -> ClusterConfig:
    """Return a ClusterConfig for ``url`` with basic auth admin/netapp1! unless overridden."""

    fields = {
        "name": None,
        "address": url,
        "url": url,
        "username": "admin",
        "secret": SecretSource("password", "netapp1!"),
        "client_cert_file": None,
        "client_key_file": None,
        "tls": TlsConfig(),
        "labels": (),
    }
    fields.update(overrides)
    return ClusterConfig(**fields)


# --- reading an exposition and the status document ------------------------------------------------


def samples(body: bytes) -> dict[tuple[str, tuple], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in parse_text(body.decode())
        for s in family.samples
    }


def find(body: bytes, name: str, **labels) -> list[float]:
    return [
        value
        for (sample, pairs), value in samples(body).items()
        if sample == name and all(dict(pairs).get(k) == v for k, v in labels.items())
    ]


SCHEMA = json.loads((REPO / "docs" / "status.schema.json").read_text(encoding="utf-8"))


def validate(document: dict) -> None:
    jsonschema.Draft202012Validator(SCHEMA).validate(document)


# --- the exporter on loopback ---------------------------------------------------------------------


# 'label'=value[UOM];[warn];[crit];[min];[max], as the Nagios plugin guidelines define it.
PERFDATA = re.compile(r"^'?[^'=]+'?=-?[0-9.]+[a-zA-Z%]*(;[0-9.:~@-]*){0,4}$")


def perfdata(first_line: str) -> dict[str, str]:
    """Return a check's performance data by label, checking the plugin format on the way."""
    text, bar, data = first_line.partition(" | ")
    assert bar and "|" not in text and "|" not in data
    items = data.split()
    assert all(PERFDATA.match(item) for item in items), items
    return {item.split("=")[0]: item.split("=")[1].split(";")[0] for item in items}


class Clock:
    """A clock a test moves by hand (``clock.now += 60``)."""

    def __init__(self, now: float = 1_700_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def exporter_with_clock(config: Config, clock: Clock) -> Exporter:
    """Return an Exporter (not started) whose poller reads ``clock``."""
    exporter = Exporter(config, process_metrics=False)
    exporter.poller._clock = clock
    return exporter


async def check(config: Config, *args: str) -> tuple[int, str, str]:
    """Run `akv-exporter check --config` as a process; (exit code, stdout, stderr).

    Fails the test on a traceback or on the password canary in any output.
    """
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "akv_exporter.cli",
        "check",
        "--config",
        str(config.path),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert CANARY not in stdout.decode() + stderr.decode()
    assert "Traceback" not in stderr.decode()
    return process.returncode, stdout.decode(), stderr.decode()


async def started(config, **options):
    """Return (exporter, runner, base URL): ``Exporter(config, **options)`` started and served."""
    exporter = Exporter(config, **options)
    await exporter.start()
    runner = await serve(exporter, "127.0.0.1", 0)
    port = runner.addresses[0][1]
    return exporter, runner, f"http://127.0.0.1:{port}"


def closed_port_url() -> str:
    return f"http://127.0.0.1:{free_port()}"


# --- real processes for end-to-end tests ----------------------------------------------------------


T = TypeVar("T")
STARTUP_SECONDS = 60.0


def free_port() -> int:
    """Return a port free on 127.0.0.1 now (for programs that cannot report a port 0 bind)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def consecutive_free_ports(count: int, multiple_of: int = 1) -> int:
    """Return the first of ``count`` consecutive ports free on 127.0.0.1 now, a multiple of
    ``multiple_of``."""
    for _ in range(200):
        first = free_port() // multiple_of * multiple_of
        if first + count > 65536:
            continue
        with contextlib.ExitStack() as held:
            try:
                for port in range(first, first + count):
                    held.enter_context(socket.socket()).bind(("127.0.0.1", port))
            except OSError:
                continue
            return first
    pytest.fail(f"no {count} consecutive free ports on 127.0.0.1")


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
    from akv_exporter.exporter import Exporter
    from akv_exporter.web.app import serve

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


CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    # Without these Chromium tries to reach the network on its own.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


# --- `akv-exporter run` as real processes (sharding, high availability) -------------------------
# Separate processes, as in production: nothing (a hash seed, a module cache) is shared.


def fleet_config_file(
    path: Path,
    simulator: Any,
    names: Iterable[str],
    *,
    interval: str = "2s",
    unnamed_every: int = 0,
) -> Path:
    """Write a configuration polling the simulated clusters ``names``, in that order.

    With ``unnamed_every`` n, every n-th cluster is configured by address only (so it is
    sharded by its address).
    """
    info = {cluster.name: cluster for cluster in simulator.clusters}
    clusters = []
    for index, name in enumerate(names):
        cluster = info[name]
        entry: dict[str, Any] = {"address": cluster.url}
        if not (unnamed_every and index % unnamed_every == 0):
            entry = {"name": name, **entry}
        entry.update(username=cluster.username, password=cluster.password)
        clusters.append(entry)
    document = {
        "state_file": str(path.with_suffix(".state.json")),
        # A failing cluster is asked again every interval, not after a growing backoff.
        "poll": {
            "interval": interval,
            "timeout": interval,
            "max_backoff": interval,
            "stale_after": "300s",
        },
        "defaults": {"tls": {"ca_file": str(simulator.ca_file)}},
        "clusters": clusters,
    }
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


@dataclass
class ExporterProcess:
    """One `akv-exporter run` process and where it listens."""

    url: str
    log: Path
    process: subprocess.Popen

    @property
    def target(self) -> str:
        return self.url.removeprefix("http://")

    def metrics(self) -> bytes:
        return fetch(f"{self.url}/metrics", timeout=10)

    def reload(self) -> None:
        request = urllib.request.Request(f"{self.url}/-/reload", method="POST")
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status == 200, response.read()

    def kill(self) -> None:
        """End the process at once (SIGKILL), as a node failure would."""
        self.process.kill()
        self.process.wait(10)

    def stop(self) -> None:
        stop_process(self.process)


def start_exporter(
    config: Path, log: Path, *flags: str, hash_seed: str = "random", port: int | None = None
) -> ExporterProcess:
    """Start `akv-exporter run --config CONFIG FLAGS` on loopback (any free port unless given);
    wait until it is ready."""
    port = port or free_port()
    with log.open("wb") as output:
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "akv_exporter.cli", "run", "--config", str(config)),
                *("--listen", f"127.0.0.1:{port}", *flags),
            ],
            stdout=output,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONHASHSEED": hash_seed},
        )
    exporter = ExporterProcess(f"http://127.0.0.1:{port}", log, process)

    def ready() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"exporter exited ({process.returncode}):\n{log.read_text()}")
        return fetch(f"{exporter.url}/-/ready", timeout=2).startswith(b"Ready")

    try:
        wait_until(ready, f"exporter {' '.join(flags)} to be ready", STARTUP_SECONDS, log)
    except BaseException:
        stop_process(process)
        raise
    return exporter


# --- the alerting stack's configuration for end-to-end tests -------------------------------

SCALE = 60  # a `for: 5m` in the shipped rules waits 5s here


def shortened_rules() -> str:
    """Return the shipped rules with every `for:` wait divided by SCALE.

    The 30-minute escalation (`>= 30 * 60`, a streak age) is divided the same way: 30 s here.
    """
    text = (REPO / "config/prometheus/alerts.yml").read_text()

    def shorter(match: re.Match) -> str:
        seconds = int(match.group(2)) * {"s": 1, "m": 60, "h": 3600}[match.group(3)]
        return f"{match.group(1)}{max(1, seconds // SCALE)}s"

    shortened, count = re.subn(r"^(\s+for: )(\d+)([smh])\s*$", shorter, text, flags=re.M)
    assert count >= 5, "the rules file changed shape: no `for:` lines found"
    shortened, count = re.subn(r">= (\d+) \* 60\b", r">= \1", shortened)
    assert count == 1, "the rules file changed shape: no `>= N * 60` escalation found"
    return shortened


def alertmanager_config(webhook_url: str) -> str:
    """Return the shipped Alertmanager example, delivering to the test's webhook, quickly."""
    config = yaml.safe_load((REPO / "config/alertmanager/alertmanager.yml").read_text())
    config["route"].update(group_wait="1s", group_interval="2s")
    for receiver in config["receivers"]:
        for webhook in receiver.get("webhook_configs", []):
            webhook["url"] = f"{webhook_url}/{receiver['name']}"
    return yaml.safe_dump(config)


# --- ONTAP answers for the slow polls (key-manager policy, encrypted volumes, EMS) --------

# NetApp's example answer of GET /api/security/key-manager-configs (netapp_ontap's docs).
NETAPP_POLICY = {
    "health_monitor_polling_interval": 15,
    "cc_mode_enabled": False,
    "_links": {"self": {"href": "/api/security/key-manager-configs"}},
    "health_monitor_policy": {
        km: {"manage_volume_offline": True, "enabled": True}
        for km in ("okm", "akv", "aws", "gcp", "kmip", "ikp")
    },
    "cloud_kms_retry_count": 3,
}


def policy(*, offline: bool = True, interval: int = 15) -> dict:
    body = {**NETAPP_POLICY, "health_monitor_polling_interval": interval}
    body["health_monitor_policy"] = {
        **NETAPP_POLICY["health_monitor_policy"],
        "akv": {"enabled": True, "manage_volume_offline": offline},
    }
    return body


def volume(svm: str, state: str = "online", index: int = 0) -> dict:
    return {
        "uuid": f"{index:08d}-1111-2222-3333-444444444444",
        "name": f"{svm}_vol{index}",
        "svm": {"name": svm, "uuid": "22222222-2222-2222-2222-222222222222"},
        "state": state,
        "encryption": {"enabled": True},
    }


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


def event(node: str, index: int, ts: float, name: str = "ekmip.akv.notAvailable") -> dict:
    return {
        "index": index,
        "time": iso(ts),
        "node": {"name": node, "uuid": "f087b8e3-99ac-11e8-b5a5-005056bb4ec7"},
        "message": {"name": name, "severity": "error"},
        "log_message": f"{name}: Azure Key Vault   is not available\n(node {node}).",
    }


async def watch_csp(page) -> list[str]:
    """Return a list that fills with every Content-Security-Policy violation ``page`` reports.

    Chromium reports a blocked script, style or load on the console; the page's own
    `securitypolicyviolation` event is logged there too, so neither path can go unnoticed.
    """
    violations: list[str] = []

    def seen(message) -> None:
        if "Content Security Policy" in message.text:
            violations.append(message.text)

    page.on("console", seen)
    await page.add_init_script(
        "document.addEventListener('securitypolicyviolation', event => console.error("
        "'Content Security Policy violation: ' + event.violatedDirective + ' ' +"
        " event.blockedURI));"
    )
    return violations


# --- NetApp's schemas (netapp_ontap) ------------------------------------------------------


def _walk(value: Any, schema: marshmallow.Schema, where: str) -> None:
    """Fail on any key the schema has no field for, at any depth (from_dict checks the top)."""
    by_key = {f.data_key or name: f for name, f in schema.fields.items()}
    for key, item in value.items():
        assert key in by_key, f"{where}.{key}: not a field of {type(schema).__name__}"
        _walk_field(item, by_key[key], f"{where}.{key}")


def _walk_field(value: Any, field: marshmallow.fields.Field, where: str) -> None:
    if value is None:
        return
    if isinstance(field, marshmallow.fields.List):
        assert isinstance(value, list), f"{where}: expected a list"
        for index, item in enumerate(value):
            _walk_field(item, field.inner, f"{where}[{index}]")
    elif isinstance(field, marshmallow.fields.Nested):
        assert isinstance(value, dict), f"{where}: expected an object"
        _walk(value, field.schema, where)


@functools.cache
def _schema(resource: Any) -> marshmallow.Schema:
    # One instance per resource: building NetApp's larger schemas is slow.
    return resource._schema()


def netapp_validate(resource: Any, record: dict[str, Any], where: str) -> Any:
    """Return NetApp's object for ``record``; fail if NetApp's schema refuses any part of it."""
    _walk(record, _schema(resource), where)
    return resource.from_dict(record, strict=True)
