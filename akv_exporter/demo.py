"""`akv-exporter demo`: a simulated ONTAP fleet and the exporter polling it, nothing to configure.

The only place where the exporter and the simulator meet: the simulator's clusters become an
in-memory configuration, and the exporter runs on it exactly as `run` would.
"""

from __future__ import annotations

import argparse
import random
import socket
import sys
import tempfile
from pathlib import Path

from ontap_simulator import RunningSimulator, SimulatorOptions, start_simulator

from akv_exporter.config import (
    ClusterConfig,
    Config,
    PollConfig,
    SecretSource,
    TlsConfig,
    WebConfig,
    parse_duration,
)
from akv_exporter.service import run_exporter
from akv_exporter.web.listener import listen_error

# The simulator's clock factor in the demo: incidents last 2 to 6 minutes, i.e. 40 to 120
# simulated minutes, so some outages pass ONTAP's 60-minute volume-offline point and some heal
# before it (docs/simulator.md, "The health monitor and the simulator's clock").
DEMO_CLOCK_FACTOR = 20


def demo_config(simulator: RunningSimulator, listen: str, interval: float, state: Path) -> Config:
    """Return a configuration polling every simulated cluster, trusting the simulator's CA."""
    clusters = tuple(
        ClusterConfig(
            name=cluster.name,
            address=cluster.url,
            url=cluster.url,
            username=cluster.username,
            secret=SecretSource("password", cluster.password),
            client_cert_file=None,
            client_key_file=None,
            tls=TlsConfig(ca_file=simulator.ca_file),
            labels=(("environment", "demo"),),
        )
        for cluster in simulator.clusters
    )
    poll = PollConfig(
        interval=interval,
        timeout=min(10.0, interval),
        stale_after=interval * 4,
        max_backoff=interval * 4,
    )
    return Config(
        path=None, web=WebConfig(listen=listen), poll=poll, clusters=clusters, state_file=state
    )


def refuse_a_busy_address(host: str, port: int) -> None:
    """Exit 2 with run's one line when host:port cannot be bound, before anything is started.

    The exporter binds only once it has the simulated fleet's configuration; without this check
    a busy port printed the simulator's whole table first.
    """
    if port == 0:
        return
    try:
        for family, kind, proto, _, address in socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        ):
            with socket.socket(family, kind, proto) as probe:
                # As asyncio's server does, so that a port in TIME_WAIT is not called busy.
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                probe.bind(address)
    except OSError as error:
        reason = listen_error(error).strerror
        print(f"demo: cannot listen on {host}:{port}: {reason}", file=sys.stderr)
        raise SystemExit(2) from None


async def run_demo(args: argparse.Namespace) -> None:
    """Start the simulated fleet with incidents and the exporter; stop both on Ctrl-C/SIGTERM."""
    refuse_a_busy_address(*args.listen)
    seed = args.seed if args.seed is not None else random.randrange(1 << 16)
    simulator = await start_simulator(
        SimulatorOptions(
            clusters=args.clusters,
            seed=seed,
            incidents=True,
            control_port=0,
            clock_factor=DEMO_CLOCK_FACTOR,
        )
    )
    host, port = args.listen
    interval = parse_duration(args.interval)
    with tempfile.TemporaryDirectory(prefix="akv-demo-") as scratch:
        config = demo_config(simulator, f"{host}:{port}", interval, Path(scratch) / "state.json")

        def announce(_exporter, runner) -> None:
            bound_host, bound_port = runner.addresses[0][:2]
            base = f"http://{bound_host}:{bound_port}"
            print(
                f"\nakv-exporter demo: {len(config.clusters)} simulated ONTAP clusters"
                f" (seed {seed}), polled every {interval:g}s;"
                " incidents come and go every few minutes;\n"
                f"  ONTAP's key-manager timers run {DEMO_CLOCK_FACTOR}x fast, so an outage of a"
                " few minutes takes encrypted volumes offline.\n"
                f"  status page:       {base}/\n"
                f"  metrics:           {base}/metrics\n"
                f"  status JSON:       {base}/api/v1/status\n"
                f"  simulator control: {simulator.control_url}/simulator/clusters\n"
                "Press Ctrl-C to stop.\n",
                flush=True,
            )

        try:
            await run_exporter(config, host, port, on_ready=announce)
        except OSError as error:
            # A start-up failure, as for `run`: one line, exit 2.
            print(f"demo: cannot listen on {host}:{port}: {error.strerror}", file=sys.stderr)
            raise SystemExit(2) from None
        finally:
            await simulator.stop()
