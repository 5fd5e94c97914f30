"""`make bench`: akv-exporter at fleet scale, against baselines measured in the same run.

For each fleet size (1,000 and 5,000 simulated clusters by default) the simulator runs in its
own process with every ONTAP answer delayed by 0.25 s, and:

1. **The exporter as a user runs it** (`akv-exporter run`, its own process): resident memory
   and the time to its first full view of the fleet (every cluster up), compared with the
   concurrency floor: ceil(clusters / poll.concurrency) answers in a row.
2. **CPU per poll**, in this process: the exporter's poller (request, parse, render) against a
   bare aiohttp loop making the same requests, alternating, on the same fleet.
3. **GET /metrics** of that exporter while polls keep landing (one every interval / clusters
   seconds, as at steady state), scraped from another process; baseline: the usual
   prometheus-client pattern, a collector building metric families on every scrape.

At the first size, also NetApp's own `netapp-ontap` library polling the same fleet.
Writes bench/results/report.md and prints it. Only 127.0.0.1 is contacted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily

from akv_exporter import __version__, heap
from akv_exporter.config import load_config
from akv_exporter.exporter import Exporter
from akv_exporter.labels import AKV_INFO_LABELS
from akv_exporter.snapshot import REASONS, ClusterSnapshot
from akv_exporter.web.app import serve
from bench.fleet import FirstView, SimulatorProcess, first_view, write_config
from bench.loops import BareLoop, Round, exporter_round, netapp_ontap_rounds, timed_round

RESULTS = Path(__file__).resolve().parent / "results"
INTERVAL = 60.0  # poll.interval of the measured configuration (the default)
# The goals of issue 10, per fleet size where they depend on it.
MEMORY_GOAL_MIB = {1000: 250.0, 5000: 800.0}
FLOOR_RATIO_GOAL = 2.0
CPU_RATIO_GOAL = 1.5
SCRAPE_GOAL_MS = 25.0
SCRAPE_GOAL_CLUSTERS = 5000


class SnapshotCollector:
    """The baseline scrape path: metric families built from snapshots on every collect()."""

    def __init__(self, snapshots: dict[str, ClusterSnapshot]):
        self.snapshots = snapshots

    def collect(self):
        info = InfoMetricFamily("ontap_akv", "AKV configuration.")
        azure = GaugeMetricFamily(
            "ontap_akv_azure_reachable",
            "Azure reachable.",
            labels=["cluster", "svm", "uuid", "code"],
        )
        kek = GaugeMetricFamily(
            "ontap_akv_kek_available", "KEK available.", labels=["cluster", "svm", "uuid", "code"]
        )
        ekmip = GaugeMetricFamily(
            "ontap_akv_ekmip_reachable",
            "EKMIP reachable.",
            labels=["cluster", "svm", "uuid", "node", "code"],
        )
        up = GaugeMetricFamily("akv_exporter_cluster_up", "Up.", labels=["cluster"])
        errors = CounterMetricFamily(
            "akv_exporter_cluster_poll_errors", "Errors.", labels=["cluster", "reason"]
        )
        for snapshot in self.snapshots.values():
            name = snapshot.name
            up.add_metric([name], 1 if snapshot.up else 0)
            for reason in REASONS:
                errors.add_metric([name, reason], snapshot.poll_errors.get(reason, 0))
            for akv in snapshot.key_managers:
                labels = {"cluster": name, "svm": akv.svm, "uuid": akv.uuid, "scope": akv.scope}
                labels |= {label: akv.detail(label) for label in AKV_INFO_LABELS[1:]}
                info.add_metric(list(labels), labels)
                if akv.service is not None:
                    azure.add_metric([name, akv.svm, akv.uuid, akv.service.code], akv.service.ok)
                if akv.kek is not None:
                    kek.add_metric([name, akv.svm, akv.uuid, akv.kek.code], akv.kek.ok)
                for node in akv.ekmip:
                    ekmip.add_metric([name, akv.svm, akv.uuid, node.node, node.code], node.ok)
        yield from (info, azure, kek, ekmip, up, errors)


@dataclass(frozen=True)
class Scrapes:
    durations: list[float]
    size: int

    @property
    def p50_ms(self) -> float:
        return statistics.median(self.durations) * 1000

    @property
    def p90_ms(self) -> float:
        ordered = sorted(self.durations)
        return ordered[min(len(ordered) - 1, math.ceil(0.9 * len(ordered)) - 1)] * 1000


async def scrape_from_outside(
    url: str, count: int, gzipped: bool, before_each: Callable[[int], None] | None = None
) -> Scrapes:
    """Time ``count`` sequential GETs made by another process (bench/scrape.py).

    ``before_each(index)`` runs here, untimed, before each GET (the scraper waits for it).
    """
    modes = (["gzip"] if gzipped else []) + (["step"] if before_each else [])
    process = await asyncio.create_subprocess_exec(
        *[sys.executable, "-m", "bench.scrape", url, str(count), *modes],
        stdin=subprocess.PIPE if before_each else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=Path(__file__).resolve().parent.parent,
    )
    if before_each is not None:
        assert process.stdin is not None and process.stderr is not None
        for index in range(count):
            before_each(index)
            process.stdin.write(b"\n")
            await process.stdin.drain()
            if not await process.stderr.readline():  # the GET is over (or the scraper failed)
                break
        process.stdin.close()
    out, err = await process.communicate()
    if process.returncode != 0:
        raise SystemExit(f"bench: scraping {url} failed: {err.decode().strip()}")
    result = json.loads(out)
    return Scrapes(result["durations"], result["bytes"])


def land_poll(exporter: Exporter, snapshots: dict[str, ClusterSnapshot], key: str, n: int) -> None:
    """Publish a poll of ``key`` as a real one lands: new time, duration and request count."""
    snapshot = snapshots[key]
    requests = {status: count + 1 for status, count in snapshot.requests.items()}
    last = replace(snapshot.last, duration=snapshot.last.duration + 0.001 * (n % 7))
    snapshot = replace(snapshot, last_success=time.time(), last=last, requests=requests)
    snapshots[key] = snapshot
    exporter.exposition.update(key, snapshot)


async def landing_polls(exporter: Exporter, snapshots: dict[str, ClusterSnapshot]) -> None:
    """Publish polls as they land at steady state: one cluster every interval / clusters seconds
    (at least every 10 ms, so that every scrape finds the exposition changed since the last)."""
    keys = list(snapshots)
    pause = min(INTERVAL / len(keys), 0.01)
    index = 0
    while True:
        land_poll(exporter, snapshots, keys[index % len(keys)], index)
        index += 1
        await asyncio.sleep(pause)


async def scrape_after_every_poll(exporter: Exporter, url: str, count: int, gzipped: bool):
    """Time ``count`` GETs from another process, every cluster's poll landing before each:
    Prometheus scraping every 15 s or more, while the whole fleet is polled every interval."""
    snapshots = dict(exporter.snapshots())

    def every_poll(index: int) -> None:
        for key in snapshots:
            land_poll(exporter, snapshots, key, index)

    return await scrape_from_outside(url, count, gzipped, before_each=every_poll)


@dataclass(frozen=True)
class ScrapeResults:
    ours_plain: Scrapes
    ours_gzip: Scrapes
    ours_unchanged: Scrapes
    repolled_plain: Scrapes  # every cluster's poll landed since the previous scrape
    repolled_gzip: Scrapes
    baseline: Scrapes
    series: int


async def measure_scrapes(exporter: Exporter, scrapes: int) -> ScrapeResults:
    snapshots = exporter.snapshots()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(snapshots))

    async def collector_metrics(_request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(registry), content_type="text/plain")

    baseline_app = web.Application()
    baseline_app.router.add_get("/metrics", collector_metrics)
    baseline_runner = web.AppRunner(baseline_app, access_log=None)
    await baseline_runner.setup()
    await web.TCPSite(baseline_runner, "127.0.0.1", 0).start()
    ours_runner = await serve(exporter, "127.0.0.1", 0)
    ours = f"http://127.0.0.1:{ours_runner.addresses[0][1]}/metrics"
    try:
        unchanged = await scrape_from_outside(ours, scrapes, gzipped=True)
        landing = asyncio.create_task(landing_polls(exporter, dict(snapshots)))
        try:
            plain = await scrape_from_outside(ours, scrapes, gzipped=False)
            gzipped = await scrape_from_outside(ours, scrapes, gzipped=True)
        finally:
            landing.cancel()
        repolled = [
            await scrape_after_every_poll(exporter, ours, max(5, scrapes // 2), gzipped)
            for gzipped in (False, True)
        ]
        baseline_url = f"http://127.0.0.1:{baseline_runner.addresses[0][1]}/metrics"
        baseline = await scrape_from_outside(baseline_url, max(3, scrapes // 3), gzipped=False)
    finally:
        await ours_runner.cleanup()
        await baseline_runner.cleanup()
    body = exporter.scrape()
    series = body.count(b"\n") - body.count(b"\n#") - (0 if body.startswith(b"#") else 1)
    return ScrapeResults(plain, gzipped, unchanged, *repolled, baseline, series)


@dataclass(frozen=True)
class CpuResults:
    ours_cold: Round
    bare_cold: Round
    ours_warm: list[Round]
    bare_warm: list[Round]

    def per_poll_ms(self, rounds: list[Round], clusters: int) -> float:
        return statistics.median(r.cpu for r in rounds) / clusters * 1000

    def pair_ratios(self) -> list[float]:
        return [o.cpu / b.cpu for o, b in zip(self.ours_warm, self.bare_warm, strict=True)]


async def measure_cpu(config_path: Path, simulator: SimulatorProcess, rounds: int):
    """Exporter and bare rounds alternate, so that the machine's other load falls on both.

    After the first (cold) rounds the heap is frozen, as `run` does at its first full view
    (akv_exporter/heap.py): both loops' later rounds share that process's collector. It stays
    frozen for the scrapes; the caller thaws it.
    """
    exporter = Exporter(load_config(config_path))
    context = ssl.create_default_context(cafile=str(simulator.ca_file))
    concurrency = exporter.config.poll.concurrency
    bare = BareLoop(simulator.clusters, context, concurrency)
    ours_rounds, bare_rounds = [], []
    try:
        for index in range(1 + rounds):
            ours_rounds.append(await timed_round(lambda: exporter_round(exporter, concurrency)))
            bare_rounds.append(await timed_round(bare.round))
            if index == 0:
                heap.freeze()
    finally:
        await bare.close()
    # The exporter stays up for the scrape measurement; the caller stops it.
    return CpuResults(ours_rounds[0], bare_rounds[0], ours_rounds[1:], bare_rounds[1:]), exporter


@dataclass(frozen=True)
class SizeResults:
    clusters: int
    concurrency: int
    latency: float
    view: FirstView
    cpu: CpuResults
    scrapes: ScrapeResults
    akvs: int
    simulator_cpu: float
    netapp_ontap: list[Round] | None
    seconds: float
    fleet: str = ""  # its key managers in words (SimulatorProcess.mix)

    @property
    def floor(self) -> float:
        return math.ceil(self.clusters / self.concurrency) * self.latency


async def measure_size(args: argparse.Namespace, clusters: int, with_netapp: bool) -> SizeResults:
    began = time.perf_counter()
    simulator = SimulatorProcess(clusters, providers=args.providers)
    print(f"bench: {clusters} clusters: starting the simulator", file=sys.stderr, flush=True)
    await simulator.start()
    try:
        # Integer codes on 9.8 clusters make netapp-ontap reject the answer outright.
        faults = {"latency_s": args.latency, "code_type": "string", "state_field": "available"}
        await simulator.set_faults(faults)
        with tempfile.TemporaryDirectory(prefix="akv-bench-") as scratch:
            config = write_config(
                Path(scratch) / "akv.yml", simulator, concurrency=args.concurrency
            )
            print(f"bench: {clusters} clusters: the exporter process", file=sys.stderr, flush=True)
            view = await first_view(config, clusters)
            print(f"bench: {clusters} clusters: CPU per poll", file=sys.stderr, flush=True)
            cpu, exporter = await measure_cpu(config, simulator, args.rounds)
            try:
                print(f"bench: {clusters} clusters: GET /metrics", file=sys.stderr, flush=True)
                scrapes = await measure_scrapes(exporter, args.scrapes)
                akvs = sum(len(s.key_managers) for s in exporter.snapshots().values())
            finally:
                await exporter.stop()
                heap.thaw()
        netapp = None
        if with_netapp:
            print(f"bench: {clusters} clusters: netapp-ontap", file=sys.stderr, flush=True)
            netapp = await asyncio.to_thread(
                netapp_ontap_rounds, simulator.clusters, args.concurrency, 2
            )
        simulator_cpu = simulator.cpu_seconds()
    finally:
        simulator.stop()
    return SizeResults(
        clusters,
        args.concurrency,
        args.latency,
        view,
        cpu,
        scrapes,
        akvs,
        simulator_cpu,
        netapp,
        time.perf_counter() - began,
        simulator.mix(),
    )


def _met(ok: bool) -> str:
    return "yes" if ok else "**no**"


def goal_rows(result: SizeResults) -> list[str]:
    n = result.clusters
    view, cpu = result.view, result.cpu
    rows = []
    memory_goal = MEMORY_GOAL_MIB.get(n)
    memory = max(view.rss_mib, view.rss_settled_mib)
    rows.append(
        f"| {n:,} | resident memory at the first full view (peak so far) | "
        f"{memory:.0f} MiB (peak {view.peak_mib:.0f}) | "
        + (
            f"≤ {memory_goal:.0f} MiB | {_met(view.peak_mib <= memory_goal)} |"
            if memory_goal
            else "- | - |"
        )
    )
    ratio = view.polling_to_view / result.floor
    complete = view.clusters_up == n
    rows.append(
        f"| {n:,} | first full view ({view.clusters_up:,}/{n:,} up) / concurrency floor | "
        f"{view.polling_to_view:.1f} s / {result.floor:.1f} s = {ratio:.2f}x | "
        f"≤ {FLOOR_RATIO_GOAL:g}x | {_met(complete and ratio <= FLOOR_RATIO_GOAL)} |"
    )
    ours = cpu.per_poll_ms(cpu.ours_warm, n)
    bare = cpu.per_poll_ms(cpu.bare_warm, n)
    ratio = statistics.median(cpu.pair_ratios())
    rows.append(
        f"| {n:,} | CPU per poll / bare aiohttp loop (keep-alive rounds) | "
        f"{ours:.3f} ms / {bare:.3f} ms = {ratio:.2f}x | ≤ {CPU_RATIO_GOAL:g}x | "
        f"{_met(ratio <= CPU_RATIO_GOAL)} |"
    )
    scrapes = result.scrapes
    if n >= SCRAPE_GOAL_CLUSTERS:
        for what, gzipped, plain in (
            ("while polls land", scrapes.ours_gzip, scrapes.ours_plain),
            (
                "every cluster re-polled since the last",
                scrapes.repolled_gzip,
                scrapes.repolled_plain,
            ),
        ):
            worst = max(gzipped.p50_ms, plain.p50_ms)
            rows.append(
                f"| {n:,} | GET /metrics p50 {what} (gzip / plain) | "
                f"{gzipped.p50_ms:.1f} ms / {plain.p50_ms:.1f} ms | "
                f"≤ {SCRAPE_GOAL_MS:g} ms | {_met(worst <= SCRAPE_GOAL_MS)} |"
            )
    return rows


def detail(result: SizeResults) -> list[str]:
    n, view, cpu, scrapes = result.clusters, result.view, result.cpu, result.scrapes
    per_poll = lambda rounds: cpu.per_poll_ms(rounds, n)  # noqa: E731
    ratios = cpu.pair_ratios()
    lines = [
        f"### {n:,} clusters ({result.akvs:,} AKV configurations, {scrapes.series:,} series; "
        f"measured in {result.seconds:.0f} s)",
        "",
        f"- Key managers: {result.fleet}.",
        f"- Exporter process: {view.start_to_polling:.1f} s from start to polling (Python, "
        f"configuration), then {view.polling_to_view:.1f} s to the first full view; "
        f"{view.cpu_seconds:.1f} s of CPU by then ({view.cpu_seconds / n * 1000:.1f} ms per "
        f"cluster: two TLS handshakes, /api/cluster and the AKVs); resident "
        f"{view.rss_mib:.0f} MiB then, {view.rss_settled_mib:.0f} MiB 3 s later, peak "
        f"{view.peak_mib:.0f} MiB ({view.peak_mib * 1024 / n:.0f} KiB per cluster).",
        f"- Concurrency floor: ceil({n:,} / {result.concurrency}) x {result.latency:g} s = "
        f"{result.floor:.1f} s. The same machine's bare aiohttp loop needed "
        f"{cpu.bare_cold.wall:.1f} s for its first round (new connections, no identity) and "
        f"the exporter's in-process first round {cpu.ours_cold.wall:.1f} s.",
        f"- CPU per poll, keep-alive rounds: exporter {per_poll(cpu.ours_warm):.3f} ms, bare "
        f"aiohttp {per_poll(cpu.bare_warm):.3f} ms; ratio per round pair "
        + ", ".join(f"{r:.2f}" for r in ratios)
        + f". First round (new TLS connections): exporter {cpu.ours_cold.cpu / n * 1000:.2f} ms"
        f", bare {cpu.bare_cold.cpu / n * 1000:.2f} ms per cluster.",
        f"- GET /metrics ({len(scrapes.ours_gzip.durations)} scrapes each, from another "
        f"process): gzip p50 {scrapes.ours_gzip.p50_ms:.1f} ms, p90 "
        f"{scrapes.ours_gzip.p90_ms:.1f} ms ({scrapes.ours_gzip.size / 1024:.0f} KiB); plain "
        f"p50 {scrapes.ours_plain.p50_ms:.1f} ms, p90 {scrapes.ours_plain.p90_ms:.1f} ms "
        f"({scrapes.ours_plain.size / 1024:.0f} KiB); unchanged since the last scrape (gzip) "
        f"p50 {scrapes.ours_unchanged.p50_ms:.1f} ms; every cluster re-polled since the last "
        f"scrape ({len(scrapes.repolled_gzip.durations)} each) gzip p50 "
        f"{scrapes.repolled_gzip.p50_ms:.1f} ms, p90 {scrapes.repolled_gzip.p90_ms:.1f} ms, "
        f"plain p50 {scrapes.repolled_plain.p50_ms:.1f} ms, p90 "
        f"{scrapes.repolled_plain.p90_ms:.1f} ms. Baseline prometheus-client collector "
        f"(six families only, plain): p50 {scrapes.baseline.p50_ms:.1f} ms, "
        f"{scrapes.baseline.p50_ms / scrapes.ours_plain.p50_ms:.1f}x ours.",
        f"- Simulator process: {result.simulator_cpu:.0f} s of CPU over the whole size.",
        "",
    ]
    return lines


def netapp_table(result: SizeResults) -> list[str]:
    rounds = result.netapp_ontap
    if not rounds:
        return []
    cpu, n = result.cpu, result.clusters
    ours_warm = statistics.median(r.wall for r in cpu.ours_warm)
    return [
        f"## NetApp's netapp-ontap library, same fleet ({n:,} clusters, "
        f"{result.latency:g} s answers, {result.concurrency} threads)",
        "",
        "| poll round | akv-exporter | netapp-ontap + threads | speed-up (baseline / ours) |",
        "|---|---|---|---|",
        f"| first (new TLS connections) | {cpu.ours_cold.wall:.1f} s, "
        f"{cpu.ours_cold.cpu / n * 1000:.2f} ms CPU per cluster | {rounds[0].wall:.1f} s, "
        f"{rounds[0].cpu / n * 1000:.2f} ms CPU per cluster | "
        f"{rounds[0].wall / cpu.ours_cold.wall:.1f}x |",
        f"| keep-alive | {ours_warm:.1f} s, {cpu.per_poll_ms(cpu.ours_warm, n):.2f} ms CPU per "
        f"cluster | {rounds[1].wall:.1f} s, {rounds[1].cpu / n * 1000:.2f} ms CPU per cluster | "
        f"{rounds[1].wall / ours_warm:.1f}x |",
        "",
    ]


def report(args: argparse.Namespace, results: list[SizeResults], load: tuple, took: float) -> str:
    end_load = os.getloadavg()
    lines = [
        "# akv-exporter benchmark",
        "",
        f"akv-exporter {__version__}, Python {platform.python_version()}, {platform.machine()}, "
        f"{os.cpu_count()} CPUs, {time.strftime('%Y-%m-%d %H:%M:%S')}; the whole run took "
        f"{took / 60:.1f} min.",
        f"Load average (1, 5, 15 min) at the start {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}, "
        f"at the end {end_load[0]:.1f} {end_load[1]:.1f} {end_load[2]:.1f}: on a machine "
        "shared with other work every figure below is noisy; ratios against baselines measured "
        "in the same run are the figures to compare between machines.",
        f"The simulator runs in its own process; every answer of every cluster is delayed "
        f"{args.latency:g} s. The exporter polls with poll.concurrency {args.concurrency}, "
        f"interval {INTERVAL:g} s, over HTTPS (one CA, verified).",
        "",
        "## Goals (issue 10)",
        "",
        "| clusters | measurement | measured | goal | met |",
        "|---|---|---|---|---|",
    ]
    for result in results:
        lines += goal_rows(result)
    lines += ["", "## Details", ""]
    for result in results:
        lines += detail(result)
    for result in results:
        lines += netapp_table(result)
    return "\n".join(lines) + "\n"


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected sizes such as 1000,5000, got {text!r}"
        ) from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"expected sizes such as 1000,5000, got {text!r}")
    return sizes


def main(argv: list[str] | None = None, results: Path = RESULTS) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=_sizes, default=[1000, 5000], help="fleet sizes")
    parser.add_argument("--latency", type=float, default=0.25, help="seconds per ONTAP answer")
    parser.add_argument("--concurrency", type=int, default=64, help="poll.concurrency")
    parser.add_argument("--rounds", type=int, default=5, help="keep-alive rounds per loop")
    parser.add_argument("--scrapes", type=int, default=40, help="GET /metrics per measurement")
    parser.add_argument(
        "--no-netapp-ontap", action="store_true", help="skip NetApp's library (slow)"
    )
    parser.add_argument(
        "--providers",
        choices=("mixed", "akv"),
        default="mixed",
        help="the fleet's key managers: AKV everywhere and others on some clusters (mixed), "
        "or AKV only",
    )
    args = parser.parse_args(argv)
    load = os.getloadavg()
    began = time.perf_counter()

    async def run() -> list[SizeResults]:
        measured = []
        for index, size in enumerate(args.sizes):
            with_netapp = index == 0 and not args.no_netapp_ontap
            measured.append(await measure_size(args, size, with_netapp))
        return measured

    measured = asyncio.run(run())
    text = report(args, measured, load, time.perf_counter() - began)
    results.mkdir(parents=True, exist_ok=True)
    (results / "report.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
