"""`make soak`: the exporter under a long, steady, realistic load, watched for leaks and lateness.

Three processes on loopback: a simulated ONTAP fleet with incidents on (its own process, so its
memory is not counted), the exporter (`akv-exporter run` on a configuration file, with a probe
that samples its asyncio tasks and the lateness of its poll schedule), and this driver, which
hits /metrics, /probe, / and /api/v1/status continuously, reloads the configuration every minute
(SIGHUP and POST /-/reload in turn, one cluster's labels changing each time) and samples the
exporter's resident memory and open descriptors from /proc.

After a warm-up (a third of the run, at most 5 minutes) it compares the start of the steady
state with its end, and fails (exit 1) when resident memory grew more than 10%, descriptors or
tasks grew by more than the driver's own connections, or a scheduled poll began more than one
poll interval late. The report goes to
stdout and bench/results/soak.md. Only 127.0.0.1 is contacted.

    python -m bench.soak --minutes 30 --clusters 1000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import yaml

from bench.fleet import resident_mib, stop

RESULTS = Path(__file__).resolve().parent / "results"
SAMPLE_EVERY = 10.0  # seconds between resource samples
PATHS = ("/metrics", "/probe", "/", "/api/v1/status")  # each hit back to back by one client
# The driver's own connections (one per path, one for reloads), each served by a task: how far
# descriptors and tasks may move between two samples without anything leaking.
DRIVER_SLACK = len(PATHS) + 1
STATS_EVERY = 5.0  # seconds between the exporter's own task/lateness reports
MEMORY_GROWTH = 0.10
STARTUP_TIMEOUT = 600.0


# --- the two children ----------------------------------------------------------------------


async def _simulator(args: argparse.Namespace) -> None:
    """Child: the fleet with incidents; writes the exporter's configuration, serves until TERM."""
    from ontap_simulator import SimulatorOptions, start_simulator

    simulator = await start_simulator(
        SimulatorOptions(
            clusters=args.clusters,
            seed=args.seed,
            incidents=True,
            control_port=0,
            out=open(os.devnull, "w"),  # noqa: SIM115 (lives as long as the process)
        )
    )
    clusters = [
        {
            "name": cluster.name,
            "address": cluster.url,
            "username": cluster.username,
            "password": cluster.password,
            "labels": {"soak": "a"},
        }
        for cluster in simulator.clusters
    ]
    config = {
        "state_file": str(args.directory / "state.json"),
        "poll": {"interval": f"{args.interval:g}s", "timeout": f"{min(20.0, args.interval):g}s"},
        "defaults": {"tls": {"ca_file": str(simulator.ca_file)}},
        "clusters": clusters,
    }
    for variant in "ab":
        clusters[0]["labels"] = {"soak": variant}
        (args.directory / f"akv-{variant}.yml").write_text(yaml.safe_dump(config))
    print("ready", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await simulator.stop()


def _exporter(args: argparse.Namespace) -> None:
    """Child: `akv-exporter run` as the CLI wires it, plus a probe writing tasks and lateness."""
    from akv_exporter.inventory import load
    from akv_exporter.logs import setup_logging
    from akv_exporter.service import run_exporter

    setup_logging("warning", "text")
    config = load(args.config).config  # as `run` loads it
    late: list[float] = []
    stats = args.stats.open("a", buffering=1)

    async def report() -> None:
        while True:
            await asyncio.sleep(STATS_EVERY)
            batch, late[:] = late[:], []
            line = {"t": time.time(), "tasks": len(asyncio.all_tasks()), "late": batch}
            stats.write(json.dumps(line) + "\n")

    def on_ready(exporter, runner) -> None:
        exporter.poller.on_lateness = late.append
        reporter = asyncio.get_running_loop().create_task(report())
        reporters.add(reporter)  # the probe's own task: constant, one

    reporters: set[asyncio.Task] = set()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_exporter(config, "127.0.0.1", args.port, on_ready=on_ready))


# --- the driver ----------------------------------------------------------------------------


@dataclass
class Sample:
    t: float
    rss: int  # bytes
    fds: int
    tasks: int | None


@dataclass
class Soak:
    base: str
    pid: int
    directory: Path
    stats: Path
    names: list[str]
    samples: list[Sample] = field(default_factory=list)
    hits: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    reloads: int = 0
    late: list[tuple[float, float]] = field(default_factory=list)  # (time, seconds late)
    stats_read: int = 0
    tasks: int | None = None

    def read_stats(self) -> None:
        with self.stats.open() as handle:
            lines = handle.readlines()
        for line in lines[self.stats_read :]:
            entry = json.loads(line)
            self.tasks = entry["tasks"]
            self.late += [(entry["t"], value) for value in entry["late"]]
        self.stats_read = len(lines)

    def sample(self) -> None:
        rss_mib, _ = resident_mib(self.pid)
        fds = len(os.listdir(f"/proc/{self.pid}/fd"))
        self.read_stats()
        self.samples.append(Sample(time.monotonic(), int(rss_mib * 2**20), fds, self.tasks))


async def _hammer(soak: Soak, http: aiohttp.ClientSession, path: str, until: float) -> None:
    """Hit one endpoint back to back until ``until``; a non-200 answer is an error."""
    rng = random.Random(path)
    while time.monotonic() < until:
        url = soak.base + path
        if path == "/probe":
            url += "?target=" + rng.choice(soak.names)
        try:
            async with http.get(url) as response:
                await response.read()
                if response.status != 200:
                    soak.errors.append(f"GET {path}: HTTP {response.status}")
        except (aiohttp.ClientError, TimeoutError) as error:
            soak.errors.append(f"GET {path}: {error!r}")
        soak.hits[path] = soak.hits.get(path, 0) + 1
        await asyncio.sleep(0.05)  # continuous, yet leaving the exporter time to poll


async def _reloads(soak: Soak, http: aiohttp.ClientSession, until: float) -> None:
    """Every minute: point the live configuration at the other variant and reload."""
    live = soak.directory / "akv.yml"
    while time.monotonic() + 60 < until:
        await asyncio.sleep(60)
        variant = "ba"[soak.reloads % 2]  # the file starts as variant a
        written = soak.directory / "akv.yml.new"
        written.write_text((soak.directory / f"akv-{variant}.yml").read_text())
        os.replace(written, live)
        if soak.reloads % 2:
            os.kill(soak.pid, signal.SIGHUP)
        else:
            async with http.post(soak.base + "/-/reload") as response:
                if response.status != 200:
                    soak.errors.append(f"POST /-/reload: HTTP {response.status}")
        soak.reloads += 1


async def _sampler(soak: Soak, until: float) -> None:
    while time.monotonic() < until:
        soak.sample()
        await asyncio.sleep(SAMPLE_EVERY)
    soak.sample()


async def _drive(soak: Soak, minutes: float) -> None:
    until = time.monotonic() + minutes * 60
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        await asyncio.gather(
            _sampler(soak, until),
            _reloads(soak, http, until),
            *(_hammer(soak, http, path, until) for path in PATHS),
        )


def _wait_ready(base: str, process: subprocess.Popen, log: Path) -> None:
    import urllib.request

    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"soak: the exporter exited:\n{log.read_text()[-2000:]}")
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(f"{base}/-/ready", timeout=5) as response,
        ):
            if response.status == 200:
                return
        time.sleep(1)
    raise SystemExit("soak: the exporter was not ready in time")


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass(frozen=True)
class Verdict:
    report: str
    failures: list[str]


def _p99(values: list[float]) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def judge(soak: Soak, args: argparse.Namespace, warmup: float) -> Verdict:
    """Return the report and the failed criteria (none: the soak passed)."""
    start = soak.samples[0].t
    steady = [s for s in soak.samples if s.t - start >= warmup]
    window = max(1, len(steady) // 6)
    first, last = steady[:window], steady[-window:]
    mib = 1024 * 1024
    rss_warm = statistics.median(s.rss for s in first)
    rss_end = statistics.median(s.rss for s in last)
    growth = rss_end / rss_warm - 1
    fds_warm, fds_end = max(s.fds for s in first), min(s.fds for s in last)
    tasks_first = [s.tasks for s in first if s.tasks is not None]
    tasks_last = [s.tasks for s in last if s.tasks is not None]
    tasks_warm, tasks_end = max(tasks_first), min(tasks_last)
    wall_start = time.time() - (time.monotonic() - start)
    late_steady = [v for t, v in soak.late if t - wall_start >= warmup]
    p99, worst = _p99(late_steady), max(late_steady, default=0.0)
    failures = []
    if growth > MEMORY_GROWTH:
        failures.append(f"resident memory grew {growth:.1%} after warm-up (limit 10%)")
    if fds_end > fds_warm + DRIVER_SLACK:
        failures.append(f"open descriptors grew from {fds_warm} to {fds_end}")
    if tasks_end > tasks_warm + DRIVER_SLACK:
        failures.append(f"asyncio tasks grew from {tasks_warm} to {tasks_end}")
    if worst > args.interval:
        failures.append(f"a poll began {worst:.1f}s late (limit: one interval, {args.interval:g}s)")
    if not late_steady:
        failures.append("no scheduled poll was observed after warm-up")
    if soak.errors:
        failures.append(f"{len(soak.errors)} failed requests, first: {soak.errors[0]}")
    hits = ", ".join(f"{path} {count}" for path, count in sorted(soak.hits.items()))
    rows = [
        (
            "resident memory",
            f"{rss_warm / mib:.1f} MiB",
            f"{rss_end / mib:.1f} MiB",
            f"{growth:+.1%}",
        ),
        ("open descriptors", str(fds_warm), str(fds_end), f"{fds_end - fds_warm:+d}"),
        ("asyncio tasks", str(tasks_warm), str(tasks_end), f"{tasks_end - tasks_warm:+d}"),
    ]
    table = "\n".join(f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows)
    command = f"python -m bench.soak --minutes {args.minutes:g} --clusters {args.clusters}"
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    report = f"""# akv-exporter soak

`{command}`, finished {when}, {os.cpu_count()} CPUs, Python {sys.version.split()[0]}.

{args.clusters} simulated HTTPS clusters with incidents on, polled every {args.interval:g}s; \
{soak.reloads} reloads (SIGHUP and POST /-/reload in turn); requests served: {hits}. \
Warm-up: the first {warmup / 60:g} min; "after warm-up" is the median (memory) or the \
extreme (descriptors, tasks) of the first sixth of the steady state, "end" of the last sixth; \
descriptors and tasks fail only when they grow by more than the driver's own {DRIVER_SLACK} \
connections.

| measure | after warm-up | end | change |
|---|---|---|---|
{table}

Poll schedule after warm-up: {len(late_steady)} scheduled rounds, lateness p99 {p99:.2f}s, \
worst {worst:.2f}s (limit {args.interval:g}s, one interval).

Verdict: {"PASS" if not failures else "FAIL: " + "; ".join(failures)}
"""
    return Verdict(report, failures)


def drive(args: argparse.Namespace) -> int:
    directory = Path(args.directory)
    directory.mkdir(parents=True, exist_ok=True)
    simulator = exporter = None
    python = sys.executable
    try:
        simulator = subprocess.Popen(
            [
                *(python, "-m", "bench.soak", "simulator", "--clusters", str(args.clusters)),
                *("--seed", str(args.seed), "--interval", f"{args.interval:g}", str(directory)),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        if simulator.stdout is None or simulator.stdout.readline().strip() != "ready":
            raise SystemExit("soak: the simulator did not start")
        (directory / "akv.yml").write_text((directory / "akv-a.yml").read_text())
        port = _free_port()
        stats = directory / "stats.jsonl"
        stats.write_text("")
        log = directory / "exporter.log"
        with log.open("wb") as output:
            exporter = subprocess.Popen(
                [
                    *(python, "-m", "bench.soak", "exporter", "--port", str(port)),
                    *("--stats", str(stats), str(directory / "akv.yml")),
                ],
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        base = f"http://127.0.0.1:{port}"
        _wait_ready(base, exporter, log)
        names = [c["name"] for c in yaml.safe_load((directory / "akv.yml").read_text())["clusters"]]
        soak = Soak(base, exporter.pid, directory, stats, names)
        asyncio.run(_drive(soak, args.minutes))
        if exporter.poll() is not None:
            raise SystemExit(f"soak: the exporter exited:\n{log.read_text()[-2000:]}")
    finally:
        stop(exporter)
        stop(simulator)
    verdict = judge(soak, args, warmup=min(300.0, args.minutes * 60 / 3))
    print(verdict.report)
    report = Path(args.report) if args.report else RESULTS / "soak.md"
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(verdict.report)
    return 1 if verdict.failures else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__)
    commands = parser.add_subparsers(dest="role")
    children = {}
    for role in ("simulator", "exporter"):
        children[role] = commands.add_parser(role, help=argparse.SUPPRESS)
    children["simulator"].add_argument("--clusters", type=int, required=True)
    children["simulator"].add_argument("--seed", type=int, default=1)
    children["simulator"].add_argument("--interval", type=float, default=60.0)
    children["simulator"].add_argument("directory", type=Path)
    children["exporter"].add_argument("--port", type=int, required=True)
    children["exporter"].add_argument("--stats", type=Path, required=True)
    children["exporter"].add_argument("config", type=Path)
    env_minutes = float(os.environ.get("SOAK_MINUTES", "30"))
    parser.add_argument("--minutes", type=float, default=env_minutes, help="default 30")
    parser.add_argument(
        "--clusters", type=int, default=int(os.environ.get("SOAK_CLUSTERS", "1000"))
    )
    parser.add_argument("--interval", type=float, default=60.0, help="poll interval, seconds")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--directory", default=None, help="scratch directory (default: a temp one)")
    parser.add_argument("--report", default=None, help="default: bench/results/soak.md")
    args = parser.parse_args(argv)
    if args.role == "simulator":
        asyncio.run(_simulator(args))
        return 0
    if args.role == "exporter":
        _exporter(args)
        return 0
    if args.directory is None:
        import tempfile

        with tempfile.TemporaryDirectory(prefix="akv-soak-") as scratch:
            args.directory = scratch
            return drive(args)
    return drive(args)


if __name__ == "__main__":
    sys.exit(main())
