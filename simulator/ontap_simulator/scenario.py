"""Scenario files (YAML) -> cluster states; every error is one line naming file and key.

The format is documented in docs/simulator.md. What a scenario leaves out is generated,
deterministically from the cluster's name, so a scenario can be as short as a list of names.
Status entries and faults use the control API's PATCH syntax and its shorthand.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from ontap_simulator import volumes
from ontap_simulator.fleet import (
    azure_guid,
    generate_fleet,
    make_akv,
    make_nodes,
    ontap_uuid,
)
from ontap_simulator.model import (
    AUTHENTICATION_METHODS,
    NODE_STATES,
    PATCH_EXTENSIONS,
    Akv,
    ClusterState,
    Faults,
    Node,
    StateError,
    check_keys,
    merge_akv,
    merge_faults,
    parse_text,
)

TOP_KEYS = ("defaults", "generate", "clusters")
DEFAULT_KEYS = ("username", "password", "version", "nodes")
CLUSTER_KEYS = ("name", "uuid", "version", "nodes", "username", "password", "akvs", "faults")
AKV_KEYS = (
    "uuid",
    "svm",
    "svm_uuid",
    "scope",
    "enabled",
    "configuration",
    "vault",
    "key_id",
    "client_id",
    "tenant_id",
    "authentication_method",
    "proxy_host",
    "proxy_port",
    "azure_reachability",
    "state",
    "ekmip_reachability",
)
STATUS_KEYS = ("enabled", "azure_reachability", "state", "ekmip_reachability")


class ScenarioError(ValueError):
    """A scenario file that cannot be used; the message is one line naming file and key."""


def _mapping(value: Any, key: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise StateError(key, "expected a mapping")
    return value


def parse_version(value: Any, key: str) -> tuple[int, int, int]:
    """Return an ONTAP release ("9.14.1", "9.8") as (generation, major, minor)."""
    text = str(value) if isinstance(value, str | int | float) else ""
    parts = text.split(".")
    if not 2 <= len(parts) <= 3 or not all(p.isdigit() for p in parts):
        raise StateError(key, f"expected a release such as 9.14.1, got {value!r}")
    numbers = [int(p) for p in parts] + [0] * (3 - len(parts))
    version = (numbers[0], numbers[1], numbers[2])
    if version < (9, 8, 0):
        raise StateError(key, f"AKV support starts with ONTAP 9.8, got {text}")
    return version


def _nodes(value: Any, cluster: str, rng: random.Random, key: str) -> tuple[Node, ...]:
    if isinstance(value, int) and not isinstance(value, bool):
        if not 1 <= value <= 24:
            raise StateError(key, f"expected 1 to 24 nodes, got {value}")
        return make_nodes(cluster, value, rng)
    if not isinstance(value, list) or not value:
        raise StateError(key, "expected a number of nodes or a list of nodes")
    generated = make_nodes(cluster, len(value), rng)
    nodes = []
    for index, (entry, default) in enumerate(zip(value, generated, strict=True)):
        where = f"{key}[{index}]"
        if isinstance(entry, str):
            entry = {"name": entry}
        entry = _mapping(entry, where)
        check_keys(entry, ("name", "uuid", "state"), where)
        state = entry.get("state", "up")
        if state not in NODE_STATES:
            raise StateError(f"{where}.state", f"expected one of {', '.join(NODE_STATES)}")
        nodes.append(
            Node(
                name=parse_text(entry.get("name", default.name), f"{where}.name"),
                uuid=parse_text(entry.get("uuid", default.uuid), f"{where}.uuid"),
                state=state,
                model=default.model,
                serial_number=default.serial_number,
                system_id=default.system_id,
                partner="",
            )
        )
    names = [node.name for node in nodes]
    if len(set(names)) != len(names):
        raise StateError(key, "node names must be unique")
    # HA pairs in list order: 1st with 2nd, 3rd with 4th, ...
    return tuple(
        dataclasses.replace(node, partner=names[i ^ 1] if (i ^ 1) < len(names) else "")
        for i, node in enumerate(nodes)
    )


def _akv(
    entry: Any,
    cluster: str,
    version: tuple[int, int, int],
    nodes: tuple[Node, ...],
    rng: random.Random,
    key: str,
) -> Akv:
    entry = _mapping(entry, key)
    check_keys(entry, AKV_KEYS, key)
    svm = parse_text(entry.get("svm") or "", f"{key}.svm")
    scope = entry.get("scope", "svm" if svm else "cluster")
    if scope not in ("svm", "cluster"):
        raise StateError(f"{key}.scope", "expected svm or cluster")
    if scope == "svm" and not svm:
        raise StateError(f"{key}.svm", "an SVM-scoped configuration needs the SVM's name")
    if scope == "cluster" and svm:
        raise StateError(f"{key}.svm", "a cluster-scoped configuration has no SVM")
    word = "".join(c for c in (svm.removeprefix("svm_") or "admin") if c.isalnum())[:6] or "svm"
    generated = make_akv(
        rng,
        cluster=cluster,
        svm=svm,
        svm_uuid=ontap_uuid(rng) if svm else "",
        word=word.lower(),
        tenant_id=azure_guid(rng),
        client_id=azure_guid(rng),
        version=version,
    )
    values: dict[str, Any] = {}
    for name, field in (
        ("uuid", "uuid"),
        ("svm_uuid", "svm_uuid"),
        ("vault", "vault"),
        ("key_id", "key_id"),
        ("client_id", "client_id"),
        ("tenant_id", "tenant_id"),
        ("configuration", "configuration_name"),
        ("proxy_host", "proxy_host"),
    ):
        if name in entry:
            values[field] = parse_text(entry[name], f"{key}.{name}")
    if "vault" in entry and "key_id" not in entry:
        # Keep the key in the vault the scenario names.
        values["key_id"] = values["vault"].rstrip("/") + "/" + generated.key_id.split("/", 3)[3]
    if "authentication_method" in entry:
        method = entry["authentication_method"]
        if method not in AUTHENTICATION_METHODS:
            raise StateError(
                f"{key}.authentication_method", f"expected {' or '.join(AUTHENTICATION_METHODS)}"
            )
        values["authentication_method"] = method
    if "proxy_port" in entry:
        port = entry["proxy_port"]
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise StateError(f"{key}.proxy_port", "expected a port number")
        values["proxy_port"] = port
    if "proxy_host" in entry:
        values["proxy_type"] = "http"
        values.setdefault("proxy_port", 3128)
    else:  # no proxy unless the scenario names one
        values.update(proxy_type="", proxy_host="", proxy_port=0, proxy_username="")
    akv = dataclasses.replace(generated, **values)
    status = {name: entry[name] for name in STATUS_KEYS if name in entry}
    return merge_akv(akv, status, nodes, version, key)


def _cluster(entry: Any, defaults: Mapping[str, Any], key: str, taken: set[str]) -> ClusterState:
    entry = _mapping(entry, key)
    # Plus key_manager_config and volumes, in the control API's PATCH syntax.
    check_keys(entry, (*CLUSTER_KEYS, *PATCH_EXTENSIONS), key)
    if "name" not in entry:
        raise StateError(f"{key}.name", "every cluster needs a name")
    name = parse_text(entry["name"], f"{key}.name")
    if not name or name in taken:
        raise StateError(f"{key}.name", f"cluster name {name!r} is empty or used twice")
    taken.add(name)
    merged = {**defaults, **entry}
    rng = random.Random(f"akv-sim:scenario:{name}")
    version = parse_version(merged.get("version", "9.14.1"), f"{key}.version")
    nodes = _nodes(merged.get("nodes", 2), name, rng, f"{key}.nodes")
    akv_entries = entry.get("akvs", [{"svm": "svm_nfs"}])
    if not isinstance(akv_entries, list):
        raise StateError(f"{key}.akvs", "expected a list of AKV configurations")
    akvs = tuple(
        _akv(item, name, version, nodes, rng, f"{key}.akvs[{index}]")
        for index, item in enumerate(akv_entries)
    )
    uuids = [akv.uuid for akv in akvs]
    if len(set(uuids)) != len(uuids):
        raise StateError(f"{key}.akvs", "AKV uuids must be unique")
    state = ClusterState(
        name=name,
        uuid=parse_text(entry.get("uuid", ontap_uuid(rng)), f"{key}.uuid"),
        version=version,
        nodes=nodes,
        akvs=akvs,
        username=parse_text(merged.get("username", "admin"), f"{key}.username"),
        password=parse_text(merged.get("password", "netapp1!"), f"{key}.password"),
        faults=merge_faults(Faults(), entry.get("faults", {}), f"{key}.faults"),
    )
    # Volumes generated from the name, like the rest, unless the scenario lists them.
    if "volumes" not in entry:
        state = dataclasses.replace(state, volumes=volumes.generate(f"scenario:{name}", state))
    for extension, merge in PATCH_EXTENSIONS.items():
        if extension in entry:
            try:
                state = merge(state, entry[extension])
            except StateError as error:
                raise StateError(f"{key}.{error.key}", error.reason) from None
    if "volumes" not in entry:  # and for the SVMs of the other key managers
        state = volumes.with_other_key_managers(f"scenario:{name}", state)
    return state


def parse_scenario(document: Any) -> tuple[ClusterState, ...]:
    """Return the clusters a parsed scenario document describes; StateError names the key."""
    document = _mapping(document, "(top level)")
    check_keys(document, TOP_KEYS, "")
    defaults = _mapping(document.get("defaults", {}), "defaults")
    check_keys(defaults, DEFAULT_KEYS, "defaults")
    entries = document.get("clusters", [])
    if not isinstance(entries, list):
        raise StateError("clusters", "expected a list of clusters")
    taken: set[str] = set()
    clusters = [
        _cluster(entry, defaults, f"clusters[{index}]", taken)
        for index, entry in enumerate(entries)
    ]
    if "generate" in document:
        generate = _mapping(document["generate"], "generate")
        check_keys(generate, ("clusters", "seed"), "generate")
        count, seed = generate.get("clusters", 0), generate.get("seed", 0)
        for name, value in (("clusters", count), ("seed", seed)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise StateError(f"generate.{name}", "expected a whole number >= 0")
        for state in generate_fleet(count + len(clusters), seed):
            if len(clusters) >= len(entries) + count:
                break
            if state.name not in taken:
                taken.add(state.name)
                clusters.append(state)
    if not clusters:
        raise StateError("clusters", "the scenario describes no cluster")
    return tuple(clusters)


def load_scenario(path: Path) -> tuple[ClusterState, ...]:
    """Return the clusters of a scenario file; ScenarioError (one line) when it is unusable."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ScenarioError(f"{path}: cannot read: {error.strerror}") from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(error, "problem", None) or "not valid YAML"
        raise ScenarioError(f"{path}: {where}invalid YAML: {problem}") from None
    try:
        return parse_scenario(document)
    except StateError as error:
        raise ScenarioError(f"{path}: {error}") from None
