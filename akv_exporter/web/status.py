"""GET / (the health monitor page) and GET /api/v1/status (the same as JSON).

The page is built with plain string joins and ``html.escape`` from the fleet's assessment: no
template engine, no front-end build, no external assets. Clusters with a problem come first,
expanded; healthy clusters follow as one compact row each, their details folded away, so the
page stays readable and cheap at a thousand clusters. Every state is written in words and
coloured, never coloured alone. Cluster names, labels and ONTAP's messages are untrusted and
always escaped.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from datetime import UTC, datetime
from html import escape

from aiohttp import web

from akv_exporter.ontap.akv import Check
from akv_exporter.snapshot import PollOutcome
from akv_exporter.status import (
    AZURE_UNREACHABLE,
    CRITICAL,
    DOWN,
    EKMIP_UNREACHABLE,
    HEALTHY,
    INACTIVE,
    KEK_UNAVAILABLE,
    OK,
    PENDING,
    UNKNOWN,
    WARNING,
    AkvView,
    ClusterView,
    FleetStatus,
    configuration_label,
)
from akv_exporter.web.common import exporter_of

DEFAULT_REFRESH = 15  # seconds; ?refresh=N overrides it, 0 turns it off
_NONE = '<span class="muted">&ndash;</span>'  # a field with nothing to show

# State -> (words shown, colour class). Colour classes: bad (red), warn (amber), unknown (grey),
# ok (green).
_STATE_TEXT = {
    DOWN: ("DOWN", "bad"),
    AZURE_UNREACHABLE: ("AZURE UNREACHABLE", "bad"),
    EKMIP_UNREACHABLE: ("EKMIP UNREACHABLE", "bad"),
    KEK_UNAVAILABLE: ("KEK UNAVAILABLE", "warn"),
    PENDING: ("NOT POLLED YET", "unknown"),
    UNKNOWN: ("UNKNOWN", "unknown"),
    INACTIVE: ("INACTIVE", "unknown"),
    HEALTHY: ("HEALTHY", "ok"),
}
_VERDICT = {
    CRITICAL: ("CRITICAL", "bad"),
    UNKNOWN: ("UNKNOWN", "unknown"),
    WARNING: ("WARNING", "warn"),
    OK: ("OK", "ok"),
}

_STYLE = """
:root{--bad:#b3261e;--bad-bg:#fde7e6;--warn:#8a5300;--warn-bg:#fff1d6;--ok:#1e6b34;
--ok-bg:#e3f4e7;--unknown:#4a4f57;--unknown-bg:#e8eaed;--line:#d5d8dc}
*{box-sizing:border-box}
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1b1f24;
background:#f6f7f9}
header{background:#fff;border-bottom:1px solid var(--line);padding:12px 20px;position:sticky;top:0;
z-index:1}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:20px 0 8px}h3{font-size:15px;margin:0}
main{padding:0 20px 40px}
a{color:#0b57d0}
.meta{color:#555;margin:0 0 8px}
.summary{display:flex;flex-wrap:wrap;gap:8px;margin:8px 0}
.tile{background:#fff;border:1px solid var(--line);border-radius:6px;padding:6px 12px;
min-width:150px}
.tile b{display:block;font-size:20px}
.tile.bad{border-color:var(--bad);background:var(--bad-bg)}
.tile.warn{border-color:var(--warn);background:var(--warn-bg)}
.state{display:inline-block;font-weight:600;font-size:12px;padding:1px 6px;border-radius:4px;
border:1px solid;white-space:nowrap}
.bad{color:var(--bad)}.state.bad{background:var(--bad-bg)}
.warn{color:var(--warn)}.state.warn{background:var(--warn-bg)}
.ok{color:var(--ok)}.state.ok{background:var(--ok-bg)}
.unknown{color:var(--unknown)}.state.unknown{background:var(--unknown-bg)}
.banner{border:1px solid var(--bad);background:var(--bad-bg);padding:6px 10px;border-radius:6px}
#filter{font:inherit;padding:4px 8px;width:min(420px,100%)}
article.cluster{background:#fff;border:1px solid var(--line);border-left:6px solid var(--unknown);
border-radius:6px;padding:10px 14px;margin:0 0 12px}
article.edge-bad{border-left-color:var(--bad)}article.edge-warn{border-left-color:var(--warn)}
dl.facts{display:flex;flex-wrap:wrap;gap:4px 18px;margin:6px 0}
dl.facts div{display:flex;gap:6px}dt{color:#555}dd{margin:0}
ul.problems{margin:6px 0;padding-left:20px}
table{border-collapse:collapse;background:#fff;margin:6px 0}
th,td{border:1px solid var(--line);padding:3px 6px;text-align:left;vertical-align:top}
th{background:#eef0f3;font-weight:600}
td.msg{max-width:520px;overflow-wrap:anywhere}
code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:12px}
.hist{font-family:ui-monospace,monospace;letter-spacing:1px}
.muted{color:#666}
.nowrap{white-space:nowrap}
details>summary{cursor:pointer}
"""

_SCRIPT = """
(function () {
  var input = document.getElementById("filter");
  var items = Array.prototype.slice.call(document.querySelectorAll(".cluster"));
  var shown = document.getElementById("shown");
  function apply() {
    var terms = input.value.toLowerCase().split(/\\s+/).filter(Boolean);
    var count = 0;
    items.forEach(function (el) {
      var text = el.getAttribute("data-search");
      var hit = terms.every(function (t) { return text.indexOf(t) !== -1; });
      el.hidden = !hit;
      if (hit) { count++; }
    });
    shown.textContent = terms.length ? count + " of " + items.length + " clusters match" : "";
    var url = new URL(location.href);
    if (input.value) { url.searchParams.set("q", input.value); }
    else { url.searchParams.delete("q"); }
    history.replaceState(null, "", url);
  }
  input.addEventListener("input", apply);
  apply();
  // Details the reader opened stay open across refreshes.
  var key = "akv-exporter-open";
  var open = {};
  try { open = JSON.parse(sessionStorage.getItem(key) || "{}"); } catch (e) { open = {}; }
  document.querySelectorAll("details[id]").forEach(function (d) {
    if (open[d.id]) { d.open = true; }
    d.addEventListener("toggle", function () {
      if (d.open) { open[d.id] = 1; } else { delete open[d.id]; }
      try { sessionStorage.setItem(key, JSON.stringify(open)); } catch (e) {}
    });
  });
  var refresh = Number(document.body.getAttribute("data-refresh"));
  function tick() {
    if (document.hidden) { setTimeout(tick, 1000); return; }
    location.reload();
  }
  if (refresh > 0) { setTimeout(tick, refresh * 1000); }
})();
"""


# --- small pieces -------------------------------------------------------------------------------


def _anchor(name: str) -> str:
    """Return a short id derived from a cluster name, stable across reloads and re-sorting."""
    return hashlib.blake2s(name.encode(), digest_size=6).hexdigest()


def _badge(text: str, colour: str) -> str:
    return f'<span class="state {colour}">{escape(text)}</span>'


def _state_badge(state: str) -> str:
    return _badge(*_STATE_TEXT[state])


def _check_badge(check: Check | None, good: str, bad: str, colour: str) -> str:
    if check is None:
        return _badge("UNKNOWN", "unknown")
    badge = _badge(good, "ok") if check.ok else _badge(bad, colour)
    if check.code not in ("", "0"):
        badge += f' <code title="ONTAP code">{escape(check.code)}</code>'
    return badge


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _span(seconds: float) -> str:
    seconds = abs(seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def _duration(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def _when(ts: float | None, now: float) -> str:
    """Return a <time> saying how long ago ``ts`` was, with the exact time as its title."""
    if ts is None:
        return '<span class="unknown">never</span>'
    iso = _iso(ts)
    return f'<time datetime="{iso}" title="{iso}">{_span(now - ts)} ago</time>'


def _time_left(view: AkvView, now: float) -> str:
    if view.volumes_offline_deadline is None:
        return _NONE
    left = view.volumes_offline_deadline - now
    title = f"estimated deadline {_iso(view.volumes_offline_deadline)}"
    if left > 0:
        return f'<span class="bad" title="{title}">≈ {_span(left)} left</span>'
    return (
        f'<span class="state bad" title="{title}">PASSED {_span(left)} ago: '
        "encrypted volumes may be offline</span>"
    )


def _history(history: tuple[PollOutcome, ...]) -> str:
    """Return the recent polls as ✓ and ✗ (oldest first), the failures in red."""
    if not history:
        return '<span class="muted">none yet</span>'
    marks = "".join("✓" if o.ok else '<b class="bad">✗</b>' for o in history)
    good = sum(1 for o in history if o.ok)
    title = f"{good} of {len(history)} recent polls answered (oldest first)"
    return f'<span class="hist" title="{title}">{marks}</span>'


def _failed_polls(anchor: str, history: tuple[PollOutcome, ...], now: float) -> str:
    failed = [o for o in history if not o.ok]
    if not failed:
        return ""
    rows = "".join(
        f"<tr><td>{_when(o.started, now)}</td><td>{escape(o.reason or '')}</td>"
        f'<td>{_duration(o.duration)}</td><td class="msg">{escape(o.error)}</td></tr>'
        for o in reversed(failed)
    )
    return (
        f'<details id="fails-{anchor}"><summary>{len(failed)} failed of the last {len(history)} '
        "polls</summary><table><thead><tr><th>started</th><th>reason</th><th>duration</th>"
        f"<th>error</th></tr></thead><tbody>{rows}</tbody></table></details>"
    )


def _messages(view: AkvView) -> str:
    akv = view.akv
    lines = [
        (name, check.code, check.message)
        for name, check in (("Azure", akv.azure), ("KEK", akv.kek))
        if check is not None and check.message
    ]
    lines += [(f"EKMIP {n.node}", n.code, n.message) for n in akv.ekmip if n.message]
    if not lines:
        return ""
    return "<br>".join(
        f"<b>{escape(name)}</b>"
        + (f" <code>{escape(code)}</code>" if code else "")
        + f": {escape(message)}"
        for name, code, message in lines
    )


def _enabled(view: AkvView) -> str:
    enabled = view.akv.enabled
    if enabled is None:
        return _badge("UNKNOWN", "unknown")
    return "yes" if enabled else _badge("INACTIVE", "unknown")


def _ekmip_summary(view: AkvView) -> str:
    nodes = view.akv.ekmip
    if not nodes:
        return _badge("UNKNOWN", "unknown")
    down = view.akv.ekmip_unreachable
    if down:
        return _badge(f"{len(down)} OF {len(nodes)} UNREACHABLE", "bad")
    return _badge(f"{len(nodes)} OF {len(nodes)} REACHABLE", "ok")


def _akv_table(cluster: ClusterView, now: float) -> str:
    if not cluster.akvs:
        if cluster.snapshot.up:
            return '<p class="muted">No AKV configuration on this cluster.</p>'
        return '<p class="unknown">No AKV state known: the cluster has not answered.</p>'
    rows = []
    for view in cluster.akvs:
        akv = view.akv
        since = view.azure_unreachable_since
        rows.append(
            f"<tr><td>{escape(akv.svm) if akv.svm else _NONE}</td><td>{escape(akv.scope)}</td>"
            f'<td class="mono nowrap">{escape(akv.vault)}</td><td>{_enabled(view)}</td>'
            f"<td>{_check_badge(akv.azure, 'REACHABLE', 'UNREACHABLE', 'bad')}</td>"
            f"<td>{_check_badge(akv.kek, 'AVAILABLE', 'UNAVAILABLE', 'warn')}</td>"
            f"<td>{_ekmip_summary(view)}</td>"
            f'<td class="msg">{_messages(view)}</td>'
            f"<td>{_when(since, now) if since is not None else _NONE}</td>"
            f"<td>{_time_left(view, now)}</td></tr>"
        )
    return (
        '<table class="akvs"><thead><tr><th>SVM</th><th>scope</th><th>vault</th>'
        "<th>enabled</th><th>Azure</th><th>KEK</th><th>EKMIP</th><th>code and message</th>"
        "<th>unreachable since</th><th>before volumes go offline (60 min)</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _ekmip_matrix(cluster: ClusterView) -> str:
    """Return the node-by-configuration table of EKMIP reachability."""
    nodes = cluster.nodes
    if not nodes:
        return ""
    head = "".join(f"<th>{escape(configuration_label(v.akv))}</th>" for v in cluster.akvs)
    by_config = [{n.node: n for n in v.akv.ekmip} for v in cluster.akvs]
    rows = []
    for node in nodes:
        cells = []
        for checks in by_config:
            check = checks.get(node)
            if check is None:
                cells.append(f"<td>{_badge('UNKNOWN', 'unknown')}</td>")
                continue
            title = escape(f"code {check.code}: {check.message}" if check.message else check.code)
            word, colour = ("REACHABLE", "ok") if check.ok else ("UNREACHABLE", "bad")
            cells.append(f'<td title="{title}">{_badge(word, colour)}</td>')
        rows.append(f"<tr><th>{escape(node)}</th>{''.join(cells)}</tr>")
    return (
        '<table class="ekmip"><thead><tr><th>node \\ EKMIP of</th>'
        f"{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def _search_text(cluster: ClusterView) -> str:
    snapshot = cluster.snapshot
    words = [snapshot.name, snapshot.address, cluster.state, _STATE_TEXT[cluster.state][0]]
    words += [value for _, value in snapshot.labels]
    if snapshot.identity is not None:
        words.append(snapshot.identity.version)
    for view in cluster.akvs:
        words += [view.akv.svm, view.akv.vault, view.state]
    words += cluster.nodes
    return escape(" ".join(w for w in words if w).lower())


def _facts(cluster: ClusterView, now: float) -> str:
    snapshot = cluster.snapshot
    identity = snapshot.identity
    facts = [
        ("address", f'<span class="mono">{escape(snapshot.address)}</span>'),
        ("ONTAP", escape(identity.version) if identity else '<span class="unknown">unknown</span>'),
        ("last good poll", _when(snapshot.last_success, now)),
    ]
    if snapshot.last is not None:
        facts.append(("poll took", _duration(snapshot.last.duration)))
    facts += [(escape(name), escape(value)) for name, value in snapshot.labels]
    facts.append(("recent polls", _history(snapshot.history)))
    return "".join(f"<div><dt>{name}</dt><dd>{value}</dd></div>" for name, value in facts)


def _problem_card(cluster: ClusterView, now: float) -> str:
    snapshot = cluster.snapshot
    colour = _STATE_TEXT[cluster.state][1]
    problems = "".join(f"<li>{escape(problem)}</li>" for problem in cluster.problems)
    return (
        f'<article class="cluster edge-{colour}" data-name="{escape(snapshot.name)}" '
        f'data-search="{_search_text(cluster)}">'
        f"<h3>{_state_badge(cluster.state)} {escape(snapshot.name)}</h3>"
        f'<dl class="facts">{_facts(cluster, now)}</dl>'
        f'<ul class="problems">{problems}</ul>'
        f"{_akv_table(cluster, now)}{_ekmip_matrix(cluster)}"
        f"{_failed_polls(_anchor(snapshot.name), snapshot.history, now)}</article>"
    )


def _healthy_row(cluster: ClusterView, now: float) -> str:
    snapshot = cluster.snapshot
    identity = snapshot.identity
    anchor = _anchor(snapshot.name)
    akvs = len(cluster.akvs)
    details = (
        f'<details id="akvs-{anchor}"><summary>{akvs} configuration{"s" if akvs != 1 else ""}, '
        f"{len(cluster.nodes)} nodes</summary>{_akv_table(cluster, now)}"
        f"{_ekmip_matrix(cluster)}</details>"
        if akvs
        else '<span class="muted">no AKV configuration</span>'
    )
    labels = ", ".join(f"{name}={value}" for name, value in snapshot.labels)
    duration = _duration(snapshot.last.duration) if snapshot.last is not None else _NONE
    return (
        f'<tr class="cluster" data-name="{escape(snapshot.name)}" '
        f'data-search="{_search_text(cluster)}"><td><b>{escape(snapshot.name)}</b>'
        f'<div class="muted mono">{escape(snapshot.address)}</div></td>'
        f"<td>{_state_badge(cluster.state)}</td>"
        f"<td>{escape(identity.version) if identity else _NONE}</td>"
        f'<td class="muted">{escape(labels)}</td><td>{details}</td>'
        f"<td>{_when(snapshot.last_success, now)}</td><td>{duration}</td>"
        f"<td>{_history(snapshot.history)}{_failed_polls(anchor, snapshot.history, now)}"
        "</td></tr>"
    )


def _tile(label: str, value: str, colour: str = "") -> str:
    return f'<div class="tile {colour}"><b>{value}</b>{escape(label)}</div>'


def _summary(status: FleetStatus) -> str:
    s = status.summary
    word, colour = _VERDICT[s.status]
    tiles = [
        _tile("overall", _badge(word, colour), colour),
        _tile(
            "clusters up",
            f"{s.clusters_up} / {s.clusters}",
            "bad" if s.clusters_down else "",
        ),
        _tile(
            "configurations unreachable",
            f"{s.configurations_unreachable} of {s.configurations}",
            "bad" if s.configurations_unreachable else "",
        ),
        _tile(
            "nodes with EKMIP down",
            str(s.ekmip_nodes_down),
            "bad" if s.ekmip_nodes_down else "",
        ),
        _tile(
            "KEKs unavailable",
            str(s.configurations_kek_unavailable),
            "warn" if s.configurations_kek_unavailable else "",
        ),
        _tile(
            "unknown or inactive configurations",
            str(s.configurations_unknown + s.configurations_inactive),
        ),
    ]
    return f'<div class="summary">{"".join(tiles)}</div>'


def render_page(status: FleetStatus, *, refresh: int = DEFAULT_REFRESH, query: str = "") -> str:
    """Return the whole status page for ``status``; ``query`` pre-fills the filter box."""
    now = status.generated_at
    ordered = status.by_urgency()
    problems = [c for c in ordered if c.state != HEALTHY]
    healthy = [c for c in ordered if c.state == HEALTHY]
    word = _VERDICT[status.summary.status][0]
    exporter = status.exporter
    out = [
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>AKV {word}: ONTAP Azure Key Vault health</title>"
        f"<style>{_STYLE}</style></head>",
        f'<body data-refresh="{refresh}"><header><h1>ONTAP Azure Key Vault health</h1>',
        f'<p class="meta">akv-exporter {escape(exporter.version)} · generated '
        f'<time datetime="{_iso(now)}">{_iso(now)}</time> · '
        + (f"refreshes every {refresh} s · " if refresh > 0 else "auto-refresh off · ")
        + '<a href="/metrics">/metrics</a> · <a href="/api/v1/status">/api/v1/status</a></p>',
        _summary(status),
    ]
    if not exporter.config_reload_ok:
        out.append(
            '<p class="banner"><b class="bad">CONFIGURATION RELOAD FAILED</b> (the previous '
            f"configuration is still in use): {escape(exporter.last_reload_error or '')}</p>"
        )
    out.append(
        '<label>Filter clusters: <input id="filter" type="search" autocomplete="off" '
        f'placeholder="name, address, label, SVM, vault, node, state" value="{escape(query)}">'
        '</label> <span id="shown" class="muted"></span></header><main>'
    )
    out.append(f'<section id="problems"><h2>Needs attention ({len(problems)})</h2>')
    if not problems:
        out.append('<p class="ok">Nothing needs attention.</p>')
    out.extend(_problem_card(cluster, now) for cluster in problems)
    out.append(f'</section><section id="healthy"><h2>Healthy ({len(healthy)})</h2>')
    if healthy:
        out.append(
            "<table><thead><tr><th>cluster</th><th>state</th><th>ONTAP</th><th>labels</th>"
            "<th>AKV configurations</th><th>last good poll</th><th>poll took</th>"
            "<th>recent polls</th></tr></thead><tbody>"
        )
        out.extend(_healthy_row(cluster, now) for cluster in healthy)
        out.append("</tbody></table>")
    out.append(f"</section></main><script>{_SCRIPT}</script></body></html>")
    return "".join(out)


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
    response.enable_compression()
    return response


async def status_json(request: web.Request) -> web.Response:
    """GET /api/v1/status: the assessment as JSON (schema: docs/status.schema.json)."""
    status = exporter_of(request).status()
    body = await asyncio.to_thread(lambda: json.dumps(status.to_json()))
    response = web.Response(text=body, content_type="application/json")
    response.headers["Cache-Control"] = "no-store"
    response.enable_compression()
    return response


def add_routes(app: web.Application) -> None:
    app.router.add_get("/", status_page)
    app.router.add_get("/api/v1/status", status_json)
