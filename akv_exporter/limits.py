"""The process's open-file limit, lifted at start so that thousands of clusters fit.

Each polled cluster holds up to ``poll.connections_per_cluster`` keep-alive connections (and a
simulated cluster a listening socket plus its clients' connections); the usual soft limit of
1024 descriptors stops a fleet of about 500 clusters. The soft limit may be raised up to the hard
limit without privileges, so both the exporter and the simulator do it when they start.
"""

from __future__ import annotations

import logging
import resource

log = logging.getLogger(__name__)
# When the hard limit is unlimited, Linux still caps descriptors at fs.nr_open (1048576 by default).
_UNLIMITED_TARGET = 1 << 20


def raise_open_file_limit() -> int:
    """Lift the soft RLIMIT_NOFILE to the hard limit; return the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = _UNLIMITED_TARGET if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as error:  # nr_open below an unlimited hard limit
            log.debug("cannot raise the open-file limit to %d: %s", target, error)
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return soft


def ensure_open_files(needed: int, what: str) -> None:
    """Raise the limit; warn once, naming the shortfall, when ``needed`` still does not fit."""
    soft = raise_open_file_limit()
    if soft != resource.RLIM_INFINITY and soft < needed:
        log.warning(
            "open-file limit %d (the hard limit) is below the %d descriptors %s may need; "
            "raise it (ulimit -Hn, LimitNOFILE=) or some connections will fail",
            soft,
            needed,
            what,
        )
