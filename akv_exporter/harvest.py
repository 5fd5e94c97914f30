"""NetApp Harvest's harvest.yml as a source of clusters (``inventory.harvest``).

What is read, following Harvest's configuration reference and its page on credentials:

- ``Pollers`` maps a poller's name to its settings; ``Defaults`` answers for any key a poller
  does not set. ``Poller_files`` (paths or globs, sorted) add the ``Pollers`` of further files.
- A poller is an ONTAP poller when one of its collectors is one of Harvest's ONTAP collectors;
  StorageGRID, Unix, E-Series, Cisco and other pollers are skipped, and so are pollers the
  optional name patterns do not select.
- Authentication, first match wins, the poller before ``Defaults``: ``auth_style:
  certificate_auth`` (``ssl_cert``/``ssl_key``, else ``cert/<host name>.pem`` and ``.key`` under
  ``$HARVEST_HOME``), a non-empty ``password``, ``credentials_script`` (``path``, ``schedule``,
  ``timeout``), ``credentials_file``.
- ``addr``, ``ca_cert``, ``use_insecure_tls``; ``datacenter`` and ``labels`` become labels.

Relative paths are taken from harvest.yml's directory, as Harvest does for credentials_file.
Every problem is one line naming the file, the line and Harvest's own key.
"""

from __future__ import annotations

import glob
import ipaddress
import os
import shutil
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import yaml

from akv_exporter.config import (
    ClusterConfig,
    ConfigError,
    SecretSource,
    TlsConfig,
    cluster_url,
    expand_home,
    label_name_problem,
    parse_duration,
    parse_yaml,
    read_text,
)
from akv_exporter.secrets import (
    HARVEST_FILE,
    HARVEST_SCRIPT,
    HarvestCredentials,
    SecretError,
    harvest_file_entry,
    read_harvest_credentials,
    scalar,
)

# Harvest's collectors that talk to ONTAP (its configuration reference lists the collectors).
# CmPerf (ONTAP's counter-manager archives, built on the Rest collector) is newer than that list.
ONTAP_COLLECTORS = frozenset(
    {"zapi", "zapiperf", "rest", "restperf", "keyperf", "statperf", "cmperf", "ems"}
)
SCRIPT_SCHEDULE = 24 * 3600.0  # Harvest's defaults for credentials_script
SCRIPT_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class HarvestInventory:
    """The clusters of a harvest.yml, the pollers left out (and why), and every file read."""

    clusters: tuple[ClusterConfig, ...]
    skipped: tuple[tuple[str, str], ...]  # (where the poller is, why it was left out)
    files: tuple[Path, ...]  # harvest.yml, its Poller_files and credentials files


class _Problems:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(self, file: Path, line: int, key: str, reason: str) -> None:
        self.lines.append(f"{file}:{line}: {key}: {reason}")


def _line(mapping: Any, key: str) -> int:
    return getattr(mapping, "key_lines", {}).get(key, getattr(mapping, "line", 0))


@dataclass
class _Poller:
    """One poller's settings with where each came from: its own section, else Defaults."""

    name: str
    data: Mapping
    file: Path
    line: int
    defaults: Mapping
    defaults_file: Path
    problems: _Problems

    def has(self, key: str) -> bool:
        return key in self.data or key in self.defaults

    def get(self, key: str) -> Any:
        return self.data[key] if key in self.data else self.defaults.get(key)

    def fail(self, key: str, reason: str, sub: str | None = None) -> None:
        """Add a problem at ``key`` (``sub``: a key inside it) where its value came from."""
        own = key in self.data or key not in self.defaults
        scope, file = (self.data, self.file) if own else (self.defaults, self.defaults_file)
        path = f"Pollers.{self.name}.{key}" if own else f"Defaults.{key}"
        line = _line(scope, key) if key in scope else self.line
        inner = scope.get(key)
        if sub is not None and isinstance(inner, Mapping) and sub in inner:
            path, line = f"{path}.{sub}", _line(inner, sub)
        self.problems.add(file, line, path, reason)

    @property
    def origin(self) -> str:
        return f"{self.file}:{self.line} (poller {self.name})"


def _collector_names(value: Any) -> list[str]:
    """Return the collector names of a ``collectors`` list (names, or name: [templates])."""
    names: list[str] = []
    for item in value if isinstance(value, list) else []:
        if isinstance(item, str):
            names.append(item)
        elif isinstance(item, Mapping):
            names.extend(str(key) for key in item)
    return names


def _text(poller: _Poller, key: str) -> str | None:
    """Return the string at ``key`` as written (Harvest reads these as strings)."""
    scope = poller.data if key in poller.data else poller.defaults
    value = scalar(scope, key)
    if value is None and scope.get(key) is not None:
        poller.fail(key, "must be a string")
    return value


def _path(poller: _Poller, key: str, base: Path, value: Any = None) -> Path | None:
    """Return the existing file that ``key`` names, relative paths taken from ``base``."""
    text = _text(poller, key) if value is None else value
    if not text:
        return None
    try:
        path = expand_home(text)
    except ValueError as error:
        poller.fail(key, str(error))
        return None
    path = path if path.is_absolute() else base / path
    if not path.is_file():
        poller.fail(key, f"file {str(path)!r} does not exist or is not a file")
    return path


def _address(poller: _Poller) -> tuple[str, str] | None:
    addr = _text(poller, "addr")
    if not addr:
        poller.fail("addr", "is missing: an ONTAP poller needs the cluster's address")
        return None
    try:
        # Harvest takes a bare IPv6 address; a URL needs it in brackets.
        address = f"[{addr}]" if ipaddress.ip_address(addr).version == 6 else addr
    except ValueError:
        address = addr
    try:
        return addr, cluster_url(address)
    except ValueError as error:
        poller.fail("addr", str(error))
        return None


def _labels(poller: _Poller) -> dict[str, str]:
    """Return datacenter and the poller's labels (a list of one-pair mappings, or a mapping)."""
    labels: dict[str, str] = {}
    datacenter = _text(poller, "datacenter")
    if datacenter:
        labels["datacenter"] = datacenter
    value = poller.get("labels")
    if value is None:
        return labels
    pairs: list[tuple[Any, str | None]] = []
    if isinstance(value, Mapping):
        pairs = [(name, scalar(value, name)) for name in value]
    elif isinstance(value, list) and all(isinstance(item, Mapping) for item in value):
        pairs = [(name, scalar(item, name)) for item in value for name in item]
    else:
        poller.fail("labels", "must be a list of name: value pairs")
    for name, text in pairs:
        problem = label_name_problem(name)
        if problem is None and text is None:
            problem = "label values must be strings"
        if problem or text is None:
            poller.fail("labels", f"{name}: {problem}")
        else:
            labels[name] = text
    return labels


def _certificate(poller: _Poller, base: Path) -> tuple[Path | None, Path | None]:
    """Return the client certificate and key; Harvest's default is cert/<host>.pem and .key."""
    home = Path(os.environ.get("HARVEST_HOME") or base)
    host = socket.gethostname()
    found = []
    for key, suffix in (("ssl_cert", ".pem"), ("ssl_key", ".key")):
        if poller.has(key):
            found.append(_path(poller, key, base))
            continue
        default = home / "cert" / f"{host}{suffix}"
        if not default.is_file():
            poller.fail(key, f"is not set and Harvest's default {str(default)!r} does not exist")
        found.append(default)
    return found[0], found[1]


def _script(poller: _Poller, section: Mapping, base: Path, addr: str):
    """Return the HarvestCredentials of a credentials_script section, or None if broken."""
    key = "credentials_script"
    if not isinstance(section, Mapping) or not section.get("path"):
        poller.fail(key, "must be a section with path (and optionally schedule, timeout)")
        return None
    unknown = set(section) - {"path", "schedule", "timeout"}
    if unknown:
        poller.fail(key, f"unknown key {sorted(unknown)[0]!r}; valid: path, schedule, timeout")
    written = str(section["path"])
    try:
        path = expand_home(written)
    except ValueError as error:
        poller.fail(key, str(error), "path")
        return None
    path = path if path.is_absolute() else base / path
    if "/" not in written and not path.is_file() and (found := shutil.which(written)):
        path = Path(found)  # a bare name is looked up on PATH too
    if not path.is_file():
        poller.fail(key, f"file {str(path)!r} does not exist or is not a file", "path")
    elif not os.access(path, os.X_OK):
        poller.fail(key, f"script {str(path)!r} is not executable", "path")
    timeout, schedule = SCRIPT_TIMEOUT, SCRIPT_SCHEDULE
    try:
        if "timeout" in section:
            timeout = parse_duration(section["timeout"])
            if timeout <= 0:
                raise ValueError("must be more than 0")
    except ValueError as error:
        poller.fail(key, str(error), "timeout")
    raw = section.get("schedule")
    try:
        if isinstance(raw, str) and raw.strip().lower() == "always":
            schedule = 0.0  # Harvest: run the script every time a password is needed
        elif raw is not None:
            schedule = parse_duration(raw)
    except ValueError as error:
        poller.fail(key, str(error), "schedule")
    return HarvestCredentials(
        HARVEST_SCRIPT,
        str(path),
        poller=poller.name,
        addr=addr,
        schedule=schedule,
        timeout=timeout,
    )


def _credentials_file(poller: _Poller, value: Any, username: str | None, base: Path, files):
    """Return (username, HarvestCredentials) of a credentials_file; it must hold a password."""
    key = "credentials_file"
    path = _path(poller, key, base, str(value))
    if path is None or not path.is_file():
        return username, None
    files.append(path)
    try:
        document = read_harvest_credentials(path)
    except SecretError as error:
        poller.fail(key, str(error))
        return username, None
    given, password = harvest_file_entry(document, poller.name)
    if password is None:
        poller.fail(key, f"{str(path)!r} has no password under Pollers.{poller.name} nor Defaults")
        return username, None
    return given or username, HarvestCredentials(HARVEST_FILE, str(path), poller=poller.name)


def _login(poller: _Poller, base: Path, addr: str, files: list[Path]):
    """Return (username, secret, cert, key) by Harvest's precedence, poller before Defaults."""
    username = _text(poller, "username")
    for scope in (poller.data, poller.defaults):
        style = scope.get("auth_style")
        if style not in (None, "basic_auth", "certificate_auth"):
            poller.fail("auth_style", f"must be basic_auth or certificate_auth, not {style!r}")
        if style == "certificate_auth":
            cert, key = _certificate(poller, base)
            return None, None, cert, key
        password = scalar(scope, "password")
        if password:
            if username is None:
                poller.fail("username", "is missing for password authentication")
            return username, SecretSource("password", password), None, None
        if scope.get("credentials_script") is not None:
            script = _script(poller, scope["credentials_script"], base, addr)
            return username, script, None, None
        if scope.get("credentials_file"):
            name, secret = _credentials_file(
                poller, scope["credentials_file"], username, base, files
            )
            if secret is not None and name is None:
                poller.fail("username", "is missing here and in the credentials_file")
            return name, secret, None, None
    poller.fail(
        "password",
        "no credentials: give username and password, credentials_script, credentials_file "
        "or auth_style: certificate_auth (here or in Defaults)",
    )
    return None, None, None, None


def _cluster(poller: _Poller, base: Path, files: list[Path]) -> ClusterConfig | None:
    before = len(poller.problems.lines)
    address = _address(poller)
    insecure = poller.get("use_insecure_tls")
    if insecure is not None and not isinstance(insecure, bool):
        poller.fail("use_insecure_tls", f"must be true or false, not {insecure!r}")
    ca_cert = _path(poller, "ca_cert", base)
    labels = _labels(poller)
    if address is None:
        return None
    username, secret, cert, key = _login(poller, base, address[0], files)
    if len(poller.problems.lines) > before:
        return None
    return ClusterConfig(
        name=None,  # ONTAP's own name, as on Harvest's series
        address=address[0],
        url=address[1],
        username=username,
        secret=secret,
        client_cert_file=cert,
        client_key_file=key,
        tls=TlsConfig(ca_file=ca_cert, verify=not insecure),
        labels=tuple(sorted(labels.items())),
        origin=poller.origin,
    )


def _document(path: Path, problems: _Problems) -> Mapping:
    try:
        data = parse_yaml(read_text(path), path)
    except ConfigError as error:
        problems.lines.extend(error.problems)
        return {}
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        problems.add(path, 1, "(top level)", "must be a mapping with Pollers")
        return {}
    return data


def _section(document: Mapping, key: str, path: Path, problems: _Problems) -> Mapping:
    value = document.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        problems.add(path, _line(document, key), key, "must be a mapping")
        return {}
    return value


def _matches(base: Path, pattern: Any) -> list[Path]:
    """Return the files a Poller_files entry names now, sorted (relative to ``base``)."""
    return [Path(match) for match in sorted(glob.glob(os.path.join(base, str(pattern))))]


def poller_files(path: Path) -> list[Path]:
    """Return the files harvest.yml's Poller_files match now; none if it cannot be read.

    For the watcher: a file newly matching a glob is a change to the inventory.
    """
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return []
    globs = document.get("Poller_files") if isinstance(document, dict) else None
    if not isinstance(globs, list):
        return []
    return [match for pattern in globs for match in _matches(path.parent, pattern)]


def read_harvest(path: Path, patterns: tuple[str, ...] = ()) -> HarvestInventory:
    """Return the ONTAP clusters of Harvest's configuration at ``path``; ConfigError if broken."""
    problems = _Problems()
    base = path.parent
    document = _document(path, problems)
    defaults = _section(document, "Defaults", path, problems)
    files = [path]
    # (name, settings, file, line) of every poller, harvest.yml's first, then Poller_files'.
    pollers: list[tuple[str, Any, Path, int]] = []
    sources = [(path, document)]
    globs = document.get("Poller_files") or []
    if not isinstance(globs, list):
        problems.add(path, _line(document, "Poller_files"), "Poller_files", "must be a list")
        globs = []
    for pattern in globs:
        matches = _matches(base, pattern)
        if not matches and not any(char in str(pattern) for char in "*?["):
            line = _line(document, "Poller_files")
            problems.add(path, line, "Poller_files", f"file {pattern!r} does not exist")
        for match in matches:
            files.append(match)
            sources.append((match, _document(match, problems)))
    where: dict[str, str] = {}
    for file, data in sources:
        section = _section(data, "Pollers", file, problems)
        for name, settings in section.items():
            line = _line(section, str(name))
            if str(name) in where:
                also = f"poller is also defined at {where[str(name)]}"
                problems.add(file, line, f"Pollers.{name}", also)
                continue
            where[str(name)] = f"{file}:{line}"
            pollers.append((str(name), settings, file, line))
    clusters: list[ClusterConfig] = []
    skipped: list[tuple[str, str]] = []
    by_url: dict[str, str] = {}
    for name, settings, file, line in pollers:
        data = settings if isinstance(settings, Mapping) else {}
        poller = _Poller(name, data, file, line, defaults, path, problems)
        if settings is not None and not isinstance(settings, Mapping):
            poller.fail("(poller)", "must be a mapping of settings")
            continue
        collectors = _collector_names(poller.get("collectors"))
        if patterns and not any(fnmatchcase(name, pattern) for pattern in patterns):
            skipped.append((poller.origin, "not selected by inventory.harvest_pollers"))
            continue
        if not any(collector.lower() in ONTAP_COLLECTORS for collector in collectors):
            kinds = ", ".join(collectors) or "none"
            skipped.append((poller.origin, f"not an ONTAP poller (collectors: {kinds})"))
            continue
        cluster = _cluster(poller, base, files)
        if cluster is None:
            continue
        if cluster.url in by_url:
            # Harvest setups often split one cluster's collectors over several pollers.
            skipped.append((poller.origin, f"same cluster as {by_url[cluster.url]}"))
            continue
        by_url[cluster.url] = poller.origin
        clusters.append(cluster)
    if problems.lines:
        # A problem in Defaults shows once, not once per poller that inherits it.
        raise ConfigError(list(dict.fromkeys(problems.lines)))
    return HarvestInventory(tuple(clusters), tuple(skipped), tuple(dict.fromkeys(files)))
