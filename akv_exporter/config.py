"""The configuration file: the one place that knows its YAML format, its defaults and its errors.

Every problem is reported as one line naming the file, the line, the key and the reason, with
the nearest valid key suggested for a typo. Loading collects all problems before failing, so a
user fixes a file in one pass.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import bcrypt
import yaml

from akv_exporter.certificates import CertificateProblem, server_context
from akv_exporter.labels import EXPORTER_LABELS, TARGET_LABELS
from akv_exporter.listen import split_listen

DEFAULT_LISTEN = "0.0.0.0:9877"
DEFAULT_STATE_FILE = "~/.local/state/akv-exporter/state.json"
# Thousands of clusters fit in well under 1 MiB; parsing a far larger file costs seconds of CPU.
MAX_CONFIG_BYTES = 8 * 1024 * 1024
DEFAULT_MIN_INTERVAL = 10.0  # spec section 7: poll.min_interval

# A configured label must not shadow one the exporter or Prometheus sets.
RESERVED_LABELS = EXPORTER_LABELS | TARGET_LABELS
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_ENV_REFERENCE = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
# The variants and costs the bcrypt library verifies; anything else fails on every request.
_BCRYPT_HASH = re.compile(r"^\$2[aby]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}$")


class ConfigError(Exception):
    """The configuration file has problems; ``problems`` holds one line for each."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


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
    listen: str = DEFAULT_LISTEN
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    basic_auth_users: Mapping[str, str] = field(default_factory=dict)

    @property
    def host_port(self) -> tuple[str, int]:
        return split_listen(self.listen)


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


# --- YAML with line numbers -------------------------------------------------------------------


class _Lines(dict):
    """A mapping from YAML that remembers the line of each key (1-based) and its own line."""

    line: int = 0
    key_lines: dict[str, int]
    # Unquoted scalars YAML 1.1 turned into something else (01234567 -> 342391, 1.50 -> 1.5,
    # yes -> True), as written: a key that takes a string takes exactly this.
    written: dict[str, str]


class _LineLoader(yaml.SafeLoader):
    pass


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> _Lines:
    loader.flatten_mapping(node)
    mapping = _Lines()
    mapping.line = node.start_mark.line + 1
    mapping.key_lines = {}
    mapping.written = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if isinstance(key, str) and key in mapping:
            raise yaml.MarkedYAMLError(
                problem=f"duplicate key {key!r}", problem_mark=key_node.start_mark
            )
        value = mapping[key] = loader.construct_object(value_node, deep=True)
        mapping.key_lines[str(key)] = key_node.start_mark.line + 1
        if isinstance(value_node, yaml.ScalarNode) and not isinstance(value, str | None):
            mapping.written[str(key)] = value_node.value
    return mapping


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


# --- validation --------------------------------------------------------------------------------


class _Problems:
    """Collects one-line problems, each naming the file, line and key."""

    def __init__(self, path: Path | None):
        self.where = str(path) if path else "<config>"
        self.lines: list[str] = []

    def add(self, line: int, key: str, reason: str) -> None:
        self.lines.append(f"{self.where}:{line}: {key}: {reason}")


class _Section:
    """A mapping being read, with its dotted key path, for problems that name where they are."""

    def __init__(self, data: Any, path: str, line: int, problems: _Problems, known: tuple | None):
        self.path = path
        self.problems = problems
        self.line = getattr(data, "line", line)
        self.data: Mapping = data if isinstance(data, Mapping) else {}
        if data is not None and not isinstance(data, Mapping):
            problems.add(line, path or "(top level)", f"must be a mapping, not {_kind(data)}")
        for key in self.data if known is not None else ():
            if key not in known:
                hint = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
                suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
                valid = ", ".join(known)
                self.fail(key, f"unknown key{suggestion}; valid keys here: {valid}")

    def key_path(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def line_of(self, key: str) -> int:
        return getattr(self.data, "key_lines", {}).get(key, self.line)

    def fail(self, key: str, reason: str) -> None:
        self.problems.add(self.line_of(key), self.key_path(key), reason)

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def text(self, key: str, default: str | None = None) -> str | None:
        """Return the string at ``key`` exactly as written (an unquoted 010 stays "010")."""
        value = self.data.get(key)
        if value is None:
            return default
        if not isinstance(value, str):
            written = getattr(self.data, "written", {}).get(key)
            if written is None:  # a mapping or a list
                self.fail(key, f"must be a string, not {_kind(value)}")
                return default
            value = written
        return _expand_env(value, self, key)

    def path_value(self, key: str) -> Path | None:
        value = self.text(key)
        return Path(value).expanduser() if value else None

    def existing_file(self, key: str) -> Path | None:
        path = self.path_value(key)
        if path is not None and not path.is_file():
            self.fail(key, f"file {str(path)!r} does not exist or is not a file")
        return path

    def boolean(self, key: str, default: bool) -> bool:
        value = self.data.get(key, default)
        if not isinstance(value, bool):
            self.fail(key, f"must be true or false, not {value!r}")
            return default
        return value

    def duration(self, key: str, default: float, minimum: float = 0.0) -> float:
        if key not in self.data:
            return default
        try:
            seconds = parse_duration(self.data[key])
        except ValueError as error:
            self.fail(key, str(error))
            return default
        if seconds < minimum:
            self.fail(key, f"must be at least {minimum:g}s")
            return default
        return seconds

    def integer(self, key: str, default: int, minimum: int, maximum: int) -> int:
        value = self.data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(key, f"must be a whole number, not {value!r}")
            return default
        if not minimum <= value <= maximum:
            self.fail(key, f"must be between {minimum} and {maximum}, not {value}")
            return default
        return value

    def section(self, key: str, known: tuple | None) -> _Section:
        """Return the sub-mapping at ``key``; ``known`` None means any key is valid there."""
        return _Section(
            self.data.get(key), self.key_path(key), self.line_of(key), self.problems, known
        )


def _kind(value: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value) if not isinstance(value, Mapping) else dict, type(value).__name__
    )


def _expand_env(value: str, section: _Section, key: str) -> str:
    """Return ``value`` with ${VAR} taken from the environment; $$ is a literal $."""

    def replace(match: re.Match) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        if name not in os.environ:
            section.fail(key, f"environment variable {name} is not set")
            return ""
        return os.environ[name]

    return _ENV_REFERENCE.sub(replace, value)


_TOP_KEYS = ("web", "poll", "defaults", "clusters", "inventory", "state_file")
_INVENTORY_KEYS = ("harvest", "harvest_pollers", "clusters_dir", "watch_interval")
_WEB_KEYS = ("listen", "tls_cert_file", "tls_key_file", "basic_auth_users")
_POLL_KEYS = (
    "interval",
    "timeout",
    "concurrency",
    "stale_after",
    "max_backoff",
    "history",
    "max_records",
    "max_response_bytes",
    "connections_per_cluster",
    "inventory_interval",
    "events_interval",
    "min_interval",
)
_SECRET_KEYS = ("password", "password_env", "password_file", "credentials_command")
_CLUSTER_KEYS = (
    "username",
    *_SECRET_KEYS,
    "client_cert_file",
    "client_key_file",
    "tls",
    "labels",
)
_TLS_KEYS = ("ca_file", "verify")


def _read_web(section: _Section) -> WebConfig:
    listen = section.text("listen", DEFAULT_LISTEN) or DEFAULT_LISTEN
    try:
        split_listen(listen)
    except ValueError as error:
        section.fail("listen", str(error))
        listen = DEFAULT_LISTEN
    cert = section.existing_file("tls_cert_file")
    key = section.existing_file("tls_key_file")
    if (cert is None) != (key is None):
        section.fail("tls_cert_file", "tls_cert_file and tls_key_file go together")
    elif cert is not None and key is not None and cert.is_file() and key.is_file():
        try:  # what start-up would find, found now: a mismatched, encrypted or non-PEM pair
            server_context(cert, key)
        except CertificateProblem as problem:
            section.fail(problem.key, str(problem))
    users_section = section.section("basic_auth_users", None)
    users: dict[str, str] = {}
    for user, digest in users_section.data.items():
        if not isinstance(digest, str) or not _usable_bcrypt_hash(digest):
            users_section.fail(
                str(user),
                "must be a bcrypt hash that bcrypt can verify: $2y$, $2b$ or $2a$, a cost"
                " from 04 to 31, then 53 characters (htpasswd -nbBC 10 USER PASSWORD makes one)",
            )
        else:
            users[str(user)] = digest
    return WebConfig(listen=listen, tls_cert_file=cert, tls_key_file=key, basic_auth_users=users)


def _usable_bcrypt_hash(digest: str) -> bool:
    """Return whether bcrypt can verify passwords against ``digest`` (format, cost and salt)."""
    if not _BCRYPT_HASH.match(digest):
        return False
    try:  # the salt's last character must be canonical; checked at cost 4, so it costs nothing
        bcrypt.hashpw(b"", f"$2b$04${digest[7:29]}".encode())
    except ValueError:
        return False
    return True


def _read_poll(section: _Section) -> PollConfig:
    defaults = PollConfig()
    interval = section.duration("interval", defaults.interval, minimum=1.0)
    timeout = section.duration("timeout", defaults.timeout, minimum=0.5)
    if timeout > interval and "timeout" in section.data:
        section.fail("timeout", f"must not exceed poll.interval ({interval:g}s)")
    stale_after = section.duration("stale_after", max(defaults.stale_after, interval * 2))
    if stale_after < interval and "stale_after" in section.data:
        section.fail("stale_after", f"must be at least poll.interval ({interval:g}s)")
    min_interval = None
    if "min_interval" in section.data:
        min_interval = section.duration("min_interval", DEFAULT_MIN_INTERVAL, minimum=0.0)
        if min_interval > interval:
            section.fail("min_interval", f"must not exceed poll.interval ({interval:g}s)")
    return PollConfig(
        interval=interval,
        timeout=min(timeout, interval),
        concurrency=section.integer("concurrency", defaults.concurrency, 1, 10_000),
        stale_after=stale_after,
        max_backoff=section.duration("max_backoff", max(defaults.max_backoff, interval)),
        history=section.integer("history", defaults.history, 1, 1000),
        max_records=section.integer("max_records", defaults.max_records, 1, 100_000),
        max_response_bytes=section.integer(
            "max_response_bytes", defaults.max_response_bytes, 1024, 1 << 31
        ),
        connections_per_cluster=section.integer(
            "connections_per_cluster", defaults.connections_per_cluster, 1, 32
        ),
        inventory_interval=section.duration(
            "inventory_interval", defaults.inventory_interval, minimum=1.0
        ),
        events_interval=section.duration("events_interval", defaults.events_interval, minimum=1.0),
        min_interval=min_interval,
    )


def label_name_problem(name: Any) -> str | None:
    """Return why ``name`` cannot be a configured label, or None when it can."""
    if not isinstance(name, str) or not _LABEL_NAME.match(name) or name.startswith("__"):
        return "is not a valid Prometheus label name"
    if name in RESERVED_LABELS:
        return "is a label the exporter sets itself; choose another name"
    return None


def _read_labels(section: _Section) -> dict[str, str]:
    labels: dict[str, str] = {}
    for name, value in section.data.items():
        if problem := label_name_problem(name):
            section.fail(str(name), problem)
        elif isinstance(value, Mapping | list) or value is None:
            section.fail(name, "label values must be strings")
        else:
            labels[name] = section.text(name) or ""
    return labels


def _read_cluster_fields(section: _Section) -> dict[str, Any]:
    """Return the cluster-level settings present in ``section`` (a cluster or `defaults`)."""
    fields: dict[str, Any] = {}
    if "username" in section.data:
        fields["username"] = section.text("username")
    secrets = [key for key in _SECRET_KEYS if key in section.data]
    if len(secrets) > 1:
        section.fail(secrets[1], f"give only one of {', '.join(_SECRET_KEYS)}")
    if secrets:
        kind = secrets[0]
        value = section.text(kind) or ""
        if not value:
            section.fail(kind, "is empty")
        if kind == "password_env" and value not in os.environ:
            section.fail(kind, f"environment variable {value} is not set")
        if kind == "password_file":
            path = Path(value).expanduser()
            value = str(path)
            if not path.is_file():
                section.fail(kind, f"file {value!r} does not exist or is not a file")
        if kind == "credentials_command" and not value.strip():
            section.fail(kind, "must be a command")
        fields["secret"] = SecretSource(kind, value)
    for key in ("client_cert_file", "client_key_file"):
        if key in section.data:
            fields[key] = section.existing_file(key)
    if "tls" in section.data:
        tls = section.section("tls", _TLS_KEYS)
        if "ca_file" in tls.data:
            fields["ca_file"] = tls.existing_file("ca_file")
        if "verify" in tls.data:
            fields["verify"] = tls.boolean("verify", True)
    if "labels" in section.data:
        fields["labels"] = _read_labels(section.section("labels", None))
    return fields


def _read_clusters(
    top: _Section, defaults: dict[str, Any], required: bool = True
) -> tuple[ClusterConfig, ...]:
    """Return the clusters listed at ``clusters``; ``required`` False allows none at all."""
    raw = top.get("clusters")
    if raw is None:
        if required:
            top.fail("clusters", "is missing; list at least one cluster")
        return ()
    if not isinstance(raw, list) or (required and not raw):
        top.fail("clusters", "must be a non-empty list of clusters")
        return ()
    clusters: list[ClusterConfig] = []
    seen: dict[str, str] = {}
    base_line = top.line_of("clusters")
    for index, item in enumerate(raw):
        path = f"clusters[{index}]"
        line = getattr(item, "line", base_line)
        section = _Section(item, path, line, top.problems, ("name", "address", *_CLUSTER_KEYS))
        if not isinstance(item, Mapping):
            continue
        name = section.text("name")
        address = section.text("address")
        if not address:
            section.fail("address", "is missing: give a host, host:port or https:// URL")
            continue
        try:
            url = cluster_url(address)
        except ValueError as error:
            section.fail("address", str(error))
            continue
        origin = f"{top.problems.where}:{line}"
        merged = {**defaults, **_read_cluster_fields(section)}
        merged_labels = {**defaults.get("labels", {}), **merged.get("labels", {})}
        cert, key = merged.get("client_cert_file"), merged.get("client_key_file")
        if (cert is None) != (key is None):
            section.fail("client_cert_file", "client_cert_file and client_key_file go together")
        if cert is None and merged.get("username") is None:
            section.fail("username", "is missing (here or in defaults), and no client certificate")
        if cert is None and merged.get("secret") is None:
            section.fail("password", f"no secret: give one of {', '.join(_SECRET_KEYS)}")
        for identity, what in ((name, "name"), (url, "address")):
            if identity and identity in seen:
                section.fail(what, f"{identity!r} is already used by {seen[identity]}")
            elif identity:
                seen[identity] = f"{path} (line {line})"
        clusters.append(
            ClusterConfig(
                name=name or None,
                address=address,
                url=url,
                username=merged.get("username"),
                secret=merged.get("secret"),
                client_cert_file=cert,
                client_key_file=key,
                tls=TlsConfig(ca_file=merged.get("ca_file"), verify=merged.get("verify", True)),
                labels=tuple(sorted(merged_labels.items())),
                origin=origin,
            )
        )
    return tuple(clusters)


def _read_inventory(section: _Section) -> InventoryConfig:
    harvest = section.existing_file("harvest")
    clusters_dir = section.path_value("clusters_dir")
    if clusters_dir is not None and not clusters_dir.is_dir():
        section.fail("clusters_dir", f"directory {str(clusters_dir)!r} does not exist")
    patterns = section.get("harvest_pollers", [])
    if isinstance(patterns, str):
        patterns = [patterns]
    if not isinstance(patterns, list) or not all(isinstance(p, str) and p for p in patterns):
        section.fail("harvest_pollers", "must be a poller name pattern or a list of them")
        patterns = []
    if patterns and harvest is None:
        section.fail("harvest_pollers", "needs inventory.harvest")
    return InventoryConfig(
        harvest=harvest,
        harvest_pollers=tuple(patterns),
        clusters_dir=clusters_dir,
        watch_interval=section.duration("watch_interval", 30.0, minimum=1.0),
    )


# Keys whose value is, or may carry, a secret (a command line can, an address with user:password
# can). YAML's messages quote what they could not read (a tag, an alias), so a problem on such
# a line is described without them.
_SENSITIVE_KEY = re.compile(
    r"(?:^|[\s{,-])(password|password_env|password_file|credentials_command|address)\s*:"
)


def _yaml_problem(error: yaml.MarkedYAMLError, text: str, problems: _Problems) -> str:
    """Return the one line for a YAML syntax problem, never quoting a secret's value."""
    lines = text.splitlines()
    for mark in (error.problem_mark, error.context_mark):
        if mark is not None and mark.line < len(lines):
            # The key nearest before the problem: `{address: h, password: !x}` blames password.
            keys = [m for m in _SENSITIVE_KEY.finditer(lines[mark.line]) if m.start() < mark.column]
            if keys:
                key = keys[-1].group(1)
                return (
                    f"{problems.where}:{mark.line + 1}: {key}: is not valid YAML (the value is"
                    f" not repeated here); quote it: {key}: '...'"
                )
    line = error.problem_mark.line + 1 if error.problem_mark else 0
    return f"{problems.where}:{line}: (yaml): {' '.join(str(error.problem or error).split())}"


def parse_yaml(text: str, path: Path | None) -> Any:
    """Return the YAML document in ``text`` (mappings remember lines); ConfigError if malformed."""
    problems = _Problems(path)
    try:
        return yaml.load(text, Loader=_LineLoader)
    except yaml.MarkedYAMLError as error:
        problems.lines.append(_yaml_problem(error, text, problems))
    except yaml.YAMLError as error:
        problems.add(0, "(yaml)", str(error).replace("\n", " "))
    raise ConfigError(problems.lines)


def parse_cluster_list(
    text: str, path: Path, defaults: Mapping[str, Any]
) -> tuple[ClusterConfig, ...]:
    """Return the clusters of a file of inventory.clusters_dir: a list, same keys as `clusters`.

    The file may be empty or an empty list (a team with no clusters left). ``defaults`` is the
    main file's `defaults`, merged as for its own clusters.
    """
    problems = _Problems(path)
    data = parse_yaml(text, path)
    top_data = _Lines({"clusters": data if data is not None else []})
    top_data.line, top_data.key_lines = 1, {"clusters": 1}
    clusters = _read_clusters(_Section(top_data, "", 1, problems, None), dict(defaults), False)
    if problems.lines:
        raise ConfigError(problems.lines)
    return clusters


def parse_config(text: str, path: Path | None = None) -> Config:
    """Return the validated configuration in ``text``; ConfigError lists every problem."""
    data = parse_yaml(text, path)
    problems = _Problems(path)
    if data is None:
        data = _Lines()
    top = _Section(data, "", 1, problems, _TOP_KEYS)
    web = _read_web(top.section("web", _WEB_KEYS))
    poll = _read_poll(top.section("poll", _POLL_KEYS))
    defaults = _read_cluster_fields(top.section("defaults", _CLUSTER_KEYS))
    inventory = _read_inventory(top.section("inventory", _INVENTORY_KEYS))
    # With an inventory, `clusters` may be absent: the clusters can all come from there.
    clusters = _read_clusters(top, defaults, required=not inventory.enabled)
    state_file = (
        top.path_value("state_file")
        or Path(os.environ.get("AKV_EXPORTER_STATE_FILE", DEFAULT_STATE_FILE)).expanduser()
    )
    if problems.lines:
        raise ConfigError(problems.lines)
    return Config(
        path=path,
        web=web,
        poll=poll,
        clusters=clusters,
        state_file=state_file,
        inventory=inventory,
        cluster_defaults=defaults,
    )


def read_text(path: Path) -> str:
    """Return the UTF-8 text of ``path``; ConfigError naming the file when it cannot.

    A file over MAX_CONFIG_BYTES is refused unread: parsing it would cost seconds of CPU.
    """
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_CONFIG_BYTES + 1)
    except OSError as error:
        raise ConfigError([f"{path}:0: (file): cannot read: {error.strerror or error}"]) from None
    if len(data) > MAX_CONFIG_BYTES:
        limit = MAX_CONFIG_BYTES // (1024 * 1024)
        raise ConfigError([f"{path}:0: (file): is larger than {limit} MiB; is it the right file?"])
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError([f"{path}:0: (file): is not UTF-8 text"]) from None
    return text


def load_config(path: str | Path) -> Config:
    """Return the validated configuration in the file at ``path`` alone; ConfigError on problems.

    akv_exporter.inventory.load_inventory adds the clusters of `inventory`'s sources.
    """
    path = Path(path)
    return parse_config(read_text(path), path)
