"""HOST:PORT, the one parser: web.listen, the --listen and --control flags, the simulator's flags.

It sits at the bottom of the package (it imports nothing of ours) so that the exporter's
configuration and the simulator, which never import each other, read addresses the same way.
"""

from __future__ import annotations

import argparse


def split_listen(listen: str) -> tuple[str, int]:
    """Return (host, port) of "HOST:PORT" or "[v6]:PORT"; ValueError when malformed."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{listen!r} is not HOST:PORT")
    host = host.strip("[]")
    return host or "0.0.0.0", int(port)


def listen_argument(value: str) -> tuple[str, int]:
    """Return (host, port) for an argparse flag; a malformed value is argparse's usage error."""
    try:
        return split_listen(value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
