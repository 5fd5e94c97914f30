"""The running exporter: configuration, poller and exposition wired together, and reloads."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

from akv_exporter.config import Config, ConfigError, load_config
from akv_exporter.metrics import Exposition
from akv_exporter.poller import Poller
from akv_exporter.state import UnreachableSince

log = logging.getLogger(__name__)


class Exporter:
    """Owns one Poller and one Exposition; the web app and the signal handlers talk to it."""

    def __init__(self, config: Config, *, process_metrics: bool = True):
        self.config = config
        self.started = time.time()
        self.exposition = Exposition(process_metrics=process_metrics)
        self.exposition.set_reload(successful=True, timestamp=self.started)
        self.last_reload_error: str | None = None
        self._reloading = asyncio.Lock()  # SIGHUP twice in a row: the second waits its turn
        self.state = UnreachableSince(config.state_file)
        self.state.load()
        self.poller = Poller(
            config,
            state=self.state,
            publish=self.exposition.update,
            retire=self.exposition.remove,
        )

    async def start(self) -> None:
        await self.poller.start()
        log.info(
            "polling %d cluster(s) every %gs", len(self.config.clusters), self.config.poll.interval
        )

    async def stop(self) -> None:
        await self.poller.stop()

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
            config = load_config(path)
        except ConfigError as error:
            self.last_reload_error = "; ".join(error.problems)
            self.exposition.set_reload(successful=False, timestamp=None)
            for problem in error.problems:
                log.error("reload refused: %s", problem)
            return self.last_reload_error
        if config.web.listen != self.config.web.listen:
            log.warning("web.listen changed; it takes effect at the next restart")
        await self.poller.reconfigure(config)
        self.config = config
        self.last_reload_error = None
        self.exposition.set_reload(successful=True, timestamp=time.time())
        log.info("configuration reloaded: %d cluster(s)", len(config.clusters))
        return None
