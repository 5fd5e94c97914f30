"""Cluster state -> the JSON records a cluster of that release sends, and their field trees.

Each record is rendered once per state change, complete (advanced fields included where ONTAP
would compute them); a request then only filters, projects and pages these shared dicts. The
cluster and its nodes are rendered here; each key-manager endpoint renders its own records in
its own module (``SimulatedKeyManager``; simulator/keymanagers.py lists them), and declares
the fields each release knows (``x-ntap-introduced`` in NetApp's OpenAPI definition).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ontap_simulator.model import ClusterState, Node, Status

# A field tree: name -> None for a leaf, or the subtree of an object (or of an array's items).
Tree = Mapping[str, "Tree | None"]

LINKS: Tree = {"self": {"href": None}}
REF: Tree = {"name": None, "uuid": None, "_links": LINKS}
CHECK: Tree = {"code": None, "message": None}

_VERSION: Tree = {"full": None, "generation": None, "major": None, "minor": None}
NODE_TREE: Tree = {
    "_links": LINKS,
    "uuid": None,
    "name": None,
    "state": None,
    "membership": None,
    "model": None,
    "serial_number": None,
    "system_id": None,
    "version": _VERSION,
    "ha": {"enabled": None, "partners": REF},
}
CLUSTER_TREE: Tree = {"_links": LINKS, "name": None, "uuid": None, "version": _VERSION}

NODES_PATH = "/api/cluster/nodes"

# Build dates for the `version.full` string, one per release the generator uses.
_BUILD_DATES = {
    (9, 8, 0): "Thu Jan 28 19:39:46 UTC 2021",
    (9, 10, 1): "Thu Dec 02 00:13:27 UTC 2021",
    (9, 11, 1): "Fri Jul 08 09:14:01 UTC 2022",
    (9, 12, 1): "Mon Jan 09 16:31:07 UTC 2023",
    (9, 13, 1): "Tue Jun 06 10:02:55 UTC 2023",
    (9, 14, 1): "Wed Jan 10 11:47:40 UTC 2024",
    (9, 15, 1): "Fri Jun 07 08:20:12 UTC 2024",
    (9, 16, 1): "Tue Jan 14 13:05:33 UTC 2025",
    (9, 17, 1): "Thu Jun 12 07:58:21 UTC 2025",
}


@dataclass(frozen=True, slots=True)
class Rendered:
    """One cluster state's records, ready to filter and project."""

    cluster: dict[str, Any]
    nodes: tuple[dict[str, Any], ...]
    nodes_by_uuid: Mapping[str, dict[str, Any]]
    # Each key-manager endpoint's records (simulator/keymanagers.py), by the endpoint's path.
    key_managers: Mapping[str, tuple[dict[str, Any], ...]]
    key_managers_by_uuid: Mapping[str, Mapping[str, dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class SimulatedKeyManager:
    """One simulated key-manager endpoint: its path, its query kind, its records by release."""

    path: str
    tree: Tree  # every field a record may have: what `fields` and filters can name
    default_fields: tuple[str, ...]  # what ONTAP returns without `fields`
    advanced: frozenset[str]  # returned only when `fields` names them (or `**`)
    render: Callable[[ClusterState], tuple[dict[str, Any], ...]]
    # Fields newer than the endpoint -> the release that introduced them (dotted for a nested
    # field, ``external.servers.connectivity.node_states``): asking an older release for one is
    # ONTAP error 262197.
    introduced: Mapping[str, tuple[int, int, int]] = field(default_factory=dict)
    # The error a cluster's faults make it answer instead of records: (code, message) or None.
    refusal: Callable[[ClusterState], tuple[str, str] | None] = lambda _cluster: None
    # The release that introduced the endpoint; an older one answers as for any unknown path.
    since: tuple[int, int, int] = (9, 8, 0)
    # Whether ``refusal`` answers the collection GET too; False where NetApp documents the
    # errors for the instance GET only (key-managers).
    collection_refusal: bool = True

    def tree_of(self, version: tuple[int, int, int]) -> Tree:
        """Return the fields a release knows."""
        return without_newer(self.tree, self.introduced, version)


def without_newer(
    tree: Tree, introduced: Mapping[str, tuple[int, int, int]], version: tuple[int, int, int]
) -> Tree:
    """Return ``tree`` without the (dotted) fields introduced after ``version``."""
    pruned: dict[str, Any] = dict(tree)
    for name, since in introduced.items():
        if since <= version:
            continue
        *parents, leaf = name.split(".")
        node = pruned
        for parent in parents:
            child = node.get(parent)
            if child is None:
                break
            node[parent] = node = dict(child)
        else:
            node.pop(leaf, None)
    return pruned


def version_full(version: tuple[int, int, int]) -> str:
    """Return ONTAP's `version.full` string for a release."""
    release = ".".join(str(part) for part in version)
    date = _BUILD_DATES.get(version, "Mon Jan 01 00:00:00 UTC 2024")
    return f"NetApp Release {release}: {date}"


def links(href: str) -> dict[str, Any]:
    return {"self": {"href": href}}


def _version(version: tuple[int, int, int]) -> dict[str, Any]:
    return {
        "full": version_full(version),
        "generation": version[0],
        "major": version[1],
        "minor": version[2],
    }


def node_ref(node: Node) -> dict[str, Any]:
    return {"name": node.name, "uuid": node.uuid, "_links": links(f"{NODES_PATH}/{node.uuid}")}


def render(cluster: ClusterState, key_managers: Iterable[SimulatedKeyManager]) -> Rendered:
    """Return every record this cluster answers with, rendered for its release and faults."""
    by_name = {node.name: node for node in cluster.nodes}
    nodes = tuple(_render_node(cluster, node, by_name.get(node.partner)) for node in cluster.nodes)
    managed = {endpoint.path: endpoint.render(cluster) for endpoint in key_managers}
    return Rendered(
        cluster={
            "name": cluster.name,
            "uuid": cluster.uuid,
            "version": _version(cluster.version),
            "_links": links("/api/cluster"),
        },
        nodes=nodes,
        nodes_by_uuid={record["uuid"]: record for record in nodes},
        key_managers=managed,
        key_managers_by_uuid={
            path: {record["uuid"]: record for record in records}
            for path, records in managed.items()
        },
    )


def _render_node(cluster: ClusterState, node: Node, partner: Node | None) -> dict[str, Any]:
    return {
        "uuid": node.uuid,
        "name": node.name,
        "state": node.state,
        "membership": "member",
        "model": node.model,
        "serial_number": node.serial_number,
        "system_id": node.system_id,
        "version": _version(cluster.version),
        "ha": {
            "enabled": partner is not None,
            "partners": [node_ref(partner)] if partner else [],
        },
        "_links": links(f"{NODES_PATH}/{node.uuid}"),
    }


def render_check(status: Status, flag: str, integer_codes: bool) -> dict[str, Any]:
    return {
        flag: status.ok,
        "code": int(status.code) if integer_codes else status.code,
        "message": status.message,
    }
