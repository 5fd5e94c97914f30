"""`akv-exporter run` as real processes (sharding, high availability): separate processes, as
in production, so nothing (a hash seed, a module cache) is shared."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.helpers.loopback import STARTUP_SECONDS, fetch, free_port, wait_until


def stop_process(process: subprocess.Popen | None) -> None:
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


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
