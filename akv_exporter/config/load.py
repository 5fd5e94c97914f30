"""Loading a configuration file: every problem as one line, then the values the exporter runs on.

Each part of the file (the top level, each section, each cluster) is validated by its model on
its own, so one wrong key hides nothing else: a typo in one cluster still leaves its address in
the duplicate check. A key that was refused is left out of the checks that span keys, so one
problem gives one line (an unset ${VAR} in `address` is not also "address is missing").
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from akv_exporter.certificates import CertificateProblem, server_context
from akv_exporter.config import model
from akv_exporter.config.problems import (
    Loc,
    Problems,
    inner_model,
    kind_of,
    line_of,
    subset,
)
from akv_exporter.config.values import (
    DEFAULT_LISTEN,
    DEFAULT_STATE_FILE,
    NO_HOME,
    ClusterConfig,
    Config,
    ConfigError,
    InventoryConfig,
    PollConfig,
    SecretSource,
    TlsConfig,
    WebConfig,
    cluster_url,
    expand_home,
)
from akv_exporter.config.web_file import read_web_file
from akv_exporter.config.yamlfile import lines_of, parse_yaml, read_text

SECRET_KEYS = ("password", "password_env", "password_file", "credentials_command")
_SECTIONS = ("web", "poll", "defaults", "clusters", "inventory")
_SECURED = ("tls_cert_file", "tls_key_file", "basic_auth_users")  # --web.config.file's job


def _web(
    section: model.WebSection | None,
    raw: Any,
    problems: Problems,
    web_config_file: Path | None,
    elsewhere: list[str],
) -> WebConfig:
    """Return how to serve: `web`, or --web.config.file and `web.listen` (``elsewhere``'s lines)."""
    web = section or model.WebSection()
    listen = web.listen or DEFAULT_LISTEN
    if web_config_file is not None:
        secured = [k for k in _SECURED if isinstance(raw, Mapping) and raw.get(k) is not None]
        if secured:  # one place says how the exporter is secured
            keys = ", ".join(f"web.{key}" for key in secured)
            problems.add(
                ("web", secured[0]),
                f"--web.config.file {web_config_file} secures the exporter; remove {keys} here",
            )
        config, file_problems = read_web_file(web_config_file, listen)
        elsewhere.extend(file_problems)
        return config or WebConfig(listen=listen)
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
        listen=listen,
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
        watch_interval=InventoryConfig().watch_interval if watch is None else watch,
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
    section = _section(data, "defaults", problems)
    return (
        _cluster_fields(section, data.get("defaults"), ("defaults",), problems) if section else {}
    )


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
        # With a wrong key left out, an entry still counts: a typo hides no duplicate.
        entry = problems.validate(model.ClusterEntry, item, loc)
        if entry is None:  # no valid address: the problem says so, there is nothing to compare
            continue
        line = line_of(problems.data, loc)
        url = cluster_url(entry.address)
        unique = True
        for what, value in (("name", entry.name), ("address", url)):
            if value and (what, value) in seen:
                problems.add((*loc, what), f"{value!r} is already used by {seen[what, value]}")
                unique = False
            elif value:
                seen[what, value] = f"clusters[{index}] (line {line})"
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


def _section(data: Mapping, name: str, problems: Problems) -> Any:
    raw = data.get(name)
    schema = inner_model(model.ConfigFile.model_fields[name].annotation)
    return problems.validate(schema, {} if raw is None else raw, (name,))


def read_config(
    text: str, path: Path | None = None, web_config_file: Path | None = None
) -> tuple[Config | None, list[str]]:
    """Return the configuration in ``text`` as far as it is valid, and every problem in it.

    ``web_config_file`` (--web.config.file) says how the exporter serves, instead of `web`.

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
        problems.add((), f"must be a mapping, not {kind_of(data)}")
        return None, problems.lines
    top = problems.validate(model.ConfigFile, subset(data, set(_SECTIONS)), ())
    elsewhere: list[str] = []  # the web configuration file's problems
    web = _web(
        _section(data, "web", problems), data.get("web"), problems, web_config_file, elsewhere
    )
    poll = _poll(_section(data, "poll", problems), problems)
    defaults = _defaults(data, problems)
    inventory = _inventory(_section(data, "inventory", problems), problems)
    # With an inventory, `clusters` may be absent: the clusters can all come from there.
    required = not inventory.enabled and not problems.refused(("inventory",))
    clusters = _clusters(data.get("clusters"), problems, defaults, required)
    state_file = top.state_file if top is not None else None
    if state_file is None:
        state_file = _default_state_file(problems)
    config = Config(path, web, poll, clusters, state_file, inventory, cluster_defaults=defaults)
    return config, problems.lines + elsewhere


def _default_state_file(problems: Problems) -> Path:
    """Return $AKV_EXPORTER_STATE_FILE, else the default under the home directory.

    Without a home to expand ``~`` to, a problem naming what to set (and the path unexpanded,
    for the partial configuration that check-config and check still read).
    """
    variable = os.environ.get("AKV_EXPORTER_STATE_FILE")
    try:
        return expand_home(variable or DEFAULT_STATE_FILE)
    except ValueError as error:
        if problems.refused(("state_file",)):
            pass  # its own line already says what is wrong with the key
        elif variable:
            problems.add(("state_file",), f"AKV_EXPORTER_STATE_FILE {error}")
        else:
            problems.add(
                ("state_file",),
                f"not set, and the default {DEFAULT_STATE_FILE} needs a home directory, "
                f"which this user has not ({NO_HOME}): "
                "set state_file, or AKV_EXPORTER_STATE_FILE",
            )
        return Path(variable or DEFAULT_STATE_FILE)


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
