"""What every HTTP surface shares: the exporter it serves and the exposition response.

The handlers of ``app``, ``probe`` and ``status`` find their exporter here, so ``app`` can import
them without their importing ``app`` back.
"""

from __future__ import annotations

from aiohttp import web

from akv_exporter.exporter import Exporter
from akv_exporter.metrics import OPENMETRICS_CONTENT_TYPE, TEXT_CONTENT_TYPE

EXPORTER_KEY = web.AppKey("exporter", Exporter)


def exporter_of(request: web.Request) -> Exporter:
    """Return the exporter whose surfaces ``request`` reached."""
    return request.app[EXPORTER_KEY]


def exposition_response(body: bytes, *, openmetrics: bool, gzipped: bool = False) -> web.Response:
    """Return ``body`` (the text format or OpenMetrics) with its content type and encoding."""
    response = web.Response(body=body)
    response.headers["Content-Type"] = (
        OPENMETRICS_CONTENT_TYPE if openmetrics else TEXT_CONTENT_TYPE
    )
    if gzipped:
        response.headers["Content-Encoding"] = "gzip"
    return response
