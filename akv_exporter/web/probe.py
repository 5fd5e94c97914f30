"""GET /probe?target=NAME: one configured cluster's series, polled now unless polled just now.

The multi-target pattern of the blackbox and SNMP exporters: Prometheus sets ``target`` by
relabelling and bounds the probe with ``X-Prometheus-Scrape-Timeout-Seconds``; the probe answers
inside that budget even when the cluster hangs, with ``akv_exporter_probe_success 0``. A probe is
an ordinary poll: it also refreshes the cluster on /metrics and the status page. Probes never
flood ONTAP: concurrent ones share one poll, and within poll.min_interval of the last poll the
probe returns that poll's result with ``akv_exporter_probe_cached 1``.
"""

from __future__ import annotations

import asyncio
import json
import time

from aiohttp import web

from akv_exporter.metrics.render import render_probe, wants_openmetrics
from akv_exporter.snapshot import ClusterSnapshot
from akv_exporter.web.common import exporter_of, exposition_response

# Answer this much before Prometheus gives up, so a hung cluster still yields probe_success 0.
TIMEOUT_MARGIN = 0.5
MIN_TIMEOUT = 0.1


def probe_timeout(header: str | None, poll_timeout: float) -> float:
    """Return the poll budget: the scrape timeout less a margin, capped by poll.timeout."""
    if not header:
        return poll_timeout
    try:
        scrape_timeout = float(header)
    except ValueError:
        return poll_timeout
    if scrape_timeout != scrape_timeout or scrape_timeout <= 0:  # NaN or nonsense
        return poll_timeout
    return min(poll_timeout, max(MIN_TIMEOUT, scrape_timeout - TIMEOUT_MARGIN))


def _bad_request(reason: str) -> web.Response:
    return web.Response(status=400, text=reason + "\n")


async def probe(request: web.Request) -> web.Response:
    """GET /probe?target=NAME."""
    exporter = exporter_of(request)
    target = request.query.get("target", "")
    if not target:
        return _bad_request(
            "missing target: give ?target=NAME (a configured cluster name or address)"
        )
    key = exporter.find(target)
    if key is None:
        # Quoted as a JSON string, so a line break in the target cannot split the reason.
        owner = exporter.owner_of(target)
        if owner is not None:
            # Polling it here too would double ONTAP's load and split its series across shards.
            return _bad_request(
                f"target {json.dumps(target)} belongs to shard {owner} of "
                f"{exporter.shard.total}; this exporter is {exporter.shard}"
            )
        return _bad_request(
            f"unknown target {json.dumps(target)}: not a configured cluster name or address"
        )
    timeout = probe_timeout(
        request.headers.get("X-Prometheus-Scrape-Timeout-Seconds"),
        exporter.config.poll.timeout,
    )
    began = time.monotonic()
    snapshot: ClusterSnapshot | None = None
    cached = False
    try:
        # The poll bounds itself, but a probe may join one already in flight with a longer
        # budget; the outer bound keeps this probe inside its own.
        async with asyncio.timeout(timeout + MIN_TIMEOUT):
            refreshed = await exporter.refresh(key, timeout)
            snapshot, cached = refreshed.snapshot, refreshed.cached
    except TimeoutError:
        pass
    duration = time.monotonic() - began
    success = snapshot is not None and snapshot.up
    openmetrics = wants_openmetrics(request.headers.get("Accept", ""))
    body = render_probe(snapshot, success, duration, openmetrics, cached)
    return exposition_response(body, openmetrics=openmetrics)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/probe", probe)
