"""The fleet: `clusters` merged with the inventory sources, checked, and watched for changes.

Sources, in this order: the configuration file's `clusters`, NetApp Harvest's harvest.yml
(``inventory.harvest``, read by akv_exporter.harvest) and every ``*.yml`` of
``inventory.clusters_dir`` (sorted by name; each a list of clusters with the keys of
`clusters`, the file's `defaults` merged in). A name or an address in two places is an error
naming both. The watcher compares the files' content every ``inventory.watch_interval`` and
asks for a reload when it changed, so no inotify is needed and network file systems work.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from akv_exporter.config import (
    ClusterConfig,
    Config,
    ConfigError,
    read_cluster_list,
    read_config,
    read_text,
)
from akv_exporter.harvest import poller_files, read_harvest

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Inventory:
    """The configuration with every source's clusters, and the Harvest pollers left out."""

    config: Config
    skipped: tuple[tuple[str, str], ...] = ()  # (where, why), for `check-config --list`


def cluster_files(directory: Path) -> list[Path]:
    """Return the cluster files of ``directory``: *.yml, sorted, editors' dot-files left out."""
    try:
        return sorted(p for p in directory.glob("*.yml") if not p.name.startswith("."))
    except OSError:
        return []


def load(path: str | Path, web_config_file: Path | None = None) -> Inventory:
    """Return the configuration at ``path`` with its inventory; ConfigError lists every problem.

    Every source is read even when another has problems, so that one file's problems hide no
    other's (a typo in one file, a duplicate address in the next). Any problem in any source
    refuses the whole: a reload keeps the running inventory. ``web_config_file``
    (--web.config.file) says how the exporter serves, instead of the `web` section.
    """
    path = Path(path)
    config, problems = read_config(read_text(path), path, web_config_file)
    if config is None or not config.inventory.enabled:
        if problems or config is None:
            raise ConfigError(problems, partial=config)
        return Inventory(config)
    clusters = list(config.clusters)
    files: list[Path] = []
    skipped: tuple[tuple[str, str], ...] = ()
    if config.inventory.harvest is not None:
        try:
            harvest = read_harvest(config.inventory.harvest, config.inventory.harvest_pollers)
        except ConfigError as error:
            problems.extend(error.problems)
            files.append(config.inventory.harvest)
        else:
            clusters.extend(harvest.clusters)
            files.extend(harvest.files)
            skipped = harvest.skipped
    if config.inventory.clusters_dir is not None:
        for file in cluster_files(config.inventory.clusters_dir):
            files.append(file)
            try:
                found, found_problems = read_cluster_list(
                    read_text(file), file, config.cluster_defaults
                )
            except ConfigError as error:  # unreadable
                problems.extend(error.problems)
            else:
                clusters.extend(found)
                problems.extend(found_problems)
    problems.extend(_duplicates(clusters))
    merged = dataclasses.replace(config, clusters=tuple(clusters), inventory_files=tuple(files))
    if problems:
        raise ConfigError(problems, partial=merged)
    return Inventory(merged, skipped)


def load_inventory(path: str | Path, web_config_file: Path | None = None) -> Config:
    """Return the configuration at ``path`` with the clusters of every inventory source."""
    return load(path, web_config_file).config


def _duplicates(clusters: list[ClusterConfig]) -> list[str]:
    """Return one line for each name or address given twice, naming both places."""
    problems: list[str] = []
    seen: dict[tuple[str, str], ClusterConfig] = {}
    for cluster in clusters:
        for what, identity in (("name", cluster.name), ("address", cluster.url)):
            if not identity:
                continue
            # Each file reported its own duplicates and left them out of ``clusters``.
            first = seen.setdefault((what, identity), cluster)
            if first is not cluster:
                problems.append(
                    f"{cluster.origin}: {what} {identity!r} is also defined at {first.origin}"
                )
    return problems


def fingerprint(config: Config) -> str:
    """Return a digest of the inventory files' names and content (a missing file counts too)."""
    paths = set(config.inventory_files)
    if config.inventory.harvest is not None:
        paths.add(config.inventory.harvest)
        paths.update(poller_files(config.inventory.harvest))
    if config.inventory.clusters_dir is not None:
        paths.update(cluster_files(config.inventory.clusters_dir))
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(str(path).encode() + b"\0")
        try:
            digest.update(hashlib.sha256(path.read_bytes()).digest())
        except OSError as error:
            digest.update(f"unreadable {error.errno}".encode())
    return digest.hexdigest()


class InventoryWatcher:
    """Every ``inventory.watch_interval``, asks for a reload when an inventory file changed.

    A refused reload is not retried until the files change again: the error is said once, and
    akv_exporter_config_last_reload_successful stays 0 until a good change or reload.
    """

    def __init__(self, config: Callable[[], Config], reload: Callable[[], Awaitable[object]]):
        self._config = config
        self._reload = reload
        self._task: asyncio.Task | None = None
        self._seen: str | None = None

    async def start(self) -> None:
        if self._config().inventory.enabled and self._task is None:
            self._seen = await asyncio.to_thread(fingerprint, self._config())
            self._task = asyncio.create_task(self._run(), name="inventory watch")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def check(self) -> bool:
        """Reload if the inventory files changed since last seen; return whether it did."""
        current = await asyncio.to_thread(fingerprint, self._config())
        if current == self._seen:
            return False
        # Remembered before the reload: a failed one is not retried until the next change,
        # and a change made while reloading shows as a difference at the next check.
        self._seen = current
        log.info("inventory files changed; reloading")
        await self._reload()
        return True

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._config().inventory.watch_interval)
            try:
                await self.check()
            except Exception:  # the watcher must outlive any one bad check
                log.exception("inventory watch failed; trying again at the next interval")
