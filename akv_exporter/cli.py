"""Command line: argument parsing and wiring only."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import importlib
import logging
import os
import socket
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from akv_exporter import __version__
from akv_exporter.config import Config, ConfigError, parse_duration
from akv_exporter.inventory import Inventory, load
from akv_exporter.listen import listen_argument
from akv_exporter.logs import setup_logging
from akv_exporter.shard import UNSHARDED, Shard, ordinal_from_hostname

log = logging.getLogger("akv_exporter")


def _duration(value: str) -> float:
    try:
        seconds = parse_duration(value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    if seconds <= 0:
        raise argparse.ArgumentTypeError("must be more than 0")
    return seconds


def _at_least(minimum: int):
    """Return an argparse type: a whole number of at least ``minimum``."""

    def parse(value: str) -> int:
        try:
            count = int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
        if count < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {count}")
        return count

    return parse


_cluster_count = _at_least(1)
_count = _at_least(0)


def shard_of_args(args: argparse.Namespace, hostname: str | None = None) -> Shard:
    """Return the shard ``run``'s flags ask for; ValueError with one line when they disagree."""
    if args.shard is None and not args.shard_from_hostname:
        if args.total_shards not in (None, 1):
            raise ValueError("--total-shards needs --shard or --shard-from-hostname")
        return UNSHARDED
    if args.total_shards is None:
        flag = "--shard" if args.shard is not None else "--shard-from-hostname"
        raise ValueError(f"{flag} needs --total-shards")
    if args.shard_from_hostname:
        ordinal = ordinal_from_hostname(hostname if hostname is not None else socket.gethostname())
    else:
        ordinal = args.shard
    return Shard(ordinal, args.total_shards)


def config_flags(command: argparse.ArgumentParser, *, required: bool) -> None:
    """Add --config.file, Prometheus' name, and the older --config."""
    named = command.add_mutually_exclusive_group(required=required)
    named.add_argument(
        "--config.file", dest="config", type=Path, metavar="FILE", help="configuration file (YAML)"
    )
    named.add_argument(
        "--config", dest="config", type=Path, metavar="FILE", help="deprecated: --config.file"
    )


def serving_flags(command: argparse.ArgumentParser, *, required: bool) -> None:
    """Add the flags that say where and how `run` serves: `run` and `healthcheck` share them.

    Prometheus' own names, as every exporter has them, and the older names, kept working.
    """
    config_flags(command, required=required)
    listen = command.add_mutually_exclusive_group()
    listen.add_argument(
        "--web.listen-address",
        dest="listen",
        type=listen_argument,
        metavar="HOST:PORT",
        help="where to serve (overrides web.listen)",
    )
    listen.add_argument(
        "--listen",
        dest="listen",
        type=listen_argument,
        metavar="HOST:PORT",
        help="deprecated: --web.listen-address",
    )
    web_config_flag(command)


def web_config_flag(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--web.config.file",
        dest="web_config_file",
        type=Path,
        metavar="FILE",
        help="TLS, client certificates, basic auth and response headers, in the format of"
        " Prometheus' exporter-toolkit (docs/configuration.md); replaces web's TLS and auth",
    )


def serving_config(args: argparse.Namespace) -> Config:
    """Return the configuration `run` serves with these flags; ConfigError when it cannot.

    `healthcheck` reads it the same way, so every flag that changes where or how `run` serves
    (serving_flags) changes where and how the health check asks.
    """
    return load(args.config, args.web_config_file).config


def serving_address(args: argparse.Namespace, config: Config) -> tuple[str, int]:
    """Return the HOST and PORT `run` listens on with these flags and this configuration."""
    return args.listen or config.web.host_port


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="akv-exporter",
        description="Prometheus exporter and health monitor for ONTAP Azure Key Vault.",
    )
    parser.add_argument("--version", action="version", version=f"akv-exporter {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def logging_flags(command: argparse.ArgumentParser) -> None:
        for new, old, default, choices in (
            ("--log.level", "--log-level", "info", ["debug", "info", "warn", "warning", "error"]),
            ("--log.format", "--log-format", "text", ["text", "logfmt", "json"]),
        ):
            flag = command.add_mutually_exclusive_group()
            dest = new.removeprefix("--").replace(".", "_")
            shown = dest.removeprefix("log_").upper()
            flag.add_argument(
                new,
                dest=dest,
                default=default,
                choices=choices,
                metavar=shown,
                help=f"{', '.join(choices)} (default {default})",
            )
            flag.add_argument(
                old, dest=dest, choices=choices, metavar=shown, help=f"deprecated: {new}"
            )

    run = commands.add_parser("run", help="poll the configured clusters and serve HTTP")
    serving_flags(run, required=True)
    sharding = run.add_argument_group(
        "sharding", "split the configured clusters between processes (docs/scaling.md)"
    )
    ordinal = sharding.add_mutually_exclusive_group()
    ordinal.add_argument(
        "--shard", type=_count, metavar="I", help="poll only shard I (0..N-1) of --total-shards"
    )
    ordinal.add_argument(
        "--shard-from-hostname",
        action="store_true",
        help="take I from the host name's trailing -<ordinal> (StatefulSet pod akv-exporter-2: 2)",
    )
    sharding.add_argument(
        "--total-shards", type=_count, metavar="N", help="how many shards share the clusters"
    )
    logging_flags(run)

    demo = commands.add_parser("demo", help="a simulated fleet and the exporter polling it")
    # Checked here, before the simulator starts: a bad value is argparse's one line, exit 2.
    demo.add_argument(
        "--clusters", type=_cluster_count, default=12, help="simulated clusters (default 12)"
    )
    demo.add_argument(
        "--listen", type=listen_argument, default=("127.0.0.1", 9877), help="HOST:PORT"
    )
    demo.add_argument("--seed", type=int, default=None, help="fleet seed (default: random)")
    demo.add_argument(
        "--interval", type=_duration, default="15s", help="poll interval (default 15s)"
    )
    logging_flags(demo)

    # The simulator parses its own flags (ontap_simulator.cli): one entry for this and
    # `python -m ontap_simulator`, and `run` never imports the simulator to build its parser.
    commands.add_parser(
        "simulate",
        help="the ONTAP REST simulator alone (flags: akv-exporter simulate --help)",
        add_help=False,
    )

    healthcheck = commands.add_parser(
        "healthcheck",
        help="ask a running exporter's /-/healthy where it serves (the image's HEALTHCHECK)",
        description="With no flags: the flags of the `akv-exporter run` that is this"
        " container's first process; else the --config and --listen given to `run`.",
    )
    serving_flags(healthcheck, required=False)
    healthcheck.add_argument(
        "--timeout", type=_duration, default="4s", help="how long to wait (default 4s)"
    )

    check = commands.add_parser("check", help="poll now; monitoring-plugin exit codes")
    config_flags(check, required=True)
    check.add_argument("--cluster", action="append", help="only this cluster (repeatable)")
    check.add_argument("--format", default="table", choices=["table", "json"])
    check.add_argument(
        "--timeout", type=_duration, help="per-cluster poll timeout (default: poll.timeout)"
    )

    check_config = commands.add_parser("check-config", help="validate a configuration file")
    check_config.add_argument("file", type=Path)
    web_config_flag(check_config)
    check_config.add_argument(
        "--list", action="store_true", help="print every cluster and where it is defined"
    )
    return parser


def _load_or_exit(path: Path, web_config_file: Path | None) -> Inventory:
    """Return the configuration at ``path`` with its inventory, or print its problems and exit 2."""
    try:
        return load(path, web_config_file)
    except ConfigError as error:
        for problem in error.problems:
            print(problem, file=sys.stderr)
        raise SystemExit(2) from None


def _print_inventory(inventory: Inventory) -> None:
    """Print one line per cluster (name, address, where it is defined, labels), then skips."""
    rows = [
        (
            cluster.name or "(ONTAP's name)",
            cluster.address,
            cluster.origin,
            ",".join(f"{name}={value}" for name, value in cluster.labels),
        )
        for cluster in inventory.config.clusters
    ]
    header = ("CLUSTER", "ADDRESS", "DEFINED AT", "LABELS")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(3)]
    for name, address, origin, labels in [header, *rows]:
        cells = (name.ljust(widths[0]), address.ljust(widths[1]), origin.ljust(widths[2]), labels)
        print("  ".join(cells).rstrip())
    for where, why in inventory.skipped:
        print(f"skipped {where}: {why}")


# What a shell reports for a command ended by SIGPIPE (128 + 13), as `yes | head` shows.
EXIT_BROKEN_PIPE = 141


# Right wherever it is read: the container image runs the exporter only and never gets the
# simulator, so the way to it is a source tree, outside the image.
SIMULATOR_INSTALL = (
    "pip install ./simulator in akv-exporter's source tree (ontap-simulator;"
    " the container image never includes it)"
)


def _simulator_part(module: str, command: str) -> ModuleType:
    """Return ``module`` (the demo or the simulator's command line), or say what to install.

    A plain install has no `cryptography` (the simulator's certificates need it) and the
    container image has no simulator at all: either way one line, exit 2, never a traceback.
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as error:
        missing = error.name or ""
        if missing != "cryptography" and not missing.startswith("ontap_simulator"):
            raise
        print(
            f"akv-exporter {command} needs the simulator, which this installation lacks:"
            f" {SIMULATOR_INSTALL}",
            file=sys.stderr,
        )
        raise SystemExit(2) from None


def _cannot_start(args: argparse.Namespace, problems: list[str]) -> int:
    """Report start-up problems one line each (log lines with --log.format json, logfmt); 2."""
    for problem in problems:
        if args.log_format != "text":  # a log pipeline reads every line as JSON or logfmt
            log.error("cannot start: %s", problem)
        else:  # exactly check-config's lines
            print(problem, file=sys.stderr)
    return 2


def _run(args: argparse.Namespace) -> int:
    """`run`: poll and serve; exit 2 with one log line per start-up problem (JSON lines too)."""
    from akv_exporter.certificates import CertificateProblem
    from akv_exporter.service import run_exporter
    from akv_exporter.web.listener import ListenError

    try:
        shard = shard_of_args(args)
    except ValueError as error:
        return _cannot_start(args, [f"akv-exporter run: {error}"])
    try:
        config = serving_config(args)
    except ConfigError as error:
        return _cannot_start(args, error.problems)
    host, port = serving_address(args, config)
    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(
                run_exporter(config, host, port, shard=shard, follow_config=args.listen is None)
            )
    except ListenError as error:
        log.error("cannot start: cannot listen on %s:%s: %s", host, port, error.strerror)
        return 2
    except CertificateProblem as error:  # the files changed since they were checked
        log.error("cannot start: %s", config.web.problem(error.key, str(error), args.config))
        return 2
    return 0


def _healthcheck(args: argparse.Namespace) -> int:
    """`healthcheck`: 0 when the exporter answers /-/healthy with 200, else 1 with one line."""
    from akv_exporter.healthcheck import HealthcheckError, ask, first_process_arguments

    try:
        served = args if args.config is not None else first_process_arguments(build_parser())
        try:
            config = serving_config(served)
        except ConfigError as error:
            # A cluster entry's problem (one team's unset secret, as a refused reload leaves the
            # file) changes nothing about where the running exporter serves.
            config = error.beside_cluster_entries()
            if config is None:
                raise
        host, port = serving_address(served, config)
        url = ask(
            host,
            port,
            config.web.tls_cert_file is not None,
            args.timeout,
            client_certificate_required=config.web.client_auth_type == "RequireAndVerifyClientCert",
        )
    except ConfigError as error:
        print(f"unhealthy: {error.problems[0]}", file=sys.stderr)
        return 1
    except HealthcheckError as error:
        print(f"unhealthy: {error}", file=sys.stderr)
        return 1
    print(f"healthy: {url}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; a reader that closes its end early (`check | head`) ends it quietly."""
    try:
        code = _main(argv)
        sys.stdout.flush()  # inside the try: a closed pipe shows at the last flush too
        return code
    except BrokenPipeError:
        # Nothing more can reach the reader; point stdout at /dev/null so that the flush at
        # interpreter exit does not print "Exception ignored ... BrokenPipeError" either.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if args.command == "simulate":
        simulator_cli = _simulator_part("ontap_simulator.cli", "simulate")
        return simulator_cli.main(rest, prog="akv-exporter simulate")
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    if args.command == "check-config":
        inventory = _load_or_exit(args.file, args.web_config_file)
        print(f"{args.file}: OK, {len(inventory.config.clusters)} cluster(s)")
        if args.list:
            _print_inventory(inventory)
        return 0
    if args.command == "run":
        setup_logging(args.log_level, args.log_format)
        return _run(args)
    if args.command == "demo":
        demo = _simulator_part("akv_exporter.demo", "demo")
        setup_logging(args.log_level, args.log_format)
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(demo.run_demo(args))
        return 0
    if args.command == "healthcheck":
        return _healthcheck(args)
    if args.command == "check":
        from akv_exporter.check import run_check

        try:
            config = load(args.config).config
        except ConfigError as error:
            # Only the clusters asked about decide: one Nagios service per cluster must not
            # turn UNKNOWN over another team's unset variable (which is still named on stderr).
            config, concern = error.about_only(args.cluster or ())
            for problem in error.problems:
                print(problem, file=sys.stderr)
            if config is None:
                # A monitoring plugin that cannot run says UNKNOWN (3), never CRITICAL (2).
                print(f"AKV UNKNOWN - bad configuration: {concern[0]}")
                return 3
        if args.timeout is not None:
            poll = dataclasses.replace(config.poll, timeout=args.timeout)
            config = dataclasses.replace(config, poll=poll)
        checking = run_check(config, args.cluster, args.format)
        try:
            return asyncio.run(checking)
        except Exception as error:
            # Whatever breaks (a file system, a resource limit), a plugin says UNKNOWN in one
            # line: a traceback exits 1, which Nagios reads as WARNING about the key managers.
            checking.close()  # never started when the loop could not be made: no warning
            # A loop that failed half-way through its construction complains again when it is
            # collected at exit ("Exception ignored in BaseEventLoop.__del__"): the verdict is
            # the one line to show.
            sys.unraisablehook = lambda _: None
            reason = " ".join(str(error).split())
            print(f"AKV UNKNOWN - check failed: {type(error).__name__}: {reason}")
            return 3
    raise AssertionError(args.command)


if __name__ == "__main__":
    sys.exit(main())
