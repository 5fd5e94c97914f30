"""The exporter as a process: poll and serve until a signal, reload on SIGHUP.

``run`` and ``demo`` both end here, so the demo runs the exporter exactly as ``run`` would.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable

from aiohttp import web

from akv_exporter.config import Config
from akv_exporter.exporter import Exporter
from akv_exporter.shard import UNSHARDED, Shard
from akv_exporter.web.app import serve

log = logging.getLogger("akv_exporter")

OnReady = Callable[[Exporter, web.AppRunner], None]


async def run_exporter(
    config: Config,
    host: str,
    port: int,
    *,
    shard: Shard = UNSHARDED,
    on_ready: OnReady | None = None,
    follow_config: bool = False,
) -> None:
    """Poll and serve until SIGINT or SIGTERM; SIGHUP reloads the configuration.

    ``follow_config``: host and port are web.listen's (not --listen), so a reload may move them.
    """
    exporter = Exporter(config, shard=shard)
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
    # Bind before polling starts: a busy port or a bad certificate ends the start-up at once.
    runner = await serve(exporter, host, port, follow_config=follow_config)
    await exporter.start()
    for address in runner.addresses:
        log.info("listening on %s:%s", *address[:2])
    if on_ready is not None:
        on_ready(exporter, runner)
    try:
        await stop.wait()
    finally:
        log.info("shutting down")
        for site in list(runner.sites):
            await site.stop()  # no new requests
        await exporter.stop()  # cancels polls in flight, so no /probe of a hung cluster waits
        await runner.cleanup()
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.remove_signal_handler(signum)
