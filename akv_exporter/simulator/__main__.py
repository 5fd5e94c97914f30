"""``python -m akv_exporter.simulator``: the simulator alone, with `simulate`'s flags."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from akv_exporter.simulator import ScenarioError, SimulatorOptions, run_simulator


def _address(text: str) -> tuple[str, int]:
    host, separator, port = text.rpartition(":")
    if not separator or not port.isdigit() or not host:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


def main(argv: list[str] | None = None) -> int:
    """Run the simulator from command-line flags; return the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m akv_exporter.simulator", description="Simulated ONTAP clusters with AKV."
    )
    parser.add_argument("--clusters", type=int, default=12, help="clusters to generate")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated fleet")
    parser.add_argument("--scenario", type=Path, help="scenario YAML file (instead of --clusters)")
    parser.add_argument(
        "--listen", type=_address, default=("127.0.0.1", 0),
        help="HOST:PORT of the first cluster; cluster i listens on PORT+i (0: ephemeral ports)",
    )  # fmt: skip
    parser.add_argument("--control", type=_address, help="HOST:PORT of the control API")
    parser.add_argument("--plain-http", action="store_true", help="serve HTTP, not HTTPS")
    parser.add_argument("--incidents", action="store_true", help="inject incidents that heal")
    args = parser.parse_args(argv)
    options = SimulatorOptions(
        clusters=args.clusters,
        seed=args.seed,
        scenario=args.scenario,
        host=args.listen[0],
        port=args.listen[1],
        control_host=args.control[0] if args.control else "127.0.0.1",
        control_port=args.control[1] if args.control else None,
        plain_http=args.plain_http,
        incidents=args.incidents,
    )
    try:
        asyncio.run(run_simulator(options))
    except (ScenarioError, ValueError, OSError) as error:
        print(f"simulator: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
