"""Cluster passwords from the sources the configuration allows; never logged, never shown."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import signal
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from akv_exporter.config import ConfigError, SecretSource, parse_yaml, read_text

COMMAND_TIMEOUT = 30.0
# A password is one short line; more than this is a wrong command, never worth holding in memory.
MAX_COMMAND_OUTPUT = 64 * 1024


class SecretError(Exception):
    """A password could not be read; the message names the source, never the secret."""


async def resolve_secret(source: SecretSource, timeout: float = COMMAND_TIMEOUT) -> str:
    """Return the password ``source`` names: inline, a variable, a file or a command's stdout.

    ``timeout`` bounds a credentials_command (the poll passes what is left of its own budget).
    """
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
        return await _run_command(source.value, min(timeout, COMMAND_TIMEOUT))
    raise SecretError(f"unknown secret source {source.kind}")


async def _run_command(command: str, timeout: float) -> str:
    """Return the first line of ``command``'s stdout; its stderr and output never reach a log."""
    process = await asyncio.create_subprocess_shell(
        command,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        start_new_session=True,
    )
    stdout = await _output(process, timeout, "credentials_command")
    lines = stdout.decode("utf-8", "replace").splitlines()
    if not lines or not lines[0]:
        raise SecretError("credentials_command printed no password")
    return lines[0]


async def _output(
    process: asyncio.subprocess.Process, timeout: float, what: str, *, sweep: bool = False
) -> bytes:
    """Return the stdout of ``process``, started in a session of its own; SecretError if it fails.

    Its own process group (session) lets a timeout, a cancelled poll or a shutdown stop it and
    everything it started, never leaving a hung child behind. ``sweep`` also stops what is left
    of that group after a normal exit. The message names ``what``, never the output.
    """
    try:
        async with asyncio.timeout(timeout):
            stdout = await _read_capped(process.stdout, what)
            await process.wait()
    except TimeoutError:
        raise SecretError(
            f"{what} timed out after {timeout:.3g}s; its processes were stopped"
        ) from None
    finally:
        if process.returncode is None or sweep:  # timed out, too talkative, cancelled
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
    if process.returncode != 0:
        raise SecretError(f"{what} exited with status {process.returncode}")
    return stdout


async def _read_capped(stream: asyncio.StreamReader | None, what: str) -> bytes:
    """Return everything ``stream`` gives until its end; SecretError past MAX_COMMAND_OUTPUT."""
    chunks: list[bytes] = []
    size = 0
    while stream is not None and (chunk := await stream.read(1 << 16)):
        size += len(chunk)
        if size > MAX_COMMAND_OUTPUT:
            raise SecretError(
                f"{what} printed more than {MAX_COMMAND_OUTPUT // 1024} KiB;"
                " it must print only the password"
            )
        chunks.append(chunk)
    return b"".join(chunks)


# --- NetApp Harvest's credentials (inventory.harvest) ------------------------------------------
# Harvest documents two runtime sources besides an inline password: a credentials_file shaped
# like harvest.yml, and a credentials_script called with the poller's address (and username)
# whose stdout is YAML (username, password or authToken) or the bare password. Both are read
# here, when a poll needs them, so a rotated password is picked up without a reload.

HARVEST_FILE = "harvest_credentials_file"
HARVEST_SCRIPT = "harvest_credentials_script"


@dataclass(frozen=True, slots=True, repr=False)
class HarvestCredentials(SecretSource):
    """A Harvest poller's credentials_file (``value`` its path) or credentials_script (path)."""

    poller: str = ""  # the poller's name: its entry in a credentials_file
    addr: str = ""  # the poller's addr, the script's first argument
    schedule: float | None = None  # seconds a script's answer is reused; 0: every request
    timeout: float = 10.0  # the script's time limit, then its process group is killed


@dataclass(frozen=True, slots=True)
class Login:
    """What the Authorization header is built from; ``expires`` in loop time, None: never."""

    username: str | None
    password: str | None = None
    token: str | None = None  # Harvest's authToken: sent as a Bearer token
    expires: float | None = None

    def __repr__(self) -> str:
        return f"Login(username={self.username!r}, <hidden>)"

    @property
    def authorization(self) -> str:
        if self.token is not None:
            return f"Bearer {self.token}"
        pair = f"{self.username or ''}:{self.password or ''}".encode()
        return "Basic " + base64.b64encode(pair).decode("ascii")

    def expired(self, now: float) -> bool:
        return self.expires is not None and now >= self.expires


async def resolve_login(
    username: str | None, source: SecretSource, timeout: float = COMMAND_TIMEOUT
) -> Login:
    """Return the login for ``username`` with the secret ``source`` names.

    ``timeout`` bounds a credentials_command (the poll passes what is left of its own budget).
    """
    if isinstance(source, HarvestCredentials):
        if source.kind == HARVEST_FILE:
            return Login(username, await asyncio.to_thread(_harvest_file_password, source))
        return await _harvest_script(username, source, timeout)
    return Login(username, await resolve_secret(source, timeout))


def scalar(mapping: Mapping, key: str) -> str | None:
    """Return ``mapping[key]`` as written (an unquoted 0123 stays "0123"); None if not a scalar.

    Harvest reads these values as strings, so YAML 1.1's numbers and booleans must not leak in.
    """
    value = mapping.get(key)
    if value is None or isinstance(value, Mapping | list):
        return None
    if isinstance(value, str):
        return value
    return getattr(mapping, "written", {}).get(key, str(value))


def read_harvest_credentials(path: Path) -> Any:
    """Return the parsed Harvest credentials_file at ``path``; SecretError naming it if not."""
    try:
        text = read_text(path)
    except ConfigError as error:  # unreadable, too big, not UTF-8: "FILE: reason"
        reason = error.problems[0].removeprefix(f"{path}: ")
        raise SecretError(f"credentials_file {path}: {reason}") from None
    try:
        return parse_yaml(text, path)
    except ConfigError:
        # A YAML problem may quote its line: never repeat a line of a secrets file.
        raise SecretError(f"credentials_file {path} is not valid YAML") from None


def _harvest_file_password(source: HarvestCredentials) -> str:
    """Return the password for ``source.poller`` in a Harvest credentials_file.

    The poller's own entry under Pollers is consulted first, then the file's Defaults.
    """
    document = read_harvest_credentials(Path(source.value))
    password = harvest_file_entry(document, source.poller)[1]
    if not password:
        raise SecretError(f"credentials_file {source.value} has no password for {source.poller}")
    return password


def harvest_file_entry(document: Any, poller: str) -> tuple[str | None, str | None]:
    """Return (username, password) for ``poller`` in a parsed Harvest credentials_file."""
    if not isinstance(document, Mapping):
        return None, None
    pollers = document.get("Pollers")
    own = pollers.get(poller) if isinstance(pollers, Mapping) else None
    for entry in (own, document.get("Defaults")):
        if isinstance(entry, Mapping) and scalar(entry, "password"):
            return scalar(entry, "username"), scalar(entry, "password")
    return None, None


async def _harvest_script(
    username: str | None, source: HarvestCredentials, timeout: float
) -> Login:
    """Run a Harvest credentials_script; return the login its stdout describes.

    It gets its own timeout, or what is left of the poll's budget when that is shorter; as in
    Harvest, whatever it leaves running in its process group is stopped when it exits.
    """
    arguments = [source.addr] + ([username] if username else [])
    what = f"credentials_script {source.value}"
    try:
        process = await asyncio.create_subprocess_exec(
            source.value,
            *arguments,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
            start_new_session=True,
        )
    except OSError as error:
        raise SecretError(f"cannot run {what}: {error.strerror}") from None
    stdout = await _output(process, min(source.timeout, timeout), what, sweep=True)
    login = _script_answer(stdout.decode("utf-8", "replace").strip(), username)
    if login.password is None and login.token is None:
        raise SecretError(f"{what} printed no password")
    if login.token is None and login.username is None:
        raise SecretError(f"{what} printed no username, and harvest.yml gives none")
    if source.schedule is not None:
        login = replace(login, expires=asyncio.get_running_loop().time() + source.schedule)
    return login


def _script_answer(text: str, username: str | None) -> Login:
    """Return the login in a script's stdout: YAML with its keys, else the bare password."""
    try:
        document = parse_yaml(text, None) if text else None
    except ConfigError:
        document = None
    if isinstance(document, Mapping) and {"username", "password", "authToken"} & set(document):
        if scalar(document, "authToken"):
            return Login(username, token=scalar(document, "authToken"))
        return Login(scalar(document, "username") or username, scalar(document, "password") or None)
    return Login(username, text or None)
