"""The aiohttp application: routes, basic authentication, and serving over HTTP or HTTPS."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import logging
from collections.abc import Awaitable, Callable

import bcrypt
from aiohttp import web

from akv_exporter.exporter import Exporter
from akv_exporter.metrics.render import wants_openmetrics
from akv_exporter.web import probe, runbooks, status_page
from akv_exporter.web.common import EXPORTER_KEY, exporter_of, exposition_response
from akv_exporter.web.listener import Listener
from akv_exporter.web.security import security_headers

log = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# Health endpoints stay open so that orchestrators' probes work without credentials.
_OPEN_PATHS = ("/-/healthy", "/-/ready")


async def metrics(request: web.Request) -> web.Response:
    """GET /metrics: the pre-rendered exposition; OpenMetrics and gzip when asked."""
    exporter = exporter_of(request)
    openmetrics = wants_openmetrics(request.headers.get("Accept", ""))
    gzipped = "gzip" in request.headers.get("Accept-Encoding", "")
    parts = exporter.scrape_parts(openmetrics=openmetrics, gzipped=gzipped)
    return exposition_response(parts, openmetrics=openmetrics, gzipped=gzipped)


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


# bcrypt uses at most 72 bytes of a password; like Go's bcrypt (Prometheus' exporter-toolkit),
# a longer one never matches rather than matching on its first 72 bytes.
MAX_PASSWORD_BYTES = 72


def basic_credentials(header: str) -> tuple[str, bytes] | None:
    """Return (user, password bytes) of a Basic Authorization header; None when malformed.

    The pair is UTF-8, as Prometheus, curl and browsers send it (RFC 7617's charset="UTF-8").
    """
    scheme, _, encoded = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    login, colon, password = decoded.partition(":")
    return (login, password.encode()) if colon else None


def bcrypt_cost(digest: str) -> int:
    """Return the cost of a validated bcrypt hash ($2b$12$... -> 12)."""
    return int(digest[4:6])


class BasicAuthGuard:
    """Checks web.basic_auth_users (bcrypt); remembers good credentials to keep scrapes cheap."""

    def __init__(self, exporter: Exporter):
        self.exporter = exporter
        self._verified: dict[str, bytes] = {}  # user -> sha256(user:password:hash) proven good
        self._decoys: dict[int, bytes] = {}  # cost -> a hash no password matches

    def decoy(self, users: dict[str, str]) -> bytes:
        """Return the hash an unknown user is checked against: the highest configured cost.

        Checking unknown names at a cheaper cost than known ones would tell, by the time an
        answer takes, which user names exist.
        """
        cost = max(map(bcrypt_cost, users.values()), default=4)
        if cost not in self._decoys:
            self._decoys[cost] = bcrypt.hashpw(b"no password matches", bcrypt.gensalt(cost))
        return self._decoys[cost]

    def _check(self, header: str) -> bool:
        users = self.exporter.config.web.basic_auth_users
        credentials = basic_credentials(header)
        if credentials is None:
            return False
        login, password = credentials
        digest = users.get(login)
        if digest is None or len(password) > MAX_PASSWORD_BYTES:
            bcrypt.checkpw(password[:MAX_PASSWORD_BYTES], self.decoy(users))  # same time spent
            return False
        token = hashlib.sha256(b"%s:%s:%s" % (login.encode(), password, digest.encode())).digest()
        known = self._verified.get(login)
        if known is not None and hmac.compare_digest(known, token):
            return True
        try:
            matches = bcrypt.checkpw(password, digest.encode())
        except ValueError:  # a hash bcrypt cannot use: check-config refuses those, so say no
            return False
        if matches:
            self._verified[login] = token
        return matches

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
    # Outermost, so that a 401 from the guard carries the headers too.
    app = web.Application(middlewares=[security_headers, guard.middleware])
    app[EXPORTER_KEY] = exporter
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/-/healthy", healthy)
    app.router.add_get("/-/ready", ready)
    app.router.add_post("/-/reload", reload)
    status_page.add_routes(app)
    probe.add_routes(app)
    runbooks.add_routes(app)
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
