"""The garbage collector in a long-running exporter: what the first full view made is frozen.

A full collection visits every object the process tracks, with the event loop stopped: polls
and scrapes wait. At 5,000 clusters that is millions of objects and about a second, every few
minutes. Most of them (configuration, clients, TLS connections, rendered series names) are made
by the first poll round and live as long as the process. ``freeze`` moves what lives then out
of the collector's sight (``gc.freeze``), so later collections visit only what was made since.

A frozen object freed by reference counting is freed as ever; only cyclic garbage among frozen
objects waits, until ``refresh`` (hourly, and after a reload that replaced clusters) collects
it and freezes again.
"""

from __future__ import annotations

import gc
import logging
import time

log = logging.getLogger(__name__)

REFRESH = 3600.0  # seconds between two refreshes


def freeze() -> None:
    """Collect, then freeze every object that survived (they are the long-lived ones)."""
    began = time.perf_counter()
    gc.collect()
    gc.freeze()
    log.debug(
        "froze %d objects out of the collector's sight in %.2fs",
        gc.get_freeze_count(),
        time.perf_counter() - began,
    )


def refresh() -> None:
    """Collect the frozen objects' cyclic garbage, then freeze the survivors again."""
    gc.unfreeze()
    freeze()


def thaw() -> None:
    """Give every frozen object back to the collector (the exporter stops)."""
    gc.unfreeze()
