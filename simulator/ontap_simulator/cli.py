"""The simulator's one command line: `akv-exporter simulate` and `python -m ontap_simulator`.

Both add the same flags (``add_arguments``) and run through ``run``, so they share one listen
parser and one error handling: an unusable scenario file, a bad flag value or a taken port is one
line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import Sequence
from pathlib import Path

from akv_exporter.listen import listen_argument
from akv_exporter.logs import setup_logging
from ontap_simulator import ScenarioError, SimulatorOptions, run_simulator


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the simulator's flags to ``parser``."""
    parser.add_argument("--clusters", type=int, default=12, help="clusters to generate")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated fleet")
    parser.add_argument("--scenario", type=Path, help="scenario YAML file (instead of --clusters)")
    parser.add_argument(
        "--listen",
        type=listen_argument,
        default=("127.0.0.1", 0),
        help="HOST:PORT of the first cluster; cluster i listens on PORT+i (0: ephemeral ports)",
    )
    parser.add_argument("--control", type=listen_argument, help="HOST:PORT of the control API")
    parser.add_argument(
        "--providers",
        choices=("mixed", "akv"),
        default="mixed",
        help="generated key managers: AKV everywhere and on some clusters GCP, AWS, Barbican, "
        "KMIP or the Onboard Key Manager too (mixed, the default), or AKV only",
    )
    parser.add_argument("--plain-http", action="store_true", help="serve HTTP, not HTTPS")
    parser.add_argument("--incidents", action="store_true", help="inject incidents that heal")
    parser.add_argument(
        "--clock-factor",
        type=float,
        default=1.0,
        help="run ONTAP's key-manager timers (health checks, volume offlining) this many times"
        " as fast; timestamps stay wall-clock (default 1)",
    )


def options_from(args: argparse.Namespace) -> SimulatorOptions:
    """Return the simulator's options from parsed flags."""
    host, port = args.listen
    control_host, control_port = args.control or ("127.0.0.1", None)
    return SimulatorOptions(
        clusters=args.clusters,
        seed=args.seed,
        scenario=args.scenario,
        host=host,
        port=port,
        control_host=control_host,
        control_port=control_port,
        plain_http=args.plain_http,
        incidents=args.incidents,
        clock_factor=args.clock_factor,
        providers=args.providers,
    )


def run(args: argparse.Namespace) -> int:
    """Serve the simulator until SIGINT/SIGTERM; return the exit status (2: cannot start)."""
    setup_logging("info", "text")
    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(run_simulator(options_from(args)))
    except (ScenarioError, ValueError, OSError) as error:
        # ScenarioError names the file and key; ValueError a bad flag; OSError a taken port.
        print(f"simulator: {error}", file=sys.stderr)
        return 2
    return 0


def main(argv: Sequence[str] | None = None, prog: str = "python -m ontap_simulator") -> int:
    """Parse the simulator's flags, run it, return the exit status."""
    parser = argparse.ArgumentParser(prog=prog, description="Simulated ONTAP clusters with AKV.")
    add_arguments(parser)
    return run(parser.parse_args(argv))
