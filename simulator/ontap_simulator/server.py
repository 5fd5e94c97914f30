"""The simulated clusters' HTTPS servers: one aiohttp app, one listening socket per cluster.

A request's cluster is the one owning the local port it arrived on, so a thousand clusters
share one application, one runner and one SSL context. Faults are applied here, before the
query engine sees the request, in the order a real cluster would fail: slow network, no
answer, dropped connection, authentication, overload, then a broken body.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import hmac
import json
import math
import socket
import ssl
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any

from aiohttp import web

from ontap_simulator import ems, key_manager_configs, volumes
from ontap_simulator.ems import EventLog
from ontap_simulator.keymanagers import KEY_MANAGERS
from ontap_simulator.model import ClusterState
from ontap_simulator.query import (
    Kind,
    OntapError,
    answer_collection,
    answer_instance,
)
from ontap_simulator.records import (
    CLUSTER_TREE,
    NODE_TREE,
    NODES_PATH,
    Rendered,
    SimulatedKeyManager,
    render,
)

SERVER_HEADER = "libzapid-httpd"
HAL_JSON = "application/hal+json"

NODE_KIND = Kind(NODE_TREE, default_fields=("uuid", "name"))
CLUSTER_KIND = Kind(CLUSTER_TREE, default_fields=(), always=("_links",))

# ONTAP's error body for a fault status; 262160 is ONTAP's "too many requests" code, which
# overload answers carry. Other statuses use the HTTP status as the code (the simulator's own).
_FAULT_ERRORS = {
    400: ("2", "Invalid value."),
    403: ("6", "not authorized for that command"),
    404: ("4", "entry doesn't exist"),
    429: ("262160", "Too many requests are being processed. Retry the request later."),
    503: ("262160", "Too many requests are being processed. Retry the request later."),
}
# Endpoints beyond the key managers (KEY_MANAGERS), each in its own module:
# ENDPOINTS = ((path, answer), ...) with answer(state, EMS log, request path, query parameters)
# -> body, raising OntapError.
ENDPOINT_MODULES = (key_manager_configs, volumes, ems)
MALFORMED_BODY = b'{"records": [{"uuid": "8a7e1c2e-0b5f-11ee-9a6b-00a098d4c1b2", "svm": {"na'


class SimulatedCluster:
    """One cluster's live state, the state a reset returns to, and its rendered records."""

    def __init__(self, baseline: ClusterState) -> None:
        self.baseline = baseline
        self._state = baseline
        self._rendered: Rendered | None = None
        self.url = ""
        # The EMS log is history, not state: a reset keeps it (ONTAP's indexes never go back).
        self.events = EventLog(baseline)
        # Authenticated requests by User-Agent: shows which exporter (shard) asked.
        self.clients: Counter[str] = Counter()
        # Authenticated requests by endpoint (route) and query shape (request_shape): what
        # was asked, e.g. that no request to key-managers named `*`, `**` or `onboard`.
        self.requests: dict[str, Counter[str]] = {}

    @property
    def name(self) -> str:
        return self._state.name

    @property
    def state(self) -> ClusterState:
        return self._state

    def set_state(self, state: ClusterState) -> None:
        """Replace the live state; records are re-rendered on the next request."""
        self._state = state
        self._rendered = None

    def reset(self) -> None:
        """Return to the scenario's (or generator's) state, faults included."""
        self.set_state(self.baseline)

    def rendered(self) -> Rendered:
        """Return the current state's records, rendering them once per change."""
        rendered = self._rendered
        if rendered is None:
            rendered = self._rendered = render(self._state, KEY_MANAGERS)
        return rendered


class Fleet:
    """Every simulated cluster, by name and by the local port it listens on."""

    def __init__(self, states: Iterable[ClusterState]) -> None:
        self.clusters: dict[str, SimulatedCluster] = {}
        for state in states:
            if state.name in self.clusters:
                raise ValueError(f"two clusters are named {state.name!r}")
            self.clusters[state.name] = SimulatedCluster(state)
        self.by_port: dict[int, SimulatedCluster] = {}

    def __iter__(self) -> Iterator[SimulatedCluster]:
        return iter(self.clusters.values())

    def __len__(self) -> int:
        return len(self.clusters)


def _json_response(request: web.Request, body: Any, status: int = 200) -> web.Response:
    accept = request.headers.get("Accept", "")
    # ONTAP answers hal+json unless the client asks for plain JSON only.
    content_type = (
        "application/json" if "application/json" in accept and HAL_JSON not in accept else HAL_JSON
    )
    return web.Response(
        body=json.dumps(body, separators=(",", ":")).encode(),
        status=status,
        content_type=content_type,
    )


def _error_response(request: web.Request, error: OntapError) -> web.Response:
    return _json_response(request, error.body(), error.status)


def _authorized(request: web.Request, state: ClusterState) -> bool:
    header = request.headers.get("Authorization", "")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        username, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return False
    # Both comparisons always run, so the timing says nothing about which one failed.
    user_ok = hmac.compare_digest(username.encode(), state.username.encode())
    password_ok = hmac.compare_digest(password.encode(), state.password.encode())
    return user_ok and password_ok


def _unauthorized() -> web.Response:
    # ONTAP's 401 is not an ONTAP error body; clients must not try to parse one.
    return web.Response(
        status=401,
        text="<html><head><title>401 Unauthorized</title></head>"
        "<body><h1>Unauthorized</h1></body></html>",
        content_type="text/html",
        headers={"WWW-Authenticate": 'Basic realm="ONTAP"'},
    )


def _fault_response(request: web.Request, state: ClusterState) -> web.Response:
    status = state.faults.http_status or 500
    code, message = _FAULT_ERRORS.get(status, (str(status), "Internal error"))
    response = _json_response(request, {"error": {"message": message, "code": code}}, status)
    if status in (429, 503) and state.faults.retry_after_s is not None:
        response.headers["Retry-After"] = str(math.ceil(state.faults.retry_after_s))
    return response


Handler = Callable[[web.Request, SimulatedCluster], Awaitable[web.Response]]


class OntapApp:
    """The aiohttp application every simulated cluster answers through."""

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet
        self.app = web.Application(middlewares=[self._middleware])
        self.app.on_response_prepare.append(self._server_header)
        get = self.app.router.add_get
        get("/api/cluster", self._on(self.cluster), allow_head=False)
        get(NODES_PATH, self._on(self.nodes), allow_head=False)
        get(NODES_PATH + "/{uuid}", self._on(self.node), allow_head=False)
        for endpoint in KEY_MANAGERS:
            collection, instance = _key_manager_handlers(self, endpoint)
            get(endpoint.path, self._on(collection), allow_head=False)
            get(endpoint.path + "/{uuid}", self._on(instance), allow_head=False)
        for module in ENDPOINT_MODULES:
            for path, answer in module.ENDPOINTS:
                get(path, self._on(_answering(answer)), allow_head=False)

    @staticmethod
    async def _server_header(request: web.Request, response: web.StreamResponse) -> None:
        response.headers["Server"] = SERVER_HEADER

    def _on(self, handler: Handler) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handle(request: web.Request) -> web.Response:
            cluster = self._cluster_of(request)
            if cluster is None:  # the client went away meanwhile
                raise web.HTTPServiceUnavailable()
            return await handler(request, cluster)

        return handle

    def _cluster_of(self, request: web.Request) -> SimulatedCluster | None:
        transport = request.transport
        sockname = transport.get_extra_info("sockname") if transport is not None else None
        return self.fleet.by_port.get(sockname[1]) if sockname else None

    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        cluster = self._cluster_of(request)
        if cluster is None:  # the client went away before we looked
            raise web.HTTPServiceUnavailable()
        state = cluster.state
        faults = state.faults
        if faults.latency_s:
            await asyncio.sleep(faults.latency_s)
        if faults.hang:
            await asyncio.Event().wait()  # never set: cancelled when the simulator stops
        if faults.drop_connection:
            # Close without a byte of answer; aiohttp ignores the response it cannot send.
            request.protocol.force_close()
            return web.Response(status=500)
        if faults.auth_reject or not _authorized(request, state):
            return _unauthorized()
        cluster.clients[request.headers.get("User-Agent", "")] += 1
        _log_request(cluster, request)
        if faults.http_status:
            return _fault_response(request, state)
        try:
            response = await handler(request)
        except OntapError as error:
            return _error_response(request, error)
        except web.HTTPException as error:  # no such path, method not allowed
            code = "4" if error.status == 404 else str(error.status)
            message = "API not found" if error.status == 404 else error.reason
            return _json_response(
                request, {"error": {"message": message, "code": code}}, error.status
            )
        if faults.malformed_body and response.status == 200:
            return web.Response(body=MALFORMED_BODY, content_type=HAL_JSON)
        return response

    async def cluster(self, request: web.Request, cluster: SimulatedCluster) -> web.Response:
        record = cluster.rendered().cluster
        return _json_response(request, answer_instance(record, CLUSTER_KIND, _params(request)))

    async def nodes(self, request: web.Request, cluster: SimulatedCluster) -> web.Response:
        return self._collection(request, cluster, cluster.rendered().nodes, NODE_KIND)

    async def node(self, request: web.Request, cluster: SimulatedCluster) -> web.Response:
        record = cluster.rendered().nodes_by_uuid.get(request.match_info["uuid"])
        return _json_response(request, answer_instance(record, NODE_KIND, _params(request)))

    def _collection(
        self,
        request: web.Request,
        cluster: SimulatedCluster,
        records: tuple[dict[str, Any], ...],
        kind: Kind,
    ) -> web.Response:
        body = answer_collection(
            records,
            kind,
            request.path,
            _params(request),
            empty_first_page=cluster.state.faults.empty_pages,
        )
        return _json_response(request, body)


def request_shape(query: Iterable[tuple[str, str]]) -> str:
    """Return a request's query as the request log keeps it: ``fields`` with its value, every
    other parameter by name only (``fields=uuid,status&max_records``), so that paging cursors
    and filter values do not make every request a new entry."""
    return "&".join(
        f"{name}={value}" if name == "fields" else name
        for name, value in query
        if not name.startswith("start.")
    )


def _log_request(cluster: SimulatedCluster, request: web.Request) -> None:
    resource = request.match_info.route.resource
    endpoint = resource.canonical if resource is not None else request.path
    shapes = cluster.requests.get(endpoint)
    if shapes is None:
        shapes = cluster.requests[endpoint] = Counter()
    shapes[request_shape(request.query.items())] += 1


def _answering(
    answer: Callable[[ClusterState, EventLog, str, list[tuple[str, str]]], dict[str, Any]],
) -> Handler:
    async def handle(request: web.Request, cluster: SimulatedCluster) -> web.Response:
        body = answer(cluster.state, cluster.events, request.path, _params(request))
        return _json_response(request, body)

    return handle


def _key_manager_handlers(app: OntapApp, endpoint: SimulatedKeyManager) -> tuple[Handler, Handler]:
    """Return the collection and instance handlers of one key-manager endpoint."""

    @functools.cache
    def kind_of(version: tuple[int, int, int]) -> Kind:
        # The record kind as a release knows it: its fields, and its 262197 for newer ones.
        return Kind(
            endpoint.tree_of(version),
            default_fields=endpoint.default_fields,
            advanced=endpoint.advanced,
        )

    def refuse(cluster: SimulatedCluster, instance: bool) -> None:
        if cluster.state.version < endpoint.since:  # the release does not have the endpoint
            raise OntapError(404, "4", "API not found")
        if not (instance or endpoint.collection_refusal):
            return
        # The codes are NetApp's for this GET; the HTTP status 500 is the simulator's.
        refusal = endpoint.refusal(cluster.state)
        if refusal is not None:
            raise OntapError(500, *refusal)

    async def collection(request: web.Request, cluster: SimulatedCluster) -> web.Response:
        refuse(cluster, instance=False)
        records = cluster.rendered().key_managers[endpoint.path]
        return app._collection(request, cluster, records, kind_of(cluster.state.version))

    async def instance(request: web.Request, cluster: SimulatedCluster) -> web.Response:
        refuse(cluster, instance=True)
        by_uuid = cluster.rendered().key_managers_by_uuid[endpoint.path]
        record = by_uuid.get(request.match_info["uuid"])
        kind = kind_of(cluster.state.version)
        return _json_response(request, answer_instance(record, kind, _params(request)))

    return collection, instance


def _params(request: web.Request) -> list[tuple[str, str]]:
    return list(request.query.items())


def bind_sockets(host: str, first_port: int, count: int) -> list[socket.socket]:
    """Return ``count`` bound sockets on ``host``: ports first_port+i, or ephemeral for 0."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sockets: list[socket.socket] = []
    try:
        for index in range(count):
            port = first_port + index if first_port else 0
            sock = socket.socket(family, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, port))
            except OSError as error:
                raise OSError(
                    error.errno, f"cannot listen on {host}:{port}: {error.strerror}"
                ) from None
            sock.setblocking(False)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


class OntapServers:
    """Every cluster's listener, started and stopped together."""

    def __init__(self, fleet: Fleet, ssl_context: ssl.SSLContext | None) -> None:
        self.fleet = fleet
        self.ssl_context = ssl_context
        # A short shutdown: a hanging request (the `hang` fault) must not delay stop().
        self.runner = web.AppRunner(
            OntapApp(fleet).app, access_log=None, handle_signals=False, shutdown_timeout=0.2
        )

    async def start(self, host: str, first_port: int) -> None:
        """Listen for every cluster and set each cluster's URL."""
        clusters = list(self.fleet)
        sockets = bind_sockets(host, first_port, len(clusters))
        await self.runner.setup()
        scheme = "https" if self.ssl_context else "http"
        url_host = f"[{host}]" if ":" in host else host
        try:
            for cluster, sock in zip(clusters, sockets, strict=True):
                port = sock.getsockname()[1]
                self.fleet.by_port[port] = cluster
                cluster.url = f"{scheme}://{url_host}:{port}"
                site = web.SockSite(self.runner, sock, ssl_context=self.ssl_context, backlog=512)
                await site.start()
        except BaseException:
            await self.runner.cleanup()
            for sock in sockets:
                sock.close()
            raise

    async def stop(self) -> None:
        """Stop listening and end every open request."""
        await self.runner.cleanup()
