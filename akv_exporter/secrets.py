"""Cluster passwords from the four sources the configuration allows; never logged, never shown."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from akv_exporter.config import SecretSource

COMMAND_TIMEOUT = 30.0


class SecretError(Exception):
    """A password could not be read; the message names the source, never the secret."""


async def resolve_secret(source: SecretSource) -> str:
    """Return the password ``source`` names: inline, a variable, a file or a command's stdout."""
    if source.kind == "password":
        return source.value
    if source.kind == "password_env":
        value = os.environ.get(source.value)
        if value is None:
            raise SecretError(f"environment variable {source.value} is not set")
        return value
    if source.kind == "password_file":
        try:
            text = await asyncio.to_thread(Path(source.value).read_text, encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise SecretError(f"cannot read password_file {source.value}: {error}") from None
        return text.rstrip("\r\n")
    if source.kind == "credentials_command":
        return await _run_command(source.value)
    raise SecretError(f"unknown secret source {source.kind}")


async def _run_command(command: str) -> str:
    """Return the first line of ``command``'s stdout; its stderr and output never reach a log."""
    process = await asyncio.create_subprocess_shell(
        command,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        stdout, _ = await asyncio.wait_for(process.communicate(), COMMAND_TIMEOUT)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise SecretError(f"credentials_command timed out after {COMMAND_TIMEOUT:g}s") from None
    if process.returncode != 0:
        raise SecretError(f"credentials_command exited with status {process.returncode}")
    lines = stdout.decode("utf-8", "replace").splitlines()
    if not lines or not lines[0]:
        raise SecretError("credentials_command printed no password")
    return lines[0]
