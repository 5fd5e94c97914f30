"""The simulated azure-key-vaults endpoint: its path, fields and records, by release.

The simulator's side of the key-manager seam (simulator/keymanagers.py lists the endpoints; the
server routes each). What differs by release follows ``x-ntap-introduced`` in NetApp's OpenAPI
definition: ``authentication_method`` from 9.10; ``enabled``, ``configuration`` and the
host/port fields from 9.14. Before 9.10 (the 9.8 clusters) the KEK state comes as
``state.cluster_state`` and codes as integers, as NetApp's own example answer and the 9.8-era
library show.
"""

from __future__ import annotations

from typing import Any

from ontap_simulator.model import Akv, ClusterState, error_fault
from ontap_simulator.records import (
    CHECK,
    LINKS,
    REF,
    SimulatedKeyManager,
    Tree,
    links,
    node_ref,
    render_check,
)

PATH = "/api/security/azure-key-vaults"

TREE: Tree = {
    "_links": LINKS,
    "uuid": None,
    "scope": None,
    "svm": REF,
    "enabled": None,
    "configuration": REF,
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
    "state": {"available": None, "cluster_state": None, **CHECK},
    "azure_reachability": {"reachable": None, **CHECK},
    "ekmip_reachability": {"node": REF, "reachable": None, **CHECK},
}
ADVANCED = frozenset({"state", "azure_reachability", "ekmip_reachability"})
# `x-ntap-introduced` of the azure_key_vault fields newer than 9.8, from NetApp's definition.
INTRODUCED = {
    "authentication_method": (9, 10, 0),
    **dict.fromkeys(("enabled", "configuration", "oauth_host", "port"), (9, 14, 0)),
    **dict.fromkeys(("vault_host", "verify_host", "verify_ip"), (9, 14, 0)),
    "skip_verification": (9, 16, 0),
}


def render(cluster: ClusterState) -> tuple[dict[str, Any], ...]:
    """Return the cluster's azure-key-vaults records, by uuid."""
    return tuple(_record(cluster, akv) for akv in sorted(cluster.akvs, key=lambda a: a.uuid))


def _record(cluster: ClusterState, akv: Akv) -> dict[str, Any]:
    version = cluster.version
    faults = cluster.faults
    pre_9_10 = version < (9, 10, 0)
    record: dict[str, Any] = {"uuid": akv.uuid, "scope": akv.scope}
    if akv.svm_name:
        record["svm"] = {
            "name": akv.svm_name,
            "uuid": akv.svm_uuid,
            "_links": links(f"/api/svm/svms/{akv.svm_uuid}"),
        }
    if version >= (9, 14, 0):
        record["enabled"] = akv.enabled
        record["configuration"] = {
            "name": akv.configuration_name,
            "uuid": akv.uuid,
            "_links": links(f"/api/security/key-stores/{akv.uuid}"),
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
        record["state"] = render_check(akv.kek, state_field, integer_codes)
        record["azure_reachability"] = render_check(akv.azure, "reachable", integer_codes)
        record["ekmip_reachability"] = [
            {
                "node": node_ref(node),
                **render_check(akv.ekmip_of(node.name), "reachable", integer_codes),
            }
            for node in cluster.nodes
        ]
    record["_links"] = links(f"{PATH}/{akv.uuid}")
    return record


ENDPOINT = SimulatedKeyManager(
    path=PATH,
    tree=TREE,
    default_fields=("uuid", "svm", "name"),
    advanced=ADVANCED,
    render=render,
    introduced=INTRODUCED,
    refusal=error_fault("akv_error_code"),
)
