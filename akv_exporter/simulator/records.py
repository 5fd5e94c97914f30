"""Cluster state -> the JSON records a cluster of that release sends, and their field trees.

Each record is rendered once per state change, complete (advanced fields included where ONTAP
would compute them); a request then only filters, projects and pages these shared dicts.
What differs by release follows ``x-ntap-introduced`` in NetApp's OpenAPI definition:
``authentication_method`` from 9.10; ``enabled``, ``configuration`` and the host/port fields
from 9.14. The 9.8 profile stands for a cluster with none of those fields that also sends the
variants a client must tolerate: ``state.cluster_state`` (as in NetApp's own example answer)
and integer codes. (NetApp documents AKV for on-premises ONTAP from 9.10.1; its 9.8 and 9.9.1
CLI references list the AKV commands for Azure NetApp Files / Cloud Volumes Service only.)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from akv_exporter.simulator.model import Akv, ClusterState, Node, Status

# A field tree: name -> None for a leaf, or the subtree of an object (or of an array's items).
Tree = Mapping[str, "Tree | None"]

_LINKS: Tree = {"self": {"href": None}}
_REF: Tree = {"name": None, "uuid": None, "_links": _LINKS}
_CHECK = {"code": None, "message": None}

AKV_TREE: Tree = {
    "_links": _LINKS,
    "uuid": None,
    "scope": None,
    "svm": _REF,
    "enabled": None,
    "configuration": _REF,
    "name": None,
    "key_id": None,
    "client_id": None,
    "tenant_id": None,
    "authentication_method": None,
    "oauth_host": None,
    "port": None,
    "vault_host": None,
    "verify_host": None,
    "verify_ip": None,
    "skip_verification": None,
    "proxy_type": None,
    "proxy_host": None,
    "proxy_port": None,
    "proxy_username": None,
    "state": {"available": None, "cluster_state": None, **_CHECK},
    "azure_reachability": {"reachable": None, **_CHECK},
    "ekmip_reachability": {"node": _REF, "reachable": None, **_CHECK},
}
AKV_ADVANCED = frozenset({"state", "azure_reachability", "ekmip_reachability"})
# `x-ntap-introduced` of the azure_key_vault fields newer than 9.8, from NetApp's definition.
AKV_INTRODUCED = {
    "authentication_method": (9, 10, 0),
    **dict.fromkeys(("enabled", "configuration", "oauth_host", "port"), (9, 14, 0)),
    **dict.fromkeys(("vault_host", "verify_host", "verify_ip"), (9, 14, 0)),
    "skip_verification": (9, 16, 0),
}


def akv_tree(version: tuple[int, int, int]) -> Tree:
    """Return the azure_key_vault fields a release knows: asking for a newer one is 262197."""
    return {
        name: subtree
        for name, subtree in AKV_TREE.items()
        if AKV_INTRODUCED.get(name, (9, 8, 0)) <= version
    }


_VERSION: Tree = {"full": None, "generation": None, "major": None, "minor": None}
NODE_TREE: Tree = {
    "_links": _LINKS,
    "uuid": None,
    "name": None,
    "state": None,
    "membership": None,
    "model": None,
    "serial_number": None,
    "system_id": None,
    "version": _VERSION,
    "ha": {"enabled": None, "partners": _REF},
}
CLUSTER_TREE: Tree = {"_links": _LINKS, "name": None, "uuid": None, "version": _VERSION}

AKV_PATH = "/api/security/azure-key-vaults"
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
    akvs: tuple[dict[str, Any], ...]
    nodes_by_uuid: Mapping[str, dict[str, Any]]
    akvs_by_uuid: Mapping[str, dict[str, Any]]


def version_full(version: tuple[int, int, int]) -> str:
    """Return ONTAP's `version.full` string for a release."""
    release = ".".join(str(part) for part in version)
    date = _BUILD_DATES.get(version, "Mon Jan 01 00:00:00 UTC 2024")
    return f"NetApp Release {release}: {date}"


def _links(href: str) -> dict[str, Any]:
    return {"self": {"href": href}}


def _version(version: tuple[int, int, int]) -> dict[str, Any]:
    return {
        "full": version_full(version),
        "generation": version[0],
        "major": version[1],
        "minor": version[2],
    }


def _node_ref(node: Node) -> dict[str, Any]:
    return {"name": node.name, "uuid": node.uuid, "_links": _links(f"{NODES_PATH}/{node.uuid}")}


def render(cluster: ClusterState) -> Rendered:
    """Return every record this cluster answers with, rendered for its release and faults."""
    by_name = {node.name: node for node in cluster.nodes}
    nodes = tuple(_render_node(cluster, node, by_name.get(node.partner)) for node in cluster.nodes)
    akvs = tuple(_render_akv(cluster, akv) for akv in sorted(cluster.akvs, key=lambda a: a.uuid))
    return Rendered(
        cluster={
            "name": cluster.name,
            "uuid": cluster.uuid,
            "version": _version(cluster.version),
            "_links": _links("/api/cluster"),
        },
        nodes=nodes,
        akvs=akvs,
        nodes_by_uuid={record["uuid"]: record for record in nodes},
        akvs_by_uuid={record["uuid"]: record for record in akvs},
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
            "partners": [_node_ref(partner)] if partner else [],
        },
        "_links": _links(f"{NODES_PATH}/{node.uuid}"),
    }


def _render_check(status: Status, flag: str, integer_codes: bool) -> dict[str, Any]:
    return {
        flag: status.ok,
        "code": int(status.code) if integer_codes else status.code,
        "message": status.message,
    }


def _render_akv(cluster: ClusterState, akv: Akv) -> dict[str, Any]:
    version = cluster.version
    faults = cluster.faults
    pre_9_10 = version < (9, 10, 0)
    record: dict[str, Any] = {"uuid": akv.uuid, "scope": akv.scope}
    if akv.svm_name:
        record["svm"] = {
            "name": akv.svm_name,
            "uuid": akv.svm_uuid,
            "_links": _links(f"/api/svm/svms/{akv.svm_uuid}"),
        }
    if version >= (9, 14, 0):
        record["enabled"] = akv.enabled
        record["configuration"] = {
            "name": akv.configuration_name,
            "uuid": akv.uuid,
            "_links": _links(f"/api/security/key-stores/{akv.uuid}"),
        }
    record["name"] = akv.vault
    record["key_id"] = akv.key_id
    record["client_id"] = akv.client_id
    record["tenant_id"] = akv.tenant_id
    if not pre_9_10:
        record["authentication_method"] = akv.authentication_method
    if version >= (9, 14, 0):
        record["oauth_host"] = "login.microsoftonline.com"
        record["port"] = 443
        record["vault_host"] = "vault.azure.net"
        record["verify_host"] = True
        record["verify_ip"] = False
    if akv.proxy_host:
        record["proxy_type"] = akv.proxy_type or "http"
        record["proxy_host"] = akv.proxy_host
        record["proxy_port"] = akv.proxy_port
        if akv.proxy_username:
            record["proxy_username"] = akv.proxy_username
    # Inactive configurations have no advanced properties: ONTAP computes them only when active.
    if cluster.active(akv):
        integer_codes = (faults.code_type or ("int" if pre_9_10 else "string")) == "int"
        state_field = faults.state_field or ("cluster_state" if pre_9_10 else "available")
        record["state"] = _render_check(akv.kek, state_field, integer_codes)
        record["azure_reachability"] = _render_check(akv.azure, "reachable", integer_codes)
        record["ekmip_reachability"] = [
            {
                "node": _node_ref(node),
                **_render_check(akv.ekmip_of(node.name), "reachable", integer_codes),
            }
            for node in cluster.nodes
        ]
    record["_links"] = _links(f"{AKV_PATH}/{akv.uuid}")
    return record
