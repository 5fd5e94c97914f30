"""The control API (plain HTTP, loopback): list clusters, patch their state, reset them.

    GET   /simulator/clusters                 every cluster: name, url, nodes, akvs (and the
                                              other key managers), faults and authenticated
                                              requests by User-Agent ("clients")
    GET   /simulator/clusters/{name}          one cluster with every check and its request log
    PATCH /simulator/clusters/{name}          merge {"akvs": {...}, "faults": {...}, ...}
    POST  /simulator/clusters/{name}/reset    back to the scenario's state
    POST  /simulator/reset                    every cluster back to the scenario's state
    GET   /simulator/requests                 every cluster's request log (below)
    DELETE /simulator/requests                empty every request log

plus, with a health monitor, the EMS and clock routes of control_events.py.

Errors are ``{"error": "<one line>"}``: 404 for an unknown cluster, 400 for a bad body.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from ontap_simulator import control_events, key_manager_configs, key_managers, key_stores, volumes
from ontap_simulator.cloud_kms import Provider
from ontap_simulator.health import HealthMonitor
from ontap_simulator.keymanagers import CLOUD_PROVIDERS
from ontap_simulator.model import CloudKms, ClusterState, StateError, Status, apply_patch
from ontap_simulator.server import Fleet, SimulatedCluster


def _status(status: Status, flag: str) -> dict[str, Any]:
    return {flag: status.ok, "code": status.code, "message": status.message}


def cluster_summary(cluster: SimulatedCluster) -> dict[str, Any]:
    """Return what GET /simulator/clusters lists for one cluster."""
    state = cluster.state
    return {
        "name": state.name,
        "url": cluster.url,
        "version": state.release,
        "nodes": [node.name for node in state.nodes],
        "akvs": [
            {"uuid": akv.uuid, "svm": akv.svm_name, "scope": akv.scope, "enabled": akv.enabled}
            for akv in state.akvs
        ],
        **{
            provider.patch_key: [
                {"uuid": c.uuid, "svm": c.svm_name, "scope": c.scope, "enabled": c.enabled}
                for c in state.cloud(provider.keystore_type)
            ]
            for provider in CLOUD_PROVIDERS
        },
        "key_managers": [
            {
                "uuid": m.uuid,
                "type": m.kind,
                "svm": m.svm_name,
                "scope": m.scope,
                "enabled": m.enabled,
            }
            for m in state.key_managers
        ],
        "faults": state.faults.as_json(),
        "clients": dict(cluster.clients),
    }


def _cloud_detail(provider: Provider, state: ClusterState, config: CloudKms) -> dict[str, Any]:
    detail = {
        "uuid": config.uuid,
        "svm": config.svm_name,
        "scope": config.scope,
        "enabled": config.enabled,
        **dict(config.attributes),
        provider.service_field: _status(config.service, "reachable"),
        "state": _status(config.kek, "cluster_state"),
    }
    if provider.ekmip:
        detail["ekmip_reachability"] = {
            node.name: _status(config.ekmip_of(node.name), "reachable") for node in state.nodes
        }
    return detail


def request_log(cluster: SimulatedCluster) -> dict[str, dict[str, int]]:
    """Return the cluster's authenticated requests: endpoint -> query shape -> count."""
    return {endpoint: dict(shapes) for endpoint, shapes in cluster.requests.items()}


def cluster_detail(
    cluster: SimulatedCluster, health: HealthMonitor | None = None
) -> dict[str, Any]:
    """Return one cluster with every AKV's checks, the key-manager policy, the volumes per SVM
    and the health monitor's view, as the simulator holds them."""
    state: ClusterState = cluster.state
    detail = cluster_summary(cluster)
    detail["akvs"] = [
        {
            "uuid": akv.uuid,
            "svm": akv.svm_name,
            "scope": akv.scope,
            "enabled": akv.enabled,
            "vault": akv.vault,
            "azure_reachability": _status(akv.azure, "reachable"),
            "state": _status(akv.kek, "available"),
            "ekmip_reachability": {
                node.name: _status(akv.ekmip_of(node.name), "reachable") for node in state.nodes
            },
        }
        for akv in state.akvs
    ]
    for provider in CLOUD_PROVIDERS:
        detail[provider.patch_key] = [
            _cloud_detail(provider, state, c) for c in state.cloud(provider.keystore_type)
        ]
    detail["key_managers"] = key_managers.describe(state)
    detail["key_stores"] = key_stores.describe(state)
    detail["requests"] = request_log(cluster)
    detail["key_manager_config"] = key_manager_configs.describe(state)
    detail["volumes"] = volumes.describe(state)
    detail["events"] = len(cluster.events)
    if health is not None:
        detail["health_monitor"] = health.describe(cluster)
    return detail


def control_app(fleet: Fleet, health: HealthMonitor | None = None) -> web.Application:
    """Return the control API's application over ``fleet`` (and its health monitor)."""

    def lookup(request: web.Request) -> SimulatedCluster:
        name = request.match_info["name"]
        cluster = fleet.clusters.get(name)
        if cluster is None:
            raise web.HTTPNotFound(
                text=json.dumps({"error": f"no simulated cluster named {name!r}"}),
                content_type="application/json",
            )
        return cluster

    async def list_clusters(request: web.Request) -> web.Response:
        return web.json_response([cluster_summary(cluster) for cluster in fleet])

    async def show(request: web.Request) -> web.Response:
        return web.json_response(cluster_detail(lookup(request), health))

    async def patch(request: web.Request) -> web.Response:
        cluster = lookup(request)
        try:
            body = json.loads(await request.text() or "null")
        except json.JSONDecodeError as error:
            return control_events.error_response(
                400, f"invalid JSON: {error.msg} at line {error.lineno}"
            )
        try:
            cluster.set_state(apply_patch(cluster.state, body))
        except StateError as error:
            return control_events.refused(error)
        return web.json_response(cluster_detail(cluster, health))

    async def reset(request: web.Request) -> web.Response:
        cluster = lookup(request)
        cluster.reset()
        return web.json_response(cluster_detail(cluster, health))

    async def reset_all(request: web.Request) -> web.Response:
        for cluster in fleet:
            cluster.reset()
        return web.json_response({"reset": len(fleet)})

    async def requests(request: web.Request) -> web.Response:
        return web.json_response({cluster.name: request_log(cluster) for cluster in fleet})

    async def clear_requests(request: web.Request) -> web.Response:
        for cluster in fleet:
            cluster.requests.clear()
        return web.json_response({"cleared": len(fleet)})

    app = web.Application()
    app.router.add_get("/simulator/clusters", list_clusters)
    app.router.add_get("/simulator/clusters/{name}", show)
    app.router.add_patch("/simulator/clusters/{name}", patch)
    app.router.add_post("/simulator/clusters/{name}/reset", reset)
    app.router.add_post("/simulator/reset", reset_all)
    app.router.add_get("/simulator/requests", requests)
    app.router.add_delete("/simulator/requests", clear_requests)
    if health is not None:
        control_events.register(app, lookup, health)
    return app
