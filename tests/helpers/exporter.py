"""The exporter in the test's own event loop, on loopback, and `akv-exporter check` as a process."""

from __future__ import annotations

import asyncio
import sys

from akv_exporter.config import Config
from akv_exporter.exporter import Exporter
from akv_exporter.web.app import serve
from tests.helpers.configs import CANARY
from tests.helpers.loopback import free_port


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
