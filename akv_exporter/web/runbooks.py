"""GET /docs/runbooks: docs/runbooks.md as one page, where every alert's runbook_url points.

The page is generated with the rule files (`make rules`, config/prometheus/generate.py) into
web/static/runbooks.html, so the installed exporter carries the runbooks of its own alerts and
a pager's link opens them from the exporter Prometheus scrapes.
"""

from __future__ import annotations

from importlib import resources

from aiohttp import web

from akv_exporter.web.security import PAGE_POLICY

_PAGE = resources.files("akv_exporter.web").joinpath("static/runbooks.html").read_bytes()


async def runbooks(_: web.Request) -> web.Response:
    """Return the runbooks page; its sections' ids are the alerts' anchors."""
    response = web.Response(body=_PAGE, content_type="text/html", charset="utf-8")
    response.headers["Content-Security-Policy"] = PAGE_POLICY
    response.headers["Cache-Control"] = "public, max-age=3600"
    response.enable_compression()
    return response


def add_routes(app: web.Application) -> None:
    app.router.add_get("/docs/runbooks", runbooks)
