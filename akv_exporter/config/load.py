"""Loading a configuration file: every problem as one line, then the values the exporter runs on.

Each part of the file (the top level, each section, each cluster) is validated by its model on
its own, so one wrong key hides nothing else: a typo in one cluster still leaves its address in
the duplicate check. A key that was refused is left out of the checks that span keys, so one
problem gives one line (an unset ${VAR} in `address` is not also "address is missing").
"""

from __future__ import annotations

import difflib
import os
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from akv_exporter.certificates import CertificateProblem, server_context
from akv_exporter.config import model
from akv_exporter.config.values import (
    DEFAULT_LISTEN,
    DEFAULT_STATE_FILE,
    ClusterConfig,
    Config,
    ConfigError,
    InventoryConfig,
    PollConfig,
    Problem,
    SecretSource,
    TlsConfig,
    WebConfig,
    cluster_url,
)
from akv_exporter.config.yamlfile import Lines, lines_of, parse_yaml, read_text

SECRET_KEYS = ("password", "password_env", "password_file", "credentials_command")
_SECTIONS = ("web", "poll", "defaults", "clusters", "inventory")
_MISSING_HINT = {"address": ": give a host, host:port or https:// URL"}
Loc = tuple[str | int, ...]


def _inner_model(annotation: Any) -> type[BaseModel] | None:
    """Return the model inside an annotation (``X | None``, ``list[X]``), or None."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for argument in typing.get_args(annotation):
        if found := _inner_model(argument):
            return found
    return None


def _model_at(root: type[BaseModel], loc: Loc) -> type[BaseModel] | None:
    """Return the model validating the mapping at ``loc`` below ``root``."""
    current: type[BaseModel] | None = root
    for part in loc:
        if current is not None and isinstance(part, str):
            field = current.model_fields.get(part)
            current = _inner_model(field.annotation) if field else None
    return current


def _kind(value: Any) -> str:
    if isinstance(value, Mapping):
        return "a mapping"
    return {list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), type(value).__name__
    )


def _key_path(loc: Loc) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else str(part)
    return text or "(top level)"


def _line_of(data: Any, loc: Loc) -> int:
    """Return the line of the key at ``loc`` in ``data``, else of the nearest mapping holding it."""
    line, node = getattr(data, "line", 1) or 1, data
    for part in loc:
        if isinstance(node, Mapping) and part in node:
            line, node = getattr(node, "key_lines", {}).get(str(part), line), node[part]
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
            line = getattr(node, "line", line)
        else:
            break
    return line


def _subset(data: Mapping, leave_out: set) -> Lines:
    """Return ``data`` without the keys ``leave_out``, keeping what it remembers of lines."""
    kept = lines_of({k: v for k, v in data.items() if k not in leave_out}, _line_of(data, ()))
    kept.key_lines = getattr(data, "key_lines", {})
    kept.written = {k: v for k, v in getattr(data, "written", {}).items() if k not in leave_out}
    return kept


class Problems:
    """The one-line problems of one file, each naming its line and key, sorted by line."""

    def __init__(self, path: Path | None, data: Any):
        self.where = str(path) if path else "<config>"
        self.data = data
        self._lines: list[tuple[int, str]] = []
        self._refused: list[Loc] = []

    @property
    def lines(self) -> list[str]:
        return [line for _, line in sorted(self._lines, key=lambda entry: entry[0])]

    def add(self, loc: Loc, reason: str) -> None:
        self._refused.append(loc)
        line = _line_of(self.data, loc)
        text = f"{self.where}:{line}: {_key_path(loc)}: {reason}"
        self._lines.append((line, Problem(text, self._cluster_at(loc))))

    def _cluster_at(self, loc: Loc) -> frozenset[str]:
        """Return the name and address of the cluster entry ``loc`` is in; empty if none."""
        if len(loc) < 2 or loc[0] != "clusters" or not isinstance(loc[1], int):
            return frozenset()
        entries = self.data.get("clusters") if isinstance(self.data, Mapping) else None
        if not isinstance(entries, list) or loc[1] >= len(entries):
            return frozenset()
        identity = _identity(entries[loc[1]])
        if identity is None:  # a wrong name or address: which cluster it is, is not known
            return frozenset()
        return frozenset(filter(None, (identity.name, identity.address)))

    def refused(self, *locs: Loc) -> bool:
        """Return whether a problem was found at or below any of ``locs``."""
        return any(found[: len(loc)] == loc for found in self._refused for loc in locs)

    def validate(self, schema: type[BaseModel], data: Any, loc: Loc) -> Any:
        """Return ``data`` validated by ``schema``, adding a line for each problem.

        When some keys are wrong, return the model of the others (so the checks spanning keys
        still see them); None when nothing usable is left.
        """
        try:
            return schema.model_validate(data)
        except ValidationError as error:
            errors = error.errors(include_url=False)
        unknown = [e["loc"] for e in errors if e["type"] == "extra_forbidden"]
        suggested = {(*where[:-1], self._nearest(schema, where)) for where in unknown}
        for detail in errors:
            where = tuple(part for part in detail["loc"] if part != "[key]")
            if detail["type"] == "missing" and where in suggested:
                continue  # the typo's line already names the key: `adress` for `address`
            self.add((*loc, *where), self._reason(schema, where, detail))
        if not isinstance(data, Mapping):
            return None
        try:
            return schema.model_validate(_subset(data, {e["loc"][0] for e in errors}))
        except ValidationError:
            return None

    @staticmethod
    def _nearest(schema: type[BaseModel], where: Loc) -> str | None:
        keys = list((_model_at(schema, where[:-1]) or schema).model_fields)
        nearest = difflib.get_close_matches(str(where[-1]), keys, n=1, cutoff=0.6)
        return nearest[0] if nearest else None

    def _reason(self, schema: type[BaseModel], where: Loc, detail: Any) -> str:
        """Return the reason for one pydantic error, in the file's words; never a secret."""
        kind, given = detail["type"], detail.get("input")
        if kind == "akv":  # our own validators' reasons
            return detail["ctx"]["reason"]
        if kind == "extra_forbidden":
            nearest = self._nearest(schema, where)
            valid = ", ".join((_model_at(schema, where[:-1]) or schema).model_fields)
            hint = f" (did you mean {nearest!r}?)" if nearest else ""
            return f"unknown key{hint}; valid keys here: {valid}"
        if kind == "missing":
            return "is missing" + _MISSING_HINT.get(str(where[-1]), "")
        if kind in ("model_type", "dict_type", "model_attributes_type"):
            return f"must be a mapping, not {_kind(given)}"
        if kind == "list_type":
            return f"must be a list, not {_kind(given)}"
        if kind == "int_type":  # numbers and booleans are never secrets
            return f"must be a whole number, not {given!r}"
        if kind == "bool_type":
            return f"must be true or false, not {given!r}"
        if kind in ("string_type", "path_type", "is_instance_of"):
            return f"must be a string, not {_kind(given)}"
        return detail["msg"]  # pydantic's words, which do not quote the value


def _web(section: model.WebSection | None, problems: Problems) -> WebConfig:
    web = section or model.WebSection()
    cert, key = web.tls_cert_file, web.tls_key_file
    if problems.refused(("web", "tls_cert_file"), ("web", "tls_key_file")):
        pass
    elif (cert is None) != (key is None):
        problems.add(("web", "tls_cert_file"), "tls_cert_file and tls_key_file go together")
    elif cert is not None and key is not None:
        try:  # what start-up would find, found now: a mismatched, encrypted or non-PEM pair
            server_context(cert, key)
        except CertificateProblem as problem:
            problems.add(("web", problem.key), str(problem))
    return WebConfig(
        listen=web.listen or DEFAULT_LISTEN,
        tls_cert_file=cert,
        tls_key_file=key,
        basic_auth_users=dict(web.basic_auth_users or {}),
    )


def _poll(section: model.PollSection | None, problems: Problems) -> PollConfig:
    given = {key: value for key, value in section or () if value is not None}
    defaults = PollConfig()
    interval = given.get("interval", defaults.interval)
    # Left out, these follow the interval; given, they must agree with it.
    given.setdefault("timeout", min(defaults.timeout, interval))
    given.setdefault("stale_after", max(defaults.stale_after, interval * 2))
    given.setdefault("max_backoff", max(defaults.max_backoff, interval))
    if not problems.refused(("poll", "interval")):
        most, least = f"must not exceed poll.interval ({interval:g}s)", "must be at least"
        for key, wrong, reason in (
            ("timeout", given["timeout"] > interval, most),
            ("stale_after", given["stale_after"] < interval, f"{least} poll.interval"),
            ("min_interval", given.get("min_interval", 0) > interval, most),
        ):
            if wrong:
                problems.add(("poll", key), reason)
    return PollConfig(**given)


def _inventory(section: model.InventorySection | None, problems: Problems) -> InventoryConfig:
    inventory = section or model.InventorySection()
    if (
        inventory.harvest_pollers
        and inventory.harvest is None
        and not problems.refused(("inventory", "harvest"))
    ):
        problems.add(("inventory", "harvest_pollers"), "needs inventory.harvest")
    watch = inventory.watch_interval
    return InventoryConfig(
        harvest=inventory.harvest,
        harvest_pollers=tuple(inventory.harvest_pollers or ()),
        clusters_dir=inventory.clusters_dir,
        watch_interval=InventoryConfig.watch_interval if watch is None else watch,
    )


def _cluster_fields(
    section: model.ClusterFields, raw: Any, loc: Loc, problems: Problems
) -> dict[str, Any]:
    """Return the cluster-level settings given in ``section`` (a cluster or `defaults`)."""
    fields: dict[str, Any] = {}
    if section.username is not None:
        fields["username"] = section.username
    written = [key for key in SECRET_KEYS if isinstance(raw, Mapping) and key in raw]
    if len(written) > 1:
        problems.add((*loc, written[1]), f"give only one of {', '.join(SECRET_KEYS)}")
    for kind in written:
        if getattr(section, kind) is not None:
            fields["secret"] = SecretSource(kind, str(getattr(section, kind)))
            break
    for key in ("client_cert_file", "client_key_file"):
        if getattr(section, key) is not None:
            fields[key] = getattr(section, key)
    if section.tls is not None and section.tls.ca_file is not None:
        fields["ca_file"] = section.tls.ca_file
    if section.tls is not None and section.tls.verify is not None:
        fields["verify"] = section.tls.verify
    if section.labels is not None:
        fields["labels"] = dict(section.labels)
    return fields


def _defaults(data: Mapping, problems: Problems) -> dict[str, Any]:
    raw = data.get("defaults")
    schema = _inner_model(model.ConfigFile.model_fields["defaults"].annotation)
    section = problems.validate(schema, {} if raw is None else raw, ("defaults",))
    return _cluster_fields(section, raw, ("defaults",), problems) if section else {}


def _clusters(
    raw: Any, problems: Problems, defaults: Mapping[str, Any], required: bool
) -> tuple[ClusterConfig, ...]:
    """Return the clusters listed in ``raw``; ``required`` False allows none at all."""
    if raw is None:
        if required:
            problems.add(("clusters",), "is missing; list at least one cluster")
        return ()
    if not isinstance(raw, list) or (required and not raw):
        problems.add(("clusters",), "must be a non-empty list of clusters")
        return ()
    clusters: list[ClusterConfig] = []
    seen: dict[tuple[str, str], str] = {}
    for index, item in enumerate(raw):
        loc: Loc = ("clusters", index)
        entry = problems.validate(model.ClusterEntry, item, loc)
        identity = entry or _identity(item)
        if identity is None:
            continue
        line = _line_of(problems.data, loc)
        url = cluster_url(identity.address)
        unique = True
        for what, value in (("name", identity.name), ("address", url)):
            if value and (what, value) in seen:
                problems.add((*loc, what), f"{value!r} is already used by {seen[what, value]}")
                unique = False
            elif value:
                seen[what, value] = f"clusters[{index}] (line {line})"
        if entry is None:
            continue
        merged = {**defaults, **_cluster_fields(entry, item, loc, problems)}
        cert, key = merged.get("client_cert_file"), merged.get("client_key_file")
        # What `defaults` or a refused key might have given is not known to be missing.
        if not problems.refused(loc, ("defaults",)):
            if (cert is None) != (key is None):
                problems.add(
                    (*loc, "client_cert_file"), "client_cert_file and client_key_file go together"
                )
            if cert is None and merged.get("username") is None:
                problems.add(
                    (*loc, "username"),
                    "is missing (here or in defaults), and no client certificate",
                )
            if cert is None and merged.get("secret") is None:
                problems.add((*loc, "password"), f"no secret: give one of {', '.join(SECRET_KEYS)}")
        if not unique:  # reported here; the fleet-wide check must not report it again
            continue
        clusters.append(
            ClusterConfig(
                name=entry.name or None,
                address=entry.address,
                url=url,
                username=merged.get("username"),
                secret=merged.get("secret"),
                client_cert_file=cert,
                client_key_file=key,
                tls=TlsConfig(ca_file=merged.get("ca_file"), verify=merged.get("verify", True)),
                labels=tuple(
                    sorted({**defaults.get("labels", {}), **merged.get("labels", {})}.items())
                ),
                origin=f"{problems.where}:{line}",
            )
        )
    return tuple(clusters)


def _identity(item: Any) -> model.ClusterIdentity | None:
    """Return a cluster's name and address when they are valid, whatever its other keys."""
    try:
        return model.ClusterIdentity.model_validate(item)
    except ValidationError:
        return None


def _section(data: Mapping, name: str, problems: Problems) -> Any:
    raw = data.get(name)
    schema = _inner_model(model.ConfigFile.model_fields[name].annotation)
    return problems.validate(schema, {} if raw is None else raw, (name,))


def read_config(text: str, path: Path | None = None) -> tuple[Config | None, list[str]]:
    """Return the configuration in ``text`` as far as it is valid, and every problem in it.

    None when there is nothing to build on (not YAML, not a mapping). akv_exporter.inventory
    goes on with the rest of the fleet, so that one file's problems hide no other's.
    """
    try:
        data = parse_yaml(text, path)
    except ConfigError as error:
        return None, error.problems
    data = lines_of({}) if data is None else data
    problems = Problems(path, data)
    if not isinstance(data, Mapping):
        problems.add((), f"must be a mapping, not {_kind(data)}")
        return None, problems.lines
    top = problems.validate(model.ConfigFile, _subset(data, set(_SECTIONS)), ())
    web = _web(_section(data, "web", problems), problems)
    poll = _poll(_section(data, "poll", problems), problems)
    defaults = _defaults(data, problems)
    inventory = _inventory(_section(data, "inventory", problems), problems)
    # With an inventory, `clusters` may be absent: the clusters can all come from there.
    required = not inventory.enabled and not problems.refused(("inventory",))
    clusters = _clusters(data.get("clusters"), problems, defaults, required)
    state_file = top.state_file if top is not None else None
    state_file = (
        state_file
        or Path(os.environ.get("AKV_EXPORTER_STATE_FILE", DEFAULT_STATE_FILE)).expanduser()
    )
    config = Config(path, web, poll, clusters, state_file, inventory, cluster_defaults=defaults)
    return config, problems.lines


def parse_config(text: str, path: Path | None = None) -> Config:
    """Return the validated configuration in ``text``; ConfigError lists every problem."""
    config, problems = read_config(text, path)
    if problems or config is None:
        raise ConfigError(problems, partial=config)
    return config


def read_cluster_list(
    text: str, path: Path, defaults: Mapping[str, Any]
) -> tuple[tuple[ClusterConfig, ...], list[str]]:
    """Return the valid clusters of a file of inventory.clusters_dir, and its problems.

    The file is a list with the keys of `clusters`; it may be empty or an empty list (a team
    with no clusters left). ``defaults`` is the main file's `defaults`, merged as for its own.
    """
    try:
        data = parse_yaml(text, path)
    except ConfigError as error:
        return (), error.problems
    problems = Problems(path, lines_of({"clusters": data or []}, 1, {"clusters": 1}))
    clusters = _clusters(problems.data["clusters"], problems, defaults, required=False)
    return clusters, problems.lines


def parse_cluster_list(
    text: str, path: Path, defaults: Mapping[str, Any]
) -> tuple[ClusterConfig, ...]:
    """Return the clusters of a file of inventory.clusters_dir; ConfigError on any problem."""
    clusters, problems = read_cluster_list(text, path, defaults)
    if problems:
        raise ConfigError(problems)
    return clusters


def load_config(path: str | Path) -> Config:
    """Return the validated configuration in the file at ``path`` alone; ConfigError on problems.

    akv_exporter.inventory.load adds the clusters of `inventory`'s sources.
    """
    path = Path(path)
    return parse_config(read_text(path), path)
