"""What a configuration is once read: the frozen values every other module is given.

The file's format and its errors live beside this (akv_exporter.config.model and .load); these
values are what crosses module boundaries, with defaults merged and durations in seconds.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import bcrypt

from akv_exporter.labels import EXPORTER_LABELS, TARGET_LABELS
from akv_exporter.listen import split_listen

DEFAULT_LISTEN = "0.0.0.0:9877"
DEFAULT_STATE_FILE = "~/.local/state/akv-exporter/state.json"
# Where Python finds no home directory for ``~`` (HOME unset and no passwd entry for the user id:
# a container's arbitrary user id).
NO_HOME = "HOME is unset and the user id has no passwd entry"
DEFAULT_MIN_INTERVAL = 10.0  # poll.min_interval when not configured (or poll.interval if shorter)


def expand_home(text: str) -> Path:
    """Return ``text`` as a path with a leading ``~`` expanded.

    ValueError, naming what to set, where there is no home to expand it to: pathlib raises a bare
    RuntimeError there, which would reach the user as a traceback.
    """
    try:
        return Path(text).expanduser()
    except RuntimeError:
        raise ValueError(
            f"{text!r} starts with ~, but this user has no home directory ({NO_HOME}): "
            "set HOME, or write the path in full"
        ) from None


# A configured label must not shadow one the exporter or Prometheus sets.
RESERVED_LABELS = EXPORTER_LABELS | TARGET_LABELS
LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
# The variants and costs the bcrypt library verifies; anything else fails on every request.
BCRYPT_HASH = re.compile(r"^\$2[aby]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}$")


class Problem(str):
    """One problem line that remembers which cluster entry it is about.

    ``clusters`` holds that entry's name and address as written (empty: the file, a section or
    an entry whose name and address are themselves wrong), so that `check --cluster X` is
    decided by X's entry alone, not by another team's unset variable.
    """

    clusters: frozenset[str]

    def __new__(cls, line: str, clusters: frozenset[str] = frozenset()) -> Problem:
        problem = super().__new__(cls, line)
        problem.clusters = clusters
        return problem


class ConfigError(Exception):
    """The configuration file has problems; ``problems`` holds one line for each.

    ``partial``: the configuration without the refused cluster entries, where the rest of the
    fleet could be read (None otherwise); only `check --cluster` may use it (about_only).
    """

    def __init__(self, problems: list[str], partial: Config | None = None):
        super().__init__("\n".join(problems))
        self.problems = problems
        self.partial = partial

    def beside_cluster_entries(self) -> Config | None:
        """Return the partial configuration when every problem is in a cluster entry, else None.

        Such a file still says where and how the exporter serves (the health check's question).
        """
        if self.partial is None or not all(getattr(p, "clusters", None) for p in self.problems):
            return None
        return self.partial

    def about_only(self, names: Sequence[str]) -> tuple[Config | None, list[str]]:
        """Return the configuration to check ``names`` with, and the problems that concern them.

        The configuration is the partial one when every problem is about another cluster's
        entry and every name is one of the partial configuration's clusters; else None.
        """
        asked = set(names)
        concern = [
            p for p in self.problems if not getattr(p, "clusters", None) or p.clusters & asked
        ]
        if concern or self.partial is None or not asked:
            return None, concern or self.problems
        clusters = self.partial.clusters
        known = {c.name for c in clusters} | {c.address for c in clusters}
        return (self.partial, []) if asked <= known else (None, self.problems)


@dataclass(frozen=True, slots=True)
class SecretSource:
    """Where a cluster's password comes from. Never holds the password of a file or command."""

    kind: str  # "password", "password_env", "password_file", "credentials_command"
    value: str  # the inline password, or the variable name, path or command

    def __repr__(self) -> str:  # the inline password must never reach a log through repr()
        shown = "<hidden>" if self.kind == "password" else self.value
        return f"SecretSource({self.kind}={shown})"


@dataclass(frozen=True, slots=True)
class TlsConfig:
    ca_file: Path | None = None
    verify: bool = True


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    """One ONTAP cluster to poll, with defaults already merged in."""

    name: str | None  # None: learn it from GET /api/cluster
    address: str  # as written in the file
    url: str  # base URL, e.g. https://10.0.0.10:443
    username: str | None
    secret: SecretSource | None
    client_cert_file: Path | None
    client_key_file: Path | None
    tls: TlsConfig
    labels: tuple[tuple[str, str], ...]
    # Where the cluster is defined ("FILE:LINE", with the Harvest poller's name), for messages
    # and `check-config --list`. Not compared: a cluster whose line moved is the same cluster.
    origin: str = field(default="", compare=False)

    @property
    def key(self) -> str:
        """Return the identity the poller tracks the cluster by: its name, else its address."""
        return self.name or self.address


@dataclass(frozen=True, slots=True)
class WebConfig:
    """How the exporter serves: from the `web` section, or --web.config.file and `web.listen`."""

    listen: str = DEFAULT_LISTEN
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    basic_auth_users: Mapping[str, str] = field(default_factory=dict)
    # Only from --web.config.file (the exporter-toolkit's format): client certificates, TLS
    # versions, extra response headers.
    client_auth_type: str = "NoClientCert"  # or VerifyClientCertIfGiven, RequireAndVerifyClientCert
    client_ca_file: Path | None = None
    min_version: str | None = None  # "TLS12"...; None: Python's default
    max_version: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    web_config_file: Path | None = None  # where TLS and authentication come from, if not `web`

    @property
    def host_port(self) -> tuple[str, int]:
        return split_listen(self.listen)

    def problem(self, key: str, reason: str, config_path: Path | None) -> str:
        """Return the line for a problem with a TLS key (``tls_cert_file``), where it was set."""
        if self.web_config_file is None:
            return f"{config_path or '<config>'}: web.{key}: {reason}"
        file_key = WEB_FILE_KEYS.get(key, key)
        return f"{self.web_config_file}: tls_server_config.{file_key}: {reason}"


# The `web` section's TLS keys as the exporter-toolkit's tls_server_config names them.
WEB_FILE_KEYS = {"tls_cert_file": "cert_file", "tls_key_file": "key_file"}


@dataclass(frozen=True, slots=True)
class PollConfig:
    interval: float = 60.0
    timeout: float = 30.0
    concurrency: int = 64
    stale_after: float = 180.0
    max_backoff: float = 300.0
    history: int = 20  # poll outcomes kept per cluster for the status page
    max_records: int = 1000  # page size asked of ONTAP
    max_response_bytes: int = 32 * 1024 * 1024
    connections_per_cluster: int = 2
    # The blast radius changes slowly and costs ONTAP more: encrypted volumes and the
    # key-manager policy every inventory_interval, key-manager EMS events every events_interval.
    inventory_interval: float = 300.0
    events_interval: float = 60.0
    # No cluster is polled more often than this, by /probe or the schedule; None: the default.
    min_interval: float | None = None

    @property
    def poll_floor(self) -> float:
        """Return poll.min_interval: as configured, else 10s or poll.interval when shorter."""
        if self.min_interval is not None:
            return self.min_interval
        return min(DEFAULT_MIN_INTERVAL, self.interval)


@dataclass(frozen=True, slots=True)
class InventoryConfig:
    """Further sources of clusters, read by akv_exporter.inventory and watched for changes."""

    harvest: Path | None = None  # NetApp Harvest's harvest.yml
    harvest_pollers: tuple[str, ...] = ()  # name patterns (fnmatch); empty: every ONTAP poller
    clusters_dir: Path | None = None  # every *.yml there: a list of clusters
    watch_interval: float = 30.0

    @property
    def enabled(self) -> bool:
        return self.harvest is not None or self.clusters_dir is not None


@dataclass(frozen=True, slots=True)
class Config:
    path: Path | None
    web: WebConfig
    poll: PollConfig
    clusters: tuple[ClusterConfig, ...]
    state_file: Path
    inventory: InventoryConfig = field(default_factory=InventoryConfig)
    # `defaults` as read, for the clusters of inventory.clusters_dir (same keys, same merge).
    cluster_defaults: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)
    # The inventory files the clusters were read from, for the watcher.
    inventory_files: tuple[Path, ...] = field(default=(), compare=False)


def parse_duration(value: Any) -> float:
    """Return seconds for "500ms", "30s", "5m", "1h30m", "1d" or a bare number of seconds."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip()
        if not text:
            raise ValueError("empty duration")
        position, seconds = 0, 0.0
        for match in _DURATION_PART.finditer(text):
            if match.start() != position:
                break
            seconds += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
            position = match.end()
        if position != len(text):
            try:
                seconds = float(text)
            except ValueError:
                raise ValueError(f"{value!r} is not a duration (use e.g. 30s, 5m, 1h30m)") from None
    else:
        raise ValueError(f"{value!r} is not a duration")
    if seconds < 0:
        raise ValueError(f"{value!r} is negative")
    return seconds


def cluster_url(address: str) -> str:
    """Return the base URL for an address: host, host:port, [v6]:port or an http(s) URL."""
    text = address.strip()
    if "://" not in text:
        text = "https://" + text
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"scheme {parts.scheme!r} is not http or https")
    if "@" in parts.netloc:  # before anything that would quote the address back
        raise ValueError(
            "credentials do not belong in the address (it is not repeated here);"
            " use username and password_*"
        )
    if not parts.hostname:
        raise ValueError(f"{address!r} has no host")
    if parts.path not in ("", "/") or parts.query:
        raise ValueError(f"{address!r} has a path; give only the host and port")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"{address!r} has an invalid port") from None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    port = port or (443 if parts.scheme == "https" else 80)
    return f"{parts.scheme}://{host}:{port}"


def label_name_problem(name: Any) -> str | None:
    """Return why ``name`` cannot be a configured label, or None when it can."""
    if not isinstance(name, str) or not LABEL_NAME.match(name) or name.startswith("__"):
        return "is not a valid Prometheus label name"
    if name in RESERVED_LABELS:
        return "is a label the exporter sets itself; choose another name"
    return None


def usable_bcrypt_hash(digest: str) -> bool:
    """Return whether bcrypt can verify passwords against ``digest`` (format, cost and salt)."""
    if not BCRYPT_HASH.match(digest):
        return False
    try:  # the salt's last character must be canonical; checked at cost 4, so it costs nothing
        bcrypt.hashpw(b"", f"$2b$04${digest[7:29]}".encode())
    except ValueError:
        return False
    return True
