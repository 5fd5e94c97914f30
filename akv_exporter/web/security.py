"""Security headers on every answer, and the status page's Content-Security-Policy.

Every response says `nosniff`, sends no referrer and may not be framed. Non-HTML answers get a
policy that allows nothing at all; the status page's policy allows its own script and style
files (web/static/, same origin) and nothing inline, so an injected `<script>` or `style=`
attribute would not run even if escaping ever failed. No `unsafe-inline`, no nonce to leak.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from aiohttp import web

from akv_exporter.web.common import EXPORTER_KEY

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Nothing to load, nothing to frame: for /metrics, JSON, plain-text answers.
NOTHING = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
# The status page: its /static/ script and style, its own links and filter form, nothing else.
PAGE_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Add the headers to every answer, errors included; a handler's own CSP is kept.

    The headers of --web.config.file's http_server_config come last: the operator's word wins.
    """
    exporter = request.app.get(EXPORTER_KEY)
    configured = exporter.config.web.headers if exporter is not None else {}
    try:
        response = await handler(request)
    except web.HTTPException as error:
        _add(error, configured)
        raise
    _add(response, configured)
    return response


def _add(response: web.StreamResponse, configured: Mapping[str, str]) -> None:
    headers = response.headers
    headers["X-Content-Type-Options"] = "nosniff"
    headers["Referrer-Policy"] = "no-referrer"
    headers["X-Frame-Options"] = "DENY"  # frame-ancestors for browsers without CSP level 2
    headers.setdefault("Content-Security-Policy", NOTHING)
    headers.update(configured)
