"""Loopback plumbing: free ports, plain HTTP GETs, and waiting for a condition."""

from __future__ import annotations

import contextlib
import json
import socket
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

T = TypeVar("T")


STARTUP_SECONDS = 60.0


def free_port() -> int:
    """Return a port free on 127.0.0.1 now (for programs that cannot report a port 0 bind)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def consecutive_free_ports(count: int, multiple_of: int = 1) -> int:
    """Return the first of ``count`` consecutive ports free on 127.0.0.1 now, a multiple of
    ``multiple_of``."""
    for _ in range(200):
        first = free_port() // multiple_of * multiple_of
        if first + count > 65536:
            continue
        with contextlib.ExitStack() as held:
            try:
                for port in range(first, first + count):
                    held.enter_context(socket.socket()).bind(("127.0.0.1", port))
            except OSError:
                continue
            return first
    pytest.fail(f"no {count} consecutive free ports on 127.0.0.1")


def fetch(url: str, timeout: float = 2) -> bytes:
    """Return the body of a GET of ``url``."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read()


def http_json(url: str, method: str = "GET", body: Any = None, timeout: float = 10) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        text = response.read()
    return json.loads(text) if text else None


def wait_until(condition: Callable[[], T], what: str, timeout: float, log: Path | None = None) -> T:
    """Return the first truthy value of ``condition()``; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = condition()
        except (OSError, ValueError, KeyError):
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            tail = log.read_text()[-3000:] if log and log.exists() else ""
            pytest.fail(f"timed out after {timeout:g}s waiting for {what}\n{tail}")
        time.sleep(0.2)
