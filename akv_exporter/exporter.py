"""The front door: what every surface (web, /probe, status page, JSON, ``check``) asks.

The exporter owns the poller, the exposition and the streak state. A surface asks it for the
exposition, the fleet's status, a poll of one cluster or of several, readiness and reloads; none
reaches into the parts behind it, so each part can change without touching the surfaces.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Protocol

from akv_exporter import __version__, heap
from akv_exporter.assessment import ExporterInfo, FleetStatus
from akv_exporter.certificates import CertificateProblem
from akv_exporter.config import Config, ConfigError, WebConfig
from akv_exporter.fleet_assessment import assess
from akv_exporter.inventory import InventoryWatcher, load_inventory
from akv_exporter.limits import ensure_open_files
from akv_exporter.metrics.exposition import Exposition
from akv_exporter.ontap.client import USER_AGENT
from akv_exporter.poller import Poller, Refreshed
from akv_exporter.shard import UNSHARDED, Shard
from akv_exporter.snapshot import ClusterSnapshot
from akv_exporter.unreachable_streaks import UnreachableSince

log = logging.getLogger(__name__)


class WebListener(Protocol):
    """The serving socket (web.listener.Listener), as a reload sees it."""

    async def apply(self, config: WebConfig) -> None:
        """Serve as ``config`` says; OSError or ValueError (one line) when it cannot."""


class Exporter:
    """Owns one Poller and one Exposition; the web app and the signal handlers talk to it.

    ``config`` is the whole file; the poller gets only ``shard``'s clusters of it.
    """

    def __init__(
        self,
        config: Config,
        *,
        process_metrics: bool = True,
        shard: Shard = UNSHARDED,
        persist_state: bool = True,
    ):
        self.config = config
        self.shard = shard
        self.started = time.time()
        self.exposition = Exposition(process_metrics=process_metrics)
        self.exposition.set_shard(shard.ordinal, shard.total)
        self.exposition.set_reload(successful=True, timestamp=self.started)
        self.last_reload_error: str | None = None
        self._reloading = asyncio.Lock()  # SIGHUP twice in a row: the second waits its turn
        mine = shard.select(config)
        self.state = UnreachableSince(
            mine.state_file,
            on_write_error=self.exposition.set_state_write_errors,
            read_only=not persist_state,
        )
        self.state.load()
        self.listener: WebListener | None = None  # set by web.app.serve; a reload applies web.*
        self.poller = Poller(
            mine,
            state=self.state,
            publish=self.exposition.update,
            retire=self.exposition.remove,
            # ONTAP's side can tell the shards apart (the sharding test proves the split there).
            user_agent=f"{USER_AGENT} ({shard})" if shard.sharded else USER_AGENT,
        )
        self.watcher = InventoryWatcher(lambda: self.config, self.reload)
        self._heap: asyncio.Task | None = None

    async def start(self) -> None:
        clusters = len(self.config.clusters)
        connections = clusters * self.config.poll.connections_per_cluster
        ensure_open_files(connections + 256, f"{clusters} clusters' connections")
        await self.poller.start()
        await self.watcher.start()
        self._heap = asyncio.create_task(self._keep_heap(), name="heap")
        log.info(
            "polling %d cluster(s) every %gs%s",
            len(self.poller.keys()),
            self.config.poll.interval,
            self._of_configured(),
        )

    def _of_configured(self) -> str:
        """Return ", shard I of N: M configured" when sharded, for the log lines that count."""
        if not self.shard.sharded:
            return ""
        return f", {self.shard}: {len(self.config.clusters)} configured"

    def owner_of(self, target: str) -> int | None:
        """Return the shard polling the configured cluster called ``target``; None if unknown.

        ``target`` is a configured name or address; ONTAP's own name of a cluster on another
        shard is not known here.
        """
        for cluster in self.config.clusters:
            if target in (cluster.key, cluster.address):
                return self.shard.of(cluster)
        return None

    async def _keep_heap(self) -> None:
        """Freeze the long-lived objects at the first full view, then refresh hourly."""
        await self.poller.ready.wait()
        heap.freeze()
        while True:
            await asyncio.sleep(heap.REFRESH)
            heap.refresh()

    async def stop(self) -> None:
        if self._heap is not None:
            self._heap.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heap
            self._heap = None
            heap.thaw()
        await self.watcher.stop()
        await self.poller.stop()

    # --- what the surfaces ask -------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """True once the configuration is loaded and the first poll round has been attempted."""
        return self.poller.ready.is_set()

    async def wait_ready(self) -> None:
        """Return once ``ready`` is true."""
        await self.poller.ready.wait()

    def find(self, name: str) -> str | None:
        """Return the key of the cluster called ``name`` (configured, ONTAP's, or address)."""
        return self.poller.find(name)

    def select(self, names: Sequence[str] | None) -> tuple[list[str], list[str]]:
        """Return the keys of the named clusters (all when none are named), and unknown names."""
        if not names:
            return self.poller.keys(), []
        keys: list[str] = []
        unknown = []
        for name in names:
            key = self.find(name)
            if key is None:
                unknown.append(name)
            elif key not in keys:
                keys.append(key)
        return keys, unknown

    def snapshots(self) -> dict[str, ClusterSnapshot]:
        """Return the latest snapshot of every configured cluster, in configuration order."""
        return self.poller.snapshots()

    async def poll(self, key: str, timeout: float | None = None) -> ClusterSnapshot:
        """Poll one cluster now (``timeout`` caps poll.timeout); publish and return its snapshot."""
        return await self.poller.poll(key, timeout)

    async def refresh(self, key: str, timeout: float | None = None) -> Refreshed:
        """Return the cluster's snapshot, polled now unless polled within poll.min_interval."""
        return await self.poller.refresh(key, timeout)

    async def poll_all(self, keys: Iterable[str] | None = None) -> dict[str, ClusterSnapshot]:
        """Poll these clusters (default: all) once now, as ``run`` does; return every snapshot."""
        return await self.poller.poll_all(keys)

    def scrape(self, *, openmetrics: bool = False, gzipped: bool = False) -> bytes:
        """Return the whole /metrics body."""
        return self.exposition.scrape(openmetrics=openmetrics, gzipped=gzipped)

    def scrape_parts(self, *, openmetrics: bool = False, gzipped: bool = False) -> list[bytes]:
        """Return the whole /metrics body as the parts it is made of, to be sent in turn."""
        return self.exposition.parts(openmetrics=openmetrics, gzipped=gzipped)

    def info(self) -> ExporterInfo:
        """Return the exporter's own health, as the status surfaces show it."""
        return ExporterInfo(
            version=__version__,
            started_at=self.started,
            config_reload_ok=self.last_reload_error is None,
            last_reload_error=self.last_reload_error,
            shard_ordinal=self.shard.ordinal,
            total_shards=self.shard.total,
            configured_clusters=len(self.config.clusters),
        )

    def status(self, keys: Iterable[str] | None = None, now: float | None = None) -> FleetStatus:
        """Return the assessment of these clusters (default: all), in configuration order."""
        snapshots = self.snapshots()
        chosen = snapshots.values() if keys is None else (snapshots[key] for key in keys)
        return assess(chosen, self.info(), time.time() if now is None else now)

    async def reload(self, path: Path | None = None) -> str | None:
        """Re-read the configuration file; return None on success, else the one-line problems.

        A bad file is refused: the running configuration, its clusters and their state stay.
        """
        async with self._reloading:
            return await self._reload(path)

    async def _reload(self, path: Path | None) -> str | None:
        path = path or self.config.path
        if path is None:
            return "no configuration file to reload (the demo's configuration is built in)"
        try:
            # In a thread: parsing a large file must not stall /metrics and the health checks.
            # --web.config.file, given at start, is read again too.
            web_file = self.config.web.web_config_file
            config = await asyncio.to_thread(load_inventory, path, web_file)
        except ConfigError as error:
            return self._refuse(error.problems)
        if self.listener is not None:
            try:
                await self.listener.apply(config.web)
            except CertificateProblem as error:  # the files changed again since just now
                return self._refuse([config.web.problem(error.key, str(error), path)])
            except OSError as error:  # cannot bind
                return self._refuse([f"{path}: web: {error}"])
        mine = self.shard.select(config)
        if config.state_file != self.config.state_file:
            self.state.move(mine.state_file)
        if await self.poller.reconfigure(mine) and self._heap is not None:
            heap.refresh()  # the clients it closed may be frozen cycles: collect them now
        self.config = config
        self.last_reload_error = None
        self.exposition.set_reload(successful=True, timestamp=time.time())
        log.info(
            "configuration reloaded: %d cluster(s)%s",
            len(self.poller.keys()),
            self._of_configured(),
        )
        return None

    def _refuse(self, problems: list[str]) -> str:
        """Record a refused reload; the running configuration stays. Return the problems."""
        self.last_reload_error = "; ".join(problems)
        self.exposition.set_reload(successful=False, timestamp=None)
        for problem in problems:
            log.error("reload refused: %s", problem)
        return self.last_reload_error
