"""Command line: argument parsing and wiring only."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from akv_exporter import __version__
from akv_exporter.config import Config, ConfigError, load_config, parse_duration, split_listen
from akv_exporter.logs import setup_logging

log = logging.getLogger("akv_exporter")


def _listen(value: str) -> tuple[str, int]:
    try:
        return split_listen(value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _duration(value: str) -> float:
    try:
        seconds = parse_duration(value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    if seconds <= 0:
        raise argparse.ArgumentTypeError("must be more than 0")
    return seconds


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="akv-exporter",
        description="Prometheus exporter and health monitor for ONTAP Azure Key Vault.",
    )
    parser.add_argument("--version", action="version", version=f"akv-exporter {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def logging_flags(command: argparse.ArgumentParser) -> None:
        command.add_argument(
            "--log-level", default="info", choices=["debug", "info", "warning", "error"]
        )
        command.add_argument("--log-format", default="text", choices=["text", "json"])

    run = commands.add_parser("run", help="poll the configured clusters and serve HTTP")
    run.add_argument("--config", required=True, type=Path, help="configuration file (YAML)")
    run.add_argument("--listen", type=_listen, help="HOST:PORT (overrides web.listen)")
    logging_flags(run)

    demo = commands.add_parser("demo", help="a simulated fleet and the exporter polling it")
    demo.add_argument("--clusters", type=int, default=12, help="simulated clusters (default 12)")
    demo.add_argument("--listen", type=_listen, default=("127.0.0.1", 9877), help="HOST:PORT")
    demo.add_argument("--seed", type=int, default=None, help="fleet seed (default: random)")
    demo.add_argument("--interval", default="15s", help="poll interval (default 15s)")
    logging_flags(demo)

    simulate = commands.add_parser("simulate", help="the ONTAP REST simulator alone")
    simulate.add_argument("--clusters", type=int, default=12)
    simulate.add_argument("--scenario", type=Path, help="scenario file (YAML)")
    simulate.add_argument(
        "--listen",
        type=_listen,
        default=("127.0.0.1", 0),
        help="HOST:PORT of the first cluster; the others follow (port 0: any free ports)",
    )
    simulate.add_argument("--control", type=_listen, help="HOST:PORT of the control API")
    simulate.add_argument("--plain-http", action="store_true", help="serve HTTP, not HTTPS")
    simulate.add_argument("--seed", type=int, default=0)
    simulate.add_argument("--incidents", action="store_true", help="inject incidents now and then")

    check = commands.add_parser("check", help="poll now; monitoring-plugin exit codes")
    check.add_argument("--config", required=True, type=Path)
    check.add_argument("--cluster", action="append", help="only this cluster (repeatable)")
    check.add_argument("--format", default="table", choices=["table", "json"])
    check.add_argument(
        "--timeout", type=_duration, help="per-cluster poll timeout (default: poll.timeout)"
    )

    check_config = commands.add_parser("check-config", help="validate a configuration file")
    check_config.add_argument("file", type=Path)
    return parser


def _load_or_exit(path: Path) -> Config:
    """Return the configuration at ``path``, or print its problems and exit 2."""
    try:
        return load_config(path)
    except ConfigError as error:
        for problem in error.problems:
            print(problem, file=sys.stderr)
        raise SystemExit(2) from None


async def run_exporter(config: Config, host: str, port: int, *, on_ready=None) -> None:
    """Poll and serve until SIGINT or SIGTERM; SIGHUP reloads the configuration."""
    from akv_exporter.exporter import Exporter
    from akv_exporter.web.app import serve

    exporter = Exporter(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    reloads: set[asyncio.Task] = set()

    def hangup() -> None:
        task = loop.create_task(exporter.reload())
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    loop.add_signal_handler(signal.SIGHUP, hangup)
    await exporter.start()
    runner = await serve(exporter, host, port)
    for address in runner.addresses:
        log.info("listening on %s:%s", *address[:2])
    if on_ready is not None:
        on_ready(exporter, runner)
    try:
        await stop.wait()
    finally:
        log.info("shutting down")
        await runner.cleanup()
        await exporter.stop()
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.remove_signal_handler(signum)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "check-config":
        config = _load_or_exit(args.file)
        print(f"{args.file}: OK, {len(config.clusters)} cluster(s)")
        return 0
    if args.command == "run":
        setup_logging(args.log_level, args.log_format)
        config = _load_or_exit(args.config)
        host, port = args.listen or config.web.host_port
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(run_exporter(config, host, port))
        return 0
    if args.command == "simulate":
        from akv_exporter.simulator import SimulatorOptions, run_simulator

        setup_logging("info", "text")
        host, port = args.listen
        control_host, control_port = args.control or ("127.0.0.1", None)
        options = SimulatorOptions(
            clusters=args.clusters,
            seed=args.seed,
            scenario=args.scenario,
            host=host,
            port=port,
            control_host=control_host,
            control_port=control_port,
            plain_http=args.plain_http,
            incidents=args.incidents,
        )
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(run_simulator(options))
        return 0
    if args.command == "demo":
        from akv_exporter.demo import run_demo

        setup_logging(args.log_level, args.log_format)
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(run_demo(args))
        return 0
    if args.command == "check":
        from akv_exporter.check import run_check

        try:
            config = load_config(args.config)
        except ConfigError as error:
            # A monitoring plugin that cannot run says UNKNOWN (3), never CRITICAL (2).
            print(f"AKV UNKNOWN - bad configuration: {error.problems[0]}")
            for problem in error.problems:
                print(problem, file=sys.stderr)
            return 3
        if args.timeout is not None:
            poll = dataclasses.replace(config.poll, timeout=args.timeout)
            config = dataclasses.replace(config, poll=poll)
        return asyncio.run(run_check(config, args.cluster, args.format))
    raise AssertionError(args.command)


if __name__ == "__main__":
    sys.exit(main())
