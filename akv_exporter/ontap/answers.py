"""What ONTAP answers, read strictly: its JSON, its error bodies, Retry-After; ``OntapError``.

The one place that parses ONTAP's errors: every failure leaves the client as an ``OntapError``
whose ``reason`` is one of the reasons of ``akv_exporter_cluster_poll_errors_total``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

INVALID_FIELD = "262197"  # ONTAP's error for a `fields` entry it does not know


class OntapError(Exception):
    """A failed request, classified: ``reason`` names the class, ``str()`` is one line."""

    def __init__(self, reason: str, endpoint: str, detail: str, status: int | None = None):
        super().__init__(f"{endpoint}: {detail}")
        self.reason = reason
        self.endpoint = endpoint
        self.status = status
        self.ontap_code: str | None = None
        self.ontap_message = ""  # ONTAP's own message, with the code; "" without an error body
        self.retry_after: float | None = None  # seconds ONTAP asked us to wait (429/503)


def one_line(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def ontap_error_detail(body: Any) -> tuple[str | None, str]:
    """Return (code, message) from ONTAP's error body ``{"error": {...}}``; (None, "") if none."""
    if not isinstance(body, Mapping) or not isinstance(body.get("error"), Mapping):
        return None, ""
    error = body["error"]
    code = error.get("code")
    code = str(code) if isinstance(code, str | int) and not isinstance(code, bool) else None
    message = one_line(error.get("message") or "") if isinstance(error.get("message"), str) else ""
    target = error.get("target")
    if isinstance(target, str) and target:
        target = one_line(target, 80)
        message = f"{message} (target {target})" if message else f"target {target}"
    return code, message


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """Return Retry-After in seconds; None when absent, an HTTP date or not a finite number."""
    value = headers.get("Retry-After")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None  # an HTTP date: rare for ONTAP; treat as absent
    # "nan" would compare false everywhere and turn the wait into a tight retry loop.
    return max(0.0, seconds) if math.isfinite(seconds) else None


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """Build a JSON object, refusing a key given twice (which of the two would ONTAP mean?)."""
    result = dict(pairs)  # in C; only an object with a repeated key comes out shorter
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _value in pairs:
            if key in seen:
                raise ValueError(f"duplicate key {json.dumps(key)[:80]}")
            seen.add(key)
    return result


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999 parses to inf without ever spelling "Infinity"
        raise ValueError(f"number {text[:40]} is out of range")
    return value


def decode_json(body: bytes) -> Any:
    """Return the value of a strict JSON document (RFC 8259: UTF-8, no NaN, unique keys).

    Raises ValueError naming the first problem, also for nesting too deep to decode.
    """
    text = body.decode("utf-8")  # UnicodeDecodeError is a ValueError
    try:
        return json.loads(
            text,
            object_pairs_hook=_unique_keys,
            parse_constant=_no_constant,
            parse_float=_finite_float,
        )
    except RecursionError:
        raise ValueError("nested too deeply") from None


def json_type(value: Any) -> str:
    return {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number"
    )
