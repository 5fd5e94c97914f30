"""GET / (the health monitor page) and GET /api/v1/status (the same as JSON).

The page is jinja2 templates (web/templates/) over the fleet's assessment, with its style and
script as static files (web/static/, served under /static/): no inline script or style, so a
strict Content-Security-Policy holds, and escaping is automatic (autoescape), never per call.
Clusters with a problem come first, expanded; healthy clusters follow as one compact row each,
their details folded away, so the page stays readable and cheap at a thousand clusters. Every
state is written in words and coloured, never coloured alone.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from datetime import UTC, datetime
from importlib import resources

import jinja2
import markupsafe
from aiohttp import web

from akv_exporter.assessment import (
    ACTION_NEEDED,
    CRITICAL,
    DOWN,
    EKMIP_UNREACHABLE,
    HEALTHY,
    INACTIVE,
    KEK_UNAVAILABLE,
    KEY_EXPIRED,
    KEY_EXPIRED_EVENT,
    KEY_SERVER_UNREACHABLE,
    KEY_SERVERS_UNREACHABLE,
    KEY_STORE_BLOCKED,
    OK,
    PENDING,
    UNKNOWN,
    VOLUMES_OFFLINE,
    VOLUMES_OFFLINE_OTHER,
    WARNING,
    ClusterView,
    FleetStatus,
    KeyManagerView,
    configuration_label,
    declares,
    fleet_kinds,
    fleet_name,
    fleet_words,
    service_header,
    span,
    utc_time,
    words,
)
from akv_exporter.assessment_json import to_json
from akv_exporter.ontap.key_manager_endpoint import KeyManagerStatus, NodeCheck
from akv_exporter.ontap.key_manager_registry import BY_KIND, PROVIDERS
from akv_exporter.web.common import exporter_of
from akv_exporter.web.security import PAGE_POLICY

DEFAULT_REFRESH = 15  # seconds; ?refresh=N overrides it, 0 turns it off
_WEB = resources.files("akv_exporter.web")
STATIC_TYPES = {".css": "text/css", ".js": "text/javascript"}

# State -> (words shown, colour class). Colour classes: bad (red), warn (amber), unknown (grey),
# ok (green).
STATE_TEXT = {
    VOLUMES_OFFLINE: ("VOLUMES OFFLINE", "bad"),
    DOWN: ("DOWN", "bad"),
    **{
        p.unreachable_state: (f"{p.words.short.upper()} UNREACHABLE", "bad")
        for p in PROVIDERS
        if p.metrics.service is not None
    },
    KEY_STORE_BLOCKED: ("KEY STORE BLOCKED", "bad"),
    KEY_SERVERS_UNREACHABLE: ("NO KEY SERVER REACHABLE", "bad"),
    EKMIP_UNREACHABLE: ("EKMIP UNREACHABLE", "bad"),
    KEY_SERVER_UNREACHABLE: ("KEY SERVER DOWN", "warn"),
    KEK_UNAVAILABLE: ("KEK UNAVAILABLE", "warn"),
    # Offline without a current ekmip.akv.volOffline: ONTAP named no AKV cause.
    VOLUMES_OFFLINE_OTHER: ("VOLUMES OFFLINE", "warn"),
    ACTION_NEEDED: ("ACTION NEEDED", "warn"),
    KEY_EXPIRED: ("KEY VERSION EXPIRED", "warn"),  # EMS ekmip.akv.keyExpired in the last 24 h
    PENDING: ("NOT POLLED YET", "unknown"),
    UNKNOWN: ("UNKNOWN", "unknown"),
    INACTIVE: ("INACTIVE", "unknown"),
    HEALTHY: ("HEALTHY", "ok"),
}
# ONTAP's key-manager events of severity ALERT, in red: it acted (volumes offline), or the key
# service went away (each provider's ems_alerts).
BAD_EVENTS = tuple(name for provider in PROVIDERS for name in provider.ems_alerts)
# In amber, as the cluster's KEY VERSION EXPIRED: NetApp's EMS text for ekmip.akv.keyExpired says
# there is no interruption to data availability.
WARN_EVENTS = (KEY_EXPIRED_EVENT,)
VERDICT_TEXT = {
    CRITICAL: ("CRITICAL", "bad"),
    UNKNOWN: ("UNKNOWN", "unknown"),
    WARNING: ("WARNING", "warn"),
    OK: ("OK", "ok"),
}


# --- what the templates use beyond the assessment -----------------------------------------------


def anchor(name: str) -> str:
    """Return a short id derived from a cluster name, stable across reloads and re-sorting."""
    return hashlib.blake2s(name.encode(), digest_size=6).hexdigest()


def clock(ts: float) -> str:
    """Return the time of day of ``ts``, for a deadline: "14:35 UTC"."""
    return datetime.fromtimestamp(ts, UTC).strftime("%H:%M UTC")


def duration(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def message_lines(view: KeyManagerView) -> list[tuple[str, str, str]]:
    """Return (check, code, message) for every check ONTAP sent a message for."""
    status = view.status
    lines = [
        (name, check.code, check.message)
        for name, check in (
            (words(status).short, status.service),
            ("KEK", status.kek),
            (words(status).name, status.setup),
        )
        if check is not None and check.message
    ]
    return lines + [(f"EKMIP {n.node}", n.code, n.message) for n in status.ekmip if n.message]


def node_check(status: KeyManagerStatus, node: str) -> NodeCheck | None:
    return next((check for check in status.ekmip if check.node == node), None)


def with_ekmip(views: list[KeyManagerView]) -> list[KeyManagerView]:
    """Return the views of kinds whose nodes reach embedded KMIP servers (not Barbican, KMIP or
    the Onboard Key Manager: they have no ekmip_reachability)."""
    return [view for view in views if BY_KIND[view.status.kind].metrics.ekmip is not None]


def offline_rule(view: KeyManagerView) -> str:
    """Return ONTAP's volume-offline rule for this kind, as NetApp's EMS reference gives it."""
    provider = BY_KIND[view.status.kind]
    if provider.volumes_offline_after is None:
        return "NetApp documents no volume-offline deadline for this key manager"
    minutes = provider.volumes_offline_after / 60
    return (
        f"ONTAP's policy takes volumes offline after {minutes:.0f} min of failed polls of the key "
        f"(EMS {provider.volumes_offline_event})"
    )


def target(status: KeyManagerStatus) -> str:
    """Return what a configuration points at (AKV: its vault), as the page's table shows it."""
    return status.detail(words(status).target)


def search_text(cluster: ClusterView) -> str:
    """Return what the filter box matches a cluster on, lower case."""
    snapshot = cluster.snapshot
    terms = [snapshot.name, snapshot.address, cluster.state, STATE_TEXT[cluster.state][0]]
    terms += [value for _, value in snapshot.labels]
    if snapshot.identity is not None:
        terms.append(snapshot.identity.version)
    for view in cluster.key_managers:
        terms += [view.status.svm, target(view.status), view.state]
    terms += cluster.nodes
    return " ".join(term for term in terms if term).lower()


def _environment() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("akv_exporter.web", "templates"),
        autoescape=True,  # every value is escaped unless a template says otherwise (none does)
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters.update(
        iso=utc_time,
        clock=clock,
        span=span,
        duration=duration,
        anchor=anchor,
        message_lines=message_lines,
        node_check=node_check,
        with_ekmip=with_ekmip,
        target=target,
        has=declares,
        offline_rule=offline_rule,
        search_text=search_text,
        configuration_label=configuration_label,
    )
    environment.globals.update(
        state_text=STATE_TEXT,
        verdict_text=VERDICT_TEXT,
        bad_events=BAD_EVENTS,
        warn_events=WARN_EVENTS,
    )
    return environment


_PAGE = _environment().get_template("status.html")


def _breakable(words) -> markupsafe.Markup:
    """Return ``words`` joined by slashes a line may break after (each word escaped)."""
    return markupsafe.Markup("/<wbr>").join(words)


def render_page(status: FleetStatus, *, refresh: int = DEFAULT_REFRESH, query: str = "") -> str:
    """Return the whole status page for ``status``; ``query`` pre-fills the filter box."""
    ordered = status.by_urgency()
    kinds = fleet_kinds(status)
    return _PAGE.render(
        # Headers over the kinds the fleet has: "Azure" and "vault" for an AKV fleet. A mixed
        # fleet's run of names may break after each slash (<wbr>): unbroken, one header made the
        # table wider than a laptop's screen.
        service_header=_breakable(service_header(kinds).split("/")),
        target_header=_breakable(dict.fromkeys(w.target for w in fleet_words(kinds))),
        fleet_name=fleet_name(kinds),
        status=status,
        refresh=refresh,
        query=query,
        problems=[c for c in ordered if c.needs_attention],
        healthy=[c for c in ordered if not c.needs_attention],
    )


# --- handlers -----------------------------------------------------------------------------------


def _refresh(request: web.Request) -> int:
    try:
        return max(0, min(int(request.query.get("refresh", DEFAULT_REFRESH)), 3600))
    except ValueError:
        return DEFAULT_REFRESH


async def status_page(request: web.Request) -> web.Response:
    """GET /: the health monitor page."""
    # Snapshots are immutable: rendering a large fleet off the event loop keeps /metrics quick.
    body = await asyncio.to_thread(
        render_page,
        exporter_of(request).status(),
        refresh=_refresh(request),
        query=request.query.get("q", ""),
    )
    response = web.Response(text=body, content_type="text/html", charset="utf-8")
    response.headers["Cache-Control"] = "no-store"
    response.headers["Content-Security-Policy"] = PAGE_POLICY
    response.enable_compression()
    return response


async def status_json(request: web.Request) -> web.Response:
    """GET /api/v1/status: the assessment as JSON (schema: docs/status.schema.json)."""
    status = exporter_of(request).status()
    body = await asyncio.to_thread(lambda: json.dumps(to_json(status)))
    response = web.Response(text=body, content_type="application/json")
    response.headers["Cache-Control"] = "no-store"
    response.enable_compression()
    return response


def _static_files() -> dict[str, tuple[bytes, str]]:
    """Return every file of web/static/ by name, with its content type, read once at start."""
    files: dict[str, tuple[bytes, str]] = {}
    for entry in _WEB.joinpath("static").iterdir():
        suffix = "." + entry.name.rpartition(".")[2]
        if entry.is_file() and suffix in STATIC_TYPES:
            files[entry.name] = (entry.read_bytes(), STATIC_TYPES[suffix])
    return files


_STATIC = _static_files()


async def static_file(request: web.Request) -> web.Response:
    """GET /static/{name}: the page's style and script (URLs carry the version, so cache)."""
    found = _STATIC.get(request.match_info["name"])
    if found is None:
        raise web.HTTPNotFound(text="no such file\n")
    body, content_type = found
    response = web.Response(body=body, content_type=content_type, charset="utf-8")
    response.headers["Cache-Control"] = "public, max-age=3600"
    response.enable_compression()
    return response


def add_routes(app: web.Application) -> None:
    app.router.add_get("/", status_page)
    app.router.add_get("/api/v1/status", status_json)
    app.router.add_get("/static/{name}", static_file)
