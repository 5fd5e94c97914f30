"""The simulator's clock for ONTAP's own timers: real time multiplied by a factor.

ONTAP's key-manager health monitor counts in minutes (checks every 15 to 30, volumes offline
after 60 without success). A factor compresses those minutes for a demo or a test: at factor
60 one simulated hour passes in one real minute. Only these timers use it; every timestamp a
cluster sends (EMS ``time``) stays wall-clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class SimClock:
    """Simulated seconds since start, running ``factor`` times as fast as ``monotonic``."""

    def __init__(self, factor: float = 1.0, monotonic: Callable[[], float] = time.monotonic):
        if not factor > 0:
            raise ValueError(f"clock factor must be > 0, got {factor!r}")
        self._monotonic = monotonic
        self._real_base = monotonic()
        self._simulated_base = 0.0
        self._factor = float(factor)

    @property
    def factor(self) -> float:
        return self._factor

    def now(self) -> float:
        """Return the simulated seconds since the clock started."""
        return self._simulated_base + (self._monotonic() - self._real_base) * self._factor

    def set_factor(self, factor: float) -> None:
        """Run at ``factor`` from now on; the simulated time so far is kept."""
        if not factor > 0:
            raise ValueError(f"clock factor must be > 0, got {factor!r}")
        self._simulated_base = self.now()
        self._real_base = self._monotonic()
        self._factor = float(factor)

    def advance(self, seconds: float) -> None:
        """Jump ``seconds`` of simulated time ahead at once."""
        if seconds < 0:
            raise ValueError(f"the clock only goes forward, got {seconds!r}")
        self._simulated_base += seconds

    def real_seconds(self, simulated: float) -> float:
        """Return how long ``simulated`` seconds take in real time at the current factor."""
        return simulated / self._factor
