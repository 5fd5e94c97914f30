"""The simulated fleet in its own process, and the exporter as a user runs it, in another.

Both are started through the `akv-exporter` command a user has, on 127.0.0.1 only. The exporter
process is measured from outside: its resident memory from /proc, its first full view of the
fleet from its own /-/ready and /metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from akv_exporter.ontap.akv import ENDPOINT
from akv_exporter.ontap.cluster import release_of

USERNAME, PASSWORD = "admin", "netapp1!"  # what every generated simulator cluster accepts
GUARD = 600.0  # hang guard for one phase, never a goal


def command() -> list[str]:
    """Return the `akv-exporter` command of this environment."""
    script = Path(sys.executable).with_name("akv-exporter")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from akv_exporter.cli import main; sys.exit(main())"]


def resident_mib(pid: int) -> tuple[float, float]:
    """Return (VmRSS, VmHWM) of a process in MiB: resident now and its peak."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            values[name] = int(rest.split()[0]) / 1024
    return values["VmRSS"], values["VmHWM"]


def cpu_seconds(pid: int) -> float:
    """Return the user + system CPU time a process has used (from /proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class _Lines:
    """Drains a child's output in a thread, keeping each line with the time it arrived."""

    def __init__(self, stream) -> None:
        self.lines: list[tuple[float, str]] = []
        self.ended = False
        self._changed = threading.Condition()
        threading.Thread(target=self._drain, args=(stream,), daemon=True).start()

    def _drain(self, stream) -> None:
        for line in stream:
            with self._changed:
                self.lines.append((time.perf_counter(), line.rstrip("\n")))
                self._changed.notify_all()
        with self._changed:
            self.ended = True
            self._changed.notify_all()

    def wait_for(self, pattern: str, timeout: float) -> tuple[float, re.Match]:
        """Return (arrival time, match) of the first line matching ``pattern``."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        seen = 0
        with self._changed:
            while True:
                for at, line in self.lines[seen:]:
                    if match := regex.search(line):
                        return at, match
                seen = len(self.lines)
                if self.ended:
                    tail = "\n".join(line for _, line in self.lines[-15:])
                    raise RuntimeError(f"process ended before printing {pattern!r}:\n{tail}")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise RuntimeError(f"no line matching {pattern!r} within {timeout:g}s")
                self._changed.wait(remaining)


def stop(process: subprocess.Popen | None) -> None:
    """End a process started here: SIGTERM, then SIGKILL after 30 s; None or ended is fine."""
    if process is not None and process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass(frozen=True)
class SimulatedCluster:
    name: str
    url: str
    version: str  # its ONTAP release, e.g. "9.13.1"
    # Its key managers beside AKV (keystore types: gcp, aws, barbican, kmip, okm).
    others: tuple[str, ...] = ()

    @property
    def fields(self) -> str:
        """The `fields` query the exporter asks this cluster (its release's fields)."""
        return ENDPOINT.fields(release_of(self.version))


class SimulatorProcess:
    """`akv-exporter simulate` in its own process, with every cluster's answers delayed."""

    def __init__(self, clusters: int, seed: int = 7, providers: str = "mixed") -> None:
        self.size = clusters
        self.seed = seed
        self.providers = providers  # the simulator's --providers: mixed or akv
        self.process: subprocess.Popen | None = None
        self.ca_file: Path | None = None
        self.control_url = ""
        self.clusters: list[SimulatedCluster] = []

    async def start(self) -> None:
        argv = [*command(), "simulate", "--clusters", str(self.size), "--seed", str(self.seed)]
        argv += ["--control", "127.0.0.1:0", "--providers", self.providers]
        self.process = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        out = _Lines(self.process.stdout)
        _, ca = await asyncio.to_thread(out.wait_for, r"^CA certificate: (.+)$", GUARD)
        _, control = await asyncio.to_thread(out.wait_for, r"^control API: (\S+)/simulator", GUARD)
        self.ca_file = Path(ca[1])
        self.control_url = control[1]
        listing = f"{self.control_url}/simulator/clusters"
        async with aiohttp.ClientSession() as http, http.get(listing) as response:
            response.raise_for_status()
            listed = await response.json()
        self.clusters = [
            SimulatedCluster(c["name"], c["url"], c["version"], _others(c)) for c in listed
        ]

    def mix(self) -> str:
        """Return the fleet's key managers in words: "AKV only" or the other ones' counts."""
        counts = Counter(kind for cluster in self.clusters for kind in set(cluster.others))
        if not counts:
            return "AKV only"
        mixed = sum(1 for cluster in self.clusters if cluster.others)
        kinds = ", ".join(f"{KIND_NAMES[kind]} {counts[kind]}" for kind in sorted(counts))
        return f"AKV on every cluster; {mixed:,} clusters also have another key manager ({kinds})"

    async def set_faults(self, faults: dict) -> None:
        """Apply the same faults to every cluster through the control API."""
        gate = asyncio.Semaphore(32)
        async with aiohttp.ClientSession() as http:

            async def one(cluster: SimulatedCluster) -> None:
                async with gate:
                    url = f"{self.control_url}/simulator/clusters/{cluster.name}"
                    async with http.patch(url, json={"faults": faults}) as response:
                        response.raise_for_status()

            await asyncio.gather(*(one(cluster) for cluster in self.clusters))

    def cpu_seconds(self) -> float:
        assert self.process is not None
        return cpu_seconds(self.process.pid)

    def stop(self) -> None:
        stop(self.process)


KIND_NAMES = {"gcp": "GCP", "aws": "AWS", "barbican": "Barbican", "kmip": "KMIP", "okm": "OKM"}


def _others(listed: dict) -> tuple[str, ...]:
    """Return the key managers beside AKV of one cluster of the control API's listing."""
    cloud = {"gcp_kms": "gcp", "aws_kms": "aws", "barbican_kms": "barbican"}
    kinds = [kind for key, kind in cloud.items() for _ in listed.get(key, ())]
    kinds += [manager["type"] for manager in listed.get("key_managers", ())]
    return tuple(kinds)


def write_config(
    path: Path, simulator: SimulatorProcess, *, concurrency: int, interval: str = "60s"
) -> Path:
    """Write the configuration a user would: every simulated cluster, trusting its CA."""
    lines = [
        f"state_file: {path.parent / 'state.json'}",
        "poll:",
        f"  interval: {interval}",
        "  timeout: 30s",
        f"  concurrency: {concurrency}",
        "defaults:",
        f"  username: {USERNAME}",
        f'  password: "{PASSWORD}"',
        "  tls:",
        f"    ca_file: {simulator.ca_file}",
        "clusters:",
    ]
    for cluster in simulator.clusters:
        lines += [f"  - name: {cluster.name}", f"    address: {cluster.url}"]
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass(frozen=True)
class FirstView:
    """The exporter process from start to every cluster up."""

    start_to_polling: float  # process start until it logs "polling N cluster(s)"
    polling_to_view: float  # from there until /-/ready and every cluster up
    clusters_up: int
    rss_mib: float  # resident memory at the first full view
    peak_mib: float  # peak resident memory so far
    rss_settled_mib: float  # resident memory a few seconds later
    cpu_seconds: float  # the exporter's CPU time until the first full view


async def first_view(config: Path, clusters: int) -> FirstView:
    """Start `akv-exporter run`, time its first full view, read its memory; stop it."""
    began = time.perf_counter()
    process = subprocess.Popen(
        [*command(), "run", "--config", str(config), "--listen", "127.0.0.1:0"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        logs = _Lines(process.stderr)
        polling, _ = await asyncio.to_thread(logs.wait_for, r"polling \d+ cluster", GUARD)
        _, listening = await asyncio.to_thread(logs.wait_for, r"listening on [^ ]+:(\d+)", GUARD)
        base = f"http://127.0.0.1:{listening[1]}"
        async with aiohttp.ClientSession() as http:
            while True:
                async with http.get(f"{base}/-/ready") as response:
                    await response.read()
                    if response.status == 200:
                        ready = time.perf_counter()
                        break
                if time.perf_counter() - began > GUARD:
                    raise RuntimeError(f"exporter not ready within {GUARD:g}s")
                await asyncio.sleep(0.05)
            rss, peak = resident_mib(process.pid)
            cpu = cpu_seconds(process.pid)
            async with http.get(f"{base}/metrics") as response:
                body = await response.text()
            await asyncio.sleep(3.0)
            settled, peak = resident_mib(process.pid)
        up = sum(
            1
            for line in body.splitlines()
            if line.startswith("akv_exporter_cluster_up{") and line.endswith(" 1")
        )
        return FirstView(polling - began, ready - polling, up, rss, peak, settled, cpu)
    finally:
        with contextlib.suppress(Exception):
            stop(process)
