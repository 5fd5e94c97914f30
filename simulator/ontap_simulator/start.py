"""Start and run the simulated fleet: ``start_simulator`` and ``run_simulator``.

``start_simulator`` starts every cluster's HTTPS (or plain HTTP) listener on loopback, the
optional control API and the optional incident scheduler; ``run_simulator`` does the same and
serves until SIGINT or SIGTERM. See docs/simulator.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from aiohttp import web

from akv_exporter.limits import ensure_open_files
from ontap_simulator.clock import SimClock
from ontap_simulator.control import control_app
from ontap_simulator.fleet import generate_fleet
from ontap_simulator.health import HealthMonitor
from ontap_simulator.incidents import IncidentScheduler, IncidentTiming
from ontap_simulator.scenario import ScenarioError, load_scenario  # noqa: F401 (the package exports it)
from ontap_simulator.server import Fleet, OntapServers
from ontap_simulator.tls import server_context, write_certificates

# The start line names a cluster's other key managers in this order.
_KEY_MANAGER_ORDER = ("gcp", "aws", "barbican", "kmip", "okm")
# Start-up lists every cluster up to this many; beyond, GET /simulator/clusters lists them.
_LISTED_CLUSTERS = 50


@dataclass(frozen=True)
class SimulatorOptions:
    """How to start the simulator; the defaults are `akv-exporter simulate`'s."""

    clusters: int = 12
    seed: int = 0
    scenario: Path | None = None
    host: str = "127.0.0.1"
    port: int = 0  # first cluster's port; cluster i gets port+i; 0 = ephemeral ports
    control_host: str = "127.0.0.1"
    control_port: int | None = None  # None = no control API; 0 = ephemeral
    plain_http: bool = False
    incidents: bool = False
    # ONTAP's key-manager timers (health checks, 60 minutes to volume offline) run this many
    # times as fast as real time; timestamps stay wall-clock. See clock.py.
    clock_factor: float = 1.0
    # The generated fleet's key managers: "mixed" (AKV everywhere, some clusters also GCP, AWS,
    # Barbican, KMIP or the Onboard Key Manager) or "akv" (AKV only). See fleet.py.
    providers: str = "mixed"
    out: TextIO = field(default=sys.stdout, compare=False)
    incident_timing: IncidentTiming = field(default_factory=IncidentTiming)


@dataclass(frozen=True)
class SimulatedClusterInfo:
    """Where one simulated cluster listens and the credentials it accepts (at start)."""

    name: str
    url: str  # e.g. https://127.0.0.1:41234
    username: str
    password: str


class RunningSimulator:
    """A started simulator: its clusters, CA file, control URL; ``stop()`` ends it all."""

    def __init__(
        self,
        fleet: Fleet,
        servers: OntapServers,
        control: web.AppRunner | None,
        control_url: str | None,
        ca_file: Path | None,
        certificate_directory: Path | None,
        incidents: asyncio.Task[None] | None,
        health: HealthMonitor,
        health_task: asyncio.Task[None],
    ) -> None:
        self.fleet = fleet
        self.health = health  # its .clock is the simulator's clock
        self.clusters = [
            SimulatedClusterInfo(c.name, c.url, c.state.username, c.state.password) for c in fleet
        ]
        self.ca_file = ca_file
        self.control_url = control_url
        self._servers = servers
        self._control = control
        self._certificate_directory = certificate_directory
        self._incidents = incidents
        self._health_task = health_task
        self._stopped = False

    async def stop(self) -> None:
        """Stop the incidents, the control API and every cluster; remove the certificates."""
        if self._stopped:
            return
        self._stopped = True
        for task in (self._incidents, self._health_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._control is not None:
            await self._control.cleanup()
        await self._servers.stop()
        if self._certificate_directory is not None:
            shutil.rmtree(self._certificate_directory, ignore_errors=True)


async def start_simulator(options: SimulatorOptions) -> RunningSimulator:
    """Return a running simulator: listeners up, start-up lines printed to ``options.out``.

    Raises ScenarioError for an unusable scenario file and OSError when a port is taken.
    """
    if options.scenario is not None:
        states = load_scenario(options.scenario)
    else:
        if options.clusters < 1:
            raise ValueError(f"--clusters must be at least 1, got {options.clusters}")
        states = generate_fleet(options.clusters, options.seed, options.providers)
    fleet = Fleet(states)
    health = HealthMonitor(fleet, SimClock(options.clock_factor))
    # One listening socket per cluster plus its clients' connections.
    ensure_open_files(4 * len(fleet) + 256, f"{len(fleet)} simulated clusters")

    certificate_directory = ca_file = ssl_context = None
    if not options.plain_http:
        certificate_directory = Path(tempfile.mkdtemp(prefix="akv-simulator-"))
        files = write_certificates(certificate_directory)
        ca_file = files.ca_file
        ssl_context = server_context(files)
    servers = OntapServers(fleet, ssl_context)
    control = control_url = incidents = None
    try:
        await servers.start(options.host, options.port)
        if options.control_port is not None:
            control = web.AppRunner(
                control_app(fleet, health), access_log=None, handle_signals=False
            )
            await control.setup()
            site = web.TCPSite(control, options.control_host, options.control_port)
            await site.start()
            port = control.addresses[0][1]
            host = (
                f"[{options.control_host}]" if ":" in options.control_host else options.control_host
            )
            control_url = f"http://{host}:{port}"
    except BaseException:
        if control is not None:
            await control.cleanup()
        await servers.stop()
        if certificate_directory is not None:
            shutil.rmtree(certificate_directory, ignore_errors=True)
        raise
    if options.incidents:
        scheduler = IncidentScheduler(fleet, options.seed, options.out, options.incident_timing)
        incidents = asyncio.create_task(scheduler.run(), name="simulator-incidents")
    health_task = asyncio.create_task(health.run(), name="simulator-health-monitor")
    running = RunningSimulator(
        fleet,
        servers,
        control,
        control_url,
        ca_file,
        certificate_directory,
        incidents,
        health,
        health_task,
    )
    _print_start(running, options)
    return running


def _print_start(running: RunningSimulator, options: SimulatorOptions) -> None:
    out = options.out
    source = f"scenario {options.scenario}" if options.scenario else f"seed {options.seed}"
    protocol = "plain HTTP" if options.plain_http else "HTTPS"
    print(f"ONTAP simulator: {len(running.clusters)} clusters ({source}), {protocol}", file=out)
    if running.ca_file is not None:
        print(f"CA certificate: {running.ca_file}", file=out)
    if running.control_url is not None:
        print(f"control API: {running.control_url}/simulator/clusters", file=out)
    if options.clock_factor != 1:
        print(
            f"clock: ONTAP's key-manager timers run {options.clock_factor:g} times as fast",
            file=out,
        )
    if options.incidents:
        timing = options.incident_timing
        print(
            f"incidents: on, the first in {timing.first_after_s:g}s, each healing after "
            f"{timing.duration_s[0]:g}-{timing.duration_s[1]:g}s",
            file=out,
        )
    for info, cluster in zip(running.clusters[:_LISTED_CLUSTERS], running.fleet, strict=False):
        state = cluster.state
        others = sorted(
            [c.provider for c in state.cloud_kms] + [m.kind for m in state.key_managers],
            key=_KEY_MANAGER_ORDER.index,
        )
        also = f" +{','.join(others)}" if others else ""
        print(
            f"  {info.name:<16} {info.url:<28} ONTAP {state.release:<7} "
            f"{len(state.nodes):>2} nodes {len(state.akvs)} AKV{also}  user {info.username}",
            file=out,
        )
    hidden = len(running.clusters) - _LISTED_CLUSTERS
    if hidden > 0:
        print(f"  ... and {hidden} more (GET /simulator/clusters lists every one)", file=out)
    out.flush()


async def run_simulator(options: SimulatorOptions) -> None:
    """Start the simulator, print where it listens, serve until SIGINT/SIGTERM, stop cleanly."""
    running = await start_simulator(options)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        print("ONTAP simulator: stopping", file=options.out, flush=True)
        await running.stop()
