"""The aiohttp application: routes, basic authentication, and serving over HTTP or HTTPS."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
from collections.abc import Awaitable, Callable

import bcrypt
from aiohttp import BasicAuth, web

from akv_exporter.exporter import Exporter
from akv_exporter.metrics import wants_openmetrics
from akv_exporter.web import probe, status
from akv_exporter.web.common import EXPORTER_KEY, exporter_of, exposition_response
from akv_exporter.web.listener import Listener

log = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# Health endpoints stay open so that orchestrators' probes work without credentials.
_OPEN_PATHS = ("/-/healthy", "/-/ready")


async def metrics(request: web.Request) -> web.Response:
    """GET /metrics: the pre-rendered exposition; OpenMetrics and gzip when asked."""
    exporter = exporter_of(request)
    openmetrics = wants_openmetrics(request.headers.get("Accept", ""))
    gzipped = "gzip" in request.headers.get("Accept-Encoding", "")
    body = exporter.scrape(openmetrics=openmetrics, gzipped=gzipped)
    return exposition_response(body, openmetrics=openmetrics, gzipped=gzipped)


async def healthy(_: web.Request) -> web.Response:
    return web.Response(text="Healthy.\n")


async def ready(request: web.Request) -> web.Response:
    """GET /-/ready: 200 once the configuration is loaded and the first poll round attempted."""
    if exporter_of(request).ready:
        return web.Response(text="Ready.\n")
    return web.Response(status=503, text="Not ready: the first poll round is still running.\n")


async def reload(request: web.Request) -> web.Response:
    """POST /-/reload: re-read the configuration; a bad file is refused, the old one stays."""
    problems = await exporter_of(request).reload()
    if problems is None:
        return web.Response(text="Configuration reloaded.\n")
    return web.Response(status=500, text=f"Reload refused: {problems}\n")


class BasicAuthGuard:
    """Checks web.basic_auth_users (bcrypt); remembers good credentials to keep scrapes cheap."""

    def __init__(self, exporter: Exporter):
        self.exporter = exporter
        self._verified: dict[str, bytes] = {}  # user -> sha256(user:password:hash) proven good

    def _check(self, header: str) -> bool:
        users = self.exporter.config.web.basic_auth_users
        try:
            credentials = BasicAuth.decode(header)
        except ValueError:
            return False
        digest = users.get(credentials.login)
        if digest is None:
            bcrypt.checkpw(b"timing", bcrypt.gensalt(4))  # spend comparable time on unknown users
            return False
        token = hashlib.sha256(
            f"{credentials.login}:{credentials.password}:{digest}".encode()
        ).digest()
        known = self._verified.get(credentials.login)
        if known is not None and hmac.compare_digest(known, token):
            return True
        if bcrypt.checkpw(credentials.password.encode(), digest.encode()):
            self._verified[credentials.login] = token
            return True
        return False

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if not self.exporter.config.web.basic_auth_users or request.path in _OPEN_PATHS:
            return await handler(request)
        header = request.headers.get("Authorization", "")
        if header and await asyncio.to_thread(self._check, header):
            return await handler(request)
        return web.Response(
            status=401,
            text="Unauthorized.\n",
            headers={"WWW-Authenticate": 'Basic realm="akv-exporter"'},
        )


def create_app(exporter: Exporter) -> web.Application:
    """Return the application serving every HTTP surface of ``exporter``."""
    guard = BasicAuthGuard(exporter)
    app = web.Application(middlewares=[guard.middleware])
    app[EXPORTER_KEY] = exporter
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/-/healthy", healthy)
    app.router.add_get("/-/ready", ready)
    app.router.add_post("/-/reload", reload)
    status.add_routes(app)
    probe.add_routes(app)
    return app


async def serve(
    exporter: Exporter, host: str, port: int, *, follow_config: bool = False
) -> web.AppRunner:
    """Start serving ``exporter`` on host:port; return the runner (its ``addresses`` are bound).

    ``follow_config``: a reload may move the socket to a changed ``web.listen`` (host and port
    did not come from --listen). Either way a reload re-reads the certificate files.
    """
    runner = web.AppRunner(create_app(exporter), handle_signals=False, access_log=None)
    await runner.setup()
    listener = Listener(runner, host, port, follow_config=follow_config)
    try:
        await listener.start(exporter.config.web)
    except BaseException:
        await runner.cleanup()
        raise
    exporter.listener = listener
    return runner
