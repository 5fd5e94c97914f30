"""``akv-exporter healthcheck``: ask a running exporter's ``/-/healthy``, where and how it serves.

The container image's HEALTHCHECK. Where the exporter listens and whether it speaks HTTPS come
from its configuration, read the way ``run`` reads it: from the flags given here or, with none,
from the command line of the ``akv-exporter run`` that is the container's first process
(``/proc/1/cmdline``). So another port or web TLS, set in the file or by flags on ``docker run``,
needs no change to the health check.
"""

from __future__ import annotations

import argparse
import http.client
import socket
import ssl
from pathlib import Path

# The container's first process: the image's ENTRYPOINT, in exec form, is `akv-exporter`.
FIRST_PROCESS = Path("/proc/1/cmdline")
PROGRAM = "akv-exporter"


class HealthcheckError(Exception):
    """Why the health check could not even ask (one line)."""


def run_arguments(cmdline: bytes) -> list[str]:
    """Return the arguments after ``akv-exporter`` in a NUL-separated command line.

    A console script runs as ``python /usr/local/bin/akv-exporter run ...``; ``python -m
    akv_exporter.cli run ...`` is the same program.
    """
    argv = [part.decode(errors="replace") for part in cmdline.split(b"\0") if part]
    for index, part in enumerate(argv):
        if Path(part).name == PROGRAM:
            return argv[index + 1 :]
        if part == "-m" and argv[index + 1 : index + 2] == ["akv_exporter.cli"]:
            return argv[index + 2 :]
    raise HealthcheckError(f"not an {PROGRAM} command line: {' '.join(argv) or '(empty)'}")


def local_host(host: str) -> str:
    """Return where to reach a server bound to ``host`` from the same machine."""
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "::1"
    return host


def ask(
    host: str, port: int, tls: bool, timeout: float, *, client_certificate_required: bool = False
) -> str:
    """GET /-/healthy; return its URL when the answer is 200, else raise HealthcheckError.

    With client certificates required (--web.config.file's RequireAndVerifyClientCert) no
    request gets past the TLS handshake without one, and the health check has none: the
    exporter's side of the handshake is the answer then, since the event loop that serves
    /-/healthy also does the handshakes.
    """
    host = local_host(host)
    shown = f"[{host}]" if ":" in host else host
    url = f"{'https' if tls else 'http'}://{shown}:{port}/-/healthy"
    context = None
    if tls:
        # The exporter's own certificate, issued for the names its scrapers use rather than for
        # this loopback address: the check is whether it answers, not who it is.
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if context is not None and client_certificate_required:
        _handshake(host, port, context, timeout, url)
        return f"{url} (client certificates required: the TLS handshake answered)"
    if context is not None:
        connection: http.client.HTTPConnection = http.client.HTTPSConnection(
            host, port, timeout=timeout, context=context
        )
    else:
        connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request("GET", "/-/healthy")
        status = connection.getresponse().status
    except (OSError, http.client.HTTPException) as error:
        raise HealthcheckError(f"{url}: {error}") from None
    finally:
        connection.close()
    if status != 200:
        raise HealthcheckError(f"{url}: HTTP {status}")
    return url


def _handshake(host: str, port: int, context: ssl.SSLContext, timeout: float, url: str) -> None:
    """Complete a TLS handshake, or have it refused by the server (an alert); else raise."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw:
            try:
                with context.wrap_socket(raw):
                    pass  # TLS 1.3: the server's Finished arrived
            except ssl.SSLError as error:
                if "ALERT" not in (error.reason or ""):  # TLS 1.2: the server's refusal
                    raise
    except OSError as error:
        raise HealthcheckError(f"{url}: {error}") from None


def first_process_arguments(parser: argparse.ArgumentParser) -> argparse.Namespace:
    """Return the parsed flags of the ``akv-exporter run`` this container runs first."""
    try:
        cmdline = FIRST_PROCESS.read_bytes()
    except OSError as error:
        raise HealthcheckError(f"cannot read {FIRST_PROCESS}: {error.strerror}") from None
    arguments = run_arguments(cmdline)
    if not arguments or arguments[0] != "run":
        raise HealthcheckError(
            f"the first process is not `{PROGRAM} run` ({' '.join(arguments)}): pass --config"
            " and the flags it was started with"
        )
    try:
        return parser.parse_args(arguments)
    except SystemExit:  # argparse has printed its line
        raise HealthcheckError("cannot read the first process' flags") from None
