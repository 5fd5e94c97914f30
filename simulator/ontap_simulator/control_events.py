"""Control API additions for ONTAP's own verdict: EMS events, the clock, the health monitor.

    GET   /simulator/clusters/{name}/events        the cluster's EMS log, newest first
    POST  /simulator/clusters/{name}/events        append an event (below)
    POST  /simulator/clusters/{name}/health-check  run the health monitor's check now
    GET   /simulator/clock                         {"factor", "simulated_s"}
    PATCH /simulator/clock                         {"factor": F} and/or {"advance_s": S}

The policy and the volumes are set through PATCH /simulator/clusters/{name} (control.py), with
the keys ``key_manager_config`` and ``volumes``. Errors are ``{"error": "<one line>"}``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web

from ontap_simulator import ems
from ontap_simulator.health import HealthMonitor
from ontap_simulator.model import StateError, check_keys, parse_text
from ontap_simulator.server import SimulatedCluster

EVENT_KEYS = ("name", "node", "svm", "severity", "log_message", "parameters")
_EVENT_NAME = re.compile(r"[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)+")


def error_response(status: int, message: str) -> web.Response:
    """Return the control API's error answer, ``{"error": "<one line>"}``."""
    return web.json_response({"error": message}, status=status)


def refused(error: StateError) -> web.Response:
    """Return the 400 for a body that cannot apply: the key it names, or "body" if none."""
    return error_response(400, str(error) if error.key else f"body: {error.reason}")


async def _body(request: web.Request) -> Any:
    try:
        return json.loads(await request.text() or "null")
    except json.JSONDecodeError as error:
        raise StateError("", f"invalid JSON: {error.msg} at line {error.lineno}") from None


def append_events(cluster: SimulatedCluster, body: Any) -> list[ems.EmsEvent]:
    """Append the event a control-API body describes; StateError (nothing appended) if unusable."""
    if not isinstance(body, Mapping):
        raise StateError("", "expected a JSON object with at least a name")
    check_keys(body, EVENT_KEYS, "")
    state = cluster.state
    if "name" not in body:
        raise StateError("name", "every event needs a name, e.g. ekmip.akv.keyExpired")
    name = parse_text(body["name"], "name")
    if not _EVENT_NAME.fullmatch(name):
        raise StateError("name", f"expected a dotted EMS message name, got {name!r}")
    if name.startswith(ems.CATALOGUED_GROUPS) and name not in ems.CATALOGUE:
        group = next(g for g in ems.CATALOGUED_GROUPS if name.startswith(g))
        known = sorted(n for n in ems.CATALOGUE if n.startswith(group))
        raise StateError(
            "name", f"{name} is no {group.rstrip('.')} event of NetApp's EMS reference "
            f"(known: {', '.join(known)})",
        )  # fmt: skip
    if not ems.available_in(name, state.version):
        since = ems.CATALOGUE[name].since
        raise StateError(
            "name",
            f"{name} is not in ONTAP {state.release}'s EMS catalogue "
            f"(from {'.'.join(map(str, since[:2]))}.1)",
        )
    node_names = [node.name for node in state.nodes]
    node_name = parse_text(body.get("node", node_names[0]), "node")
    if node_name != "*" and node_name not in node_names:
        raise StateError("node", f"no such node (nodes: {', '.join(node_names)})")
    targets = [n for n in state.nodes if node_name in ("*", n.name)]
    default_svm = next((a.svm_name for a in state.akvs if state.active(a)), "")
    svm = parse_text(body.get("svm", default_svm), "svm")
    severity = body.get("severity")
    if severity is not None and severity not in ems.SEVERITIES:
        raise StateError("severity", f"expected one of {', '.join(ems.SEVERITIES)}")
    log_message = parse_text(body["log_message"], "log_message") if "log_message" in body else None
    given = body.get("parameters", {})
    if not isinstance(given, Mapping) or not all(
        isinstance(v, str | int | float) and not isinstance(v, bool) for v in given.values()
    ):
        raise StateError("parameters", "expected a mapping of names to strings or numbers")
    replaced = ""
    if name == "ekmip.akv.keyVersionChanged":
        # NetApp: the key version changed at the vault and the KEK was re-wrapped with it. The
        # configuration's key id names the new version from now on; the event the old one.
        state, replaced = ems.renew_key(state, svm)
        cluster.set_state(state)
    appended = []
    for node in targets:
        parameters: dict[str, str] = {}
        text = log_message
        if name in ems.CATALOGUE:
            facts = ems.facts_for(state, name, svm, node.name)
            if replaced:
                facts["oldKeyVersion"] = ems.key_version(replaced)
            parameters, default_text = ems.akv_event(name, facts)
            text = log_message if log_message is not None else default_text
        parameters.update({str(k): str(v) for k, v in given.items()})
        appended.append(
            cluster.events.append(
                node.name,
                node.uuid,
                name,
                severity=severity,
                log_message=text,
                parameters=parameters,
            )
        )
    return appended


def register(
    app: web.Application,
    lookup: Callable[[web.Request], SimulatedCluster],
    health: HealthMonitor,
) -> None:
    """Add the routes above to the control API's application; ``lookup`` finds the cluster a
    request names (control.py's, answering 404 for an unknown one)."""

    async def list_events(request: web.Request) -> web.Response:
        return web.json_response({"records": list(lookup(request).events.records())})

    async def post_event(request: web.Request) -> web.Response:
        cluster = lookup(request)
        try:
            appended = append_events(cluster, await _body(request))
        except StateError as error:
            return refused(error)
        return web.json_response({"records": [ems.render(event) for event in appended]})

    async def health_check(request: web.Request) -> web.Response:
        cluster = lookup(request)
        health.check(cluster)
        return web.json_response(health.describe(cluster))

    def clock_json() -> dict[str, Any]:
        return {"factor": health.clock.factor, "simulated_s": health.clock.now()}

    async def show_clock(request: web.Request) -> web.Response:
        return web.json_response(clock_json())

    async def patch_clock(request: web.Request) -> web.Response:
        try:
            body = await _body(request)
            if not isinstance(body, Mapping):
                raise StateError("", "expected a JSON object with factor and/or advance_s")
            check_keys(body, ("factor", "advance_s"), "")
            for key in body:
                value = body[key]
                if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                    raise StateError(key, f"expected a number >= 0, got {value!r}")
                if key == "factor" and value == 0:
                    raise StateError(key, "expected a number > 0")
        except StateError as error:
            return refused(error)
        if "factor" in body:
            health.clock.set_factor(body["factor"])
        if "advance_s" in body:
            health.clock.advance(body["advance_s"])
        health.wake.set()  # the monitor recomputes what is due now
        return web.json_response(clock_json())

    app.router.add_get("/simulator/clusters/{name}/events", list_events)
    app.router.add_post("/simulator/clusters/{name}/events", post_event)
    app.router.add_post("/simulator/clusters/{name}/health-check", health_check)
    app.router.add_get("/simulator/clock", show_clock)
    app.router.add_patch("/simulator/clock", patch_clock)
