"""The simulated key-managers endpoint: external KMIP key servers and the Onboard Key Manager.

From NetApp's REST reference (GET /security/key-managers, "Introduced In: 9.6") and its
``netapp_ontap`` models:
- ``status.{code,message}`` (an integer code; 65537200 "No action needed at this time." is
  healthy) and ``external.servers[].connectivity`` are advanced: returned only when named or
  with ``fields=**``, never for an inactive configuration;
- ``connectivity.cluster_availability`` from 9.7, ``connectivity.node_states[]`` (``available``,
  ``not_responding``, ``unknown`` per node) from 9.13; ``configuration`` and ``enabled`` from
  9.16. The 9.9.1 and 9.11.1 references document no ``connectivity`` at all; the simulator
  sends ``cluster_availability`` on 9.8 to 9.12 as the 9.7 and later references have it;
- ``onboard.key_backup`` (the Onboard Key Manager's backup: key material) is an ordinary field,
  so ``fields=*`` and ``fields=**`` return it, as NetApp's ``fields=*`` example shows. The
  simulator's backup is a fake block; the request log (server.py) shows who asked for it;
- the errors NetApp documents are the instance GET's (65537201-65537203): the
  ``key_managers_error_code`` fault makes that GET answer one.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import random
from collections.abc import Mapping
from typing import Any

from ontap_simulator.model import (
    KEY_MANAGER_OK_CODE,
    KEY_MANAGER_OK_MESSAGE,
    KEY_SERVER_STATES,
    PATCH_EXTENSIONS,
    ClusterState,
    KeyManager,
    KmipServer,
    StateError,
    check_keys,
    error_fault,
    merge_each,
    ontap_uuid,
    parse_bool,
    parse_int,
    parse_text,
)
from ontap_simulator.records import LINKS, REF, SimulatedKeyManager, Tree, links, node_ref

PATH = "/api/security/key-managers"
PATCH_KEY = "key_managers"
KINDS = ("kmip", "okm")
KMIP_PORT = 5696

_CONNECTIVITY: Tree = {"cluster_availability": None, "node_states": {"node": REF, "state": None}}
_SERVER: Tree = {
    "_links": LINKS,
    "server": None,
    "secondary_key_servers": None,
    "timeout": None,
    "username": None,
    "connectivity": _CONNECTIVITY,
}
TREE: Tree = {
    "_links": LINKS,
    "uuid": None,
    "scope": None,
    "svm": REF,
    "policy": None,
    "configuration": REF,
    "enabled": None,
    "external": {
        "client_certificate": REF,
        "server_ca_certificates": REF,
        "servers": _SERVER,
    },
    "onboard": {"enabled": None, "key_backup": None},
    "is_default_data_at_rest_encryption_disabled": None,
    "status": {"code": None, "message": None},
    "volume_encryption": {"supported": None, "code": None, "message": None},
}
ADVANCED = frozenset({"status", "external.servers.connectivity"})
NODE_STATES_FROM = (9, 13, 0)
CONFIGURATION_FROM = (9, 16, 0)
INTRODUCED = {
    "policy": (9, 9, 0),
    "configuration": CONFIGURATION_FROM,
    "enabled": CONFIGURATION_FROM,
    "external.servers.connectivity.node_states": NODE_STATES_FROM,
}


def active(cluster: ClusterState, manager: KeyManager) -> bool:
    """Return whether ONTAP computes its advanced fields (inactive ones exist from 9.16)."""
    return manager.enabled or cluster.version < CONFIGURATION_FROM


def cluster_availability(cluster: ClusterState, server: KmipServer) -> bool:
    """Return `connectivity.cluster_availability`: as set, else true when every node reaches
    the server (NetApp: "true when key server connectivity state is available on all nodes")."""
    if server.cluster_availability is not None:
        return server.cluster_availability
    return all(server.state_of(node.name) == "available" for node in cluster.nodes)


def render(cluster: ClusterState) -> tuple[dict[str, Any], ...]:
    """Return the cluster's key-manager records, by uuid."""
    managers = sorted(cluster.key_managers, key=lambda m: m.uuid)
    return tuple(_record(cluster, manager) for manager in managers)


def _record(cluster: ClusterState, manager: KeyManager) -> dict[str, Any]:
    version = cluster.version
    computed = active(cluster, manager)
    record: dict[str, Any] = {"uuid": manager.uuid, "scope": manager.scope}
    if manager.svm_name:
        record["svm"] = {
            "name": manager.svm_name,
            "uuid": manager.svm_uuid,
            "_links": links(f"/api/svm/svms/{manager.svm_uuid}"),
        }
    if version >= CONFIGURATION_FROM:
        record["configuration"] = {
            "name": manager.configuration_name,
            "uuid": manager.uuid,
            "_links": links(f"/api/security/key-stores/{manager.uuid}"),
        }
        record["enabled"] = manager.enabled
    if manager.kind == "okm":
        record["onboard"] = {"enabled": True, "key_backup": manager.key_backup}
    else:
        record["external"] = _external(cluster, manager, computed)
    record["is_default_data_at_rest_encryption_disabled"] = False
    record["volume_encryption"] = {"supported": True, "code": 0, "message": ""}
    if computed:
        record["status"] = {"code": manager.status_code, "message": manager.status_message}
    record["_links"] = links(f"{PATH}/{manager.uuid}")
    return record


def _external(cluster: ClusterState, manager: KeyManager, computed: bool) -> dict[str, Any]:
    external: dict[str, Any] = {}
    if manager.client_certificate:
        external["client_certificate"] = _certificate(manager.client_certificate)
    if manager.server_ca_certificates:
        external["server_ca_certificates"] = [
            _certificate(name) for name in manager.server_ca_certificates
        ]
    servers = []
    for server in manager.servers:
        entry: dict[str, Any] = {"server": server.server}
        if server.secondary_key_servers:
            entry["secondary_key_servers"] = server.secondary_key_servers
        entry["timeout"] = server.timeout
        entry["username"] = server.username
        if computed:
            connectivity: dict[str, Any] = {
                "cluster_availability": cluster_availability(cluster, server)
            }
            if cluster.version >= NODE_STATES_FROM:
                connectivity["node_states"] = [
                    {"node": node_ref(node), "state": server.state_of(node.name)}
                    for node in cluster.nodes
                ]
            entry["connectivity"] = connectivity
        entry["_links"] = links(f"{PATH}/{manager.uuid}/key-servers/{server.server}")
        servers.append(entry)
    external["servers"] = servers
    return external


def _certificate(name: str) -> dict[str, Any]:
    uuid = _hashed_uuid(f"certificate/{name}")
    return {"name": name, "uuid": uuid, "_links": links(f"/api/security/certificates/{uuid}")}


def _hashed_uuid(text: str) -> str:
    digest = hashlib.sha256(text.encode()).hexdigest()
    return f"{digest[:8]}-{digest[8:12]}-11ee-{digest[12:16]}-00a098{digest[16:22]}"


ENDPOINT = SimulatedKeyManager(
    path=PATH,
    tree=TREE,
    default_fields=("uuid", "scope", "svm"),
    advanced=ADVANCED,
    render=render,
    introduced=INTRODUCED,
    refusal=error_fault("key_managers_error_code"),
    since=(9, 6, 0),
    collection_refusal=False,
)


# --- making them -----------------------------------------------------------------------------


def fake_key_backup(uuid: str) -> str:
    """Return an Onboard Key Manager backup block made of hash bytes: no key of anything."""
    material = b"".join(hashlib.sha512(f"{uuid}/{i}".encode()).digest() for i in range(6))
    text = base64.b64encode(b"SIMULATED-NOT-A-KEY:" + material).decode()
    lines = [text[i : i + 64] for i in range(0, len(text), 64)]
    rule = "-" * 26
    return "\n".join([f"{rule}BEGIN BACKUP{rule}", *lines, f"{rule}-END BACKUP{rule}-"])


def make_okm(rng: random.Random) -> KeyManager:
    """Return the cluster's Onboard Key Manager."""
    uuid = ontap_uuid(rng)
    return KeyManager(uuid=uuid, kind="okm", key_backup=fake_key_backup(uuid))


def make_kmip(
    rng: random.Random, cluster: str, svm: str = "", svm_uuid: str = "", servers: int = 2
) -> KeyManager:
    """Return an external key manager with ``servers`` KMIP servers, all reachable."""
    site = cluster.split("-")[0]
    octet = rng.randrange(10, 250)
    return KeyManager(
        uuid=ontap_uuid(rng),
        kind="kmip",
        svm_name=svm,
        svm_uuid=svm_uuid,
        servers=tuple(
            KmipServer(server=f"10.{octet}.{index}.{rng.randrange(10, 250)}:{KMIP_PORT}")
            for index in range(1, servers + 1)
        ),
        client_certificate=f"kmip-client-{site}",
        server_ca_certificates=(f"kmip-ca-{site}",),
    )


# --- control API and scenario files ----------------------------------------------------------

DECLARE_KEYS = ("type", "uuid", "svm", "svm_uuid", "configuration", "enabled", "status", "servers")
PATCH_KEYS = ("enabled", "status", "servers")
SERVER_KEYS = ("server", "secondary_key_servers", "timeout", "username")
SERVER_PATCH_KEYS = ("node_states", "cluster_availability")


def merge(state: ClusterState, patch: Any) -> ClusterState:
    """Return the cluster with a ``key_managers`` patch (mapping) or declaration (list) merged."""
    key = PATCH_KEY
    if isinstance(patch, list):
        managers = tuple(
            _declare(state, entry, f"{key}[{index}]") for index, entry in enumerate(patch)
        )
        uuids = [m.uuid for m in managers]
        if len(set(uuids)) != len(uuids):
            raise StateError(key, "key manager uuids must be unique")
        return dataclasses.replace(state, key_managers=managers)
    if not isinstance(patch, Mapping):
        raise StateError(key, "expected a list of key managers or a mapping of uuid to patch")
    merged = merge_each(
        state.key_managers,
        lambda manager: manager.uuid,
        patch,
        key,
        f"key manager on {state.name}",
        lambda manager, entry, where: _merge_one(state, manager, entry, where),
    )
    return dataclasses.replace(state, key_managers=merged)


def _merge_one(state: ClusterState, manager: KeyManager, patch: Any, key: str) -> KeyManager:
    if not isinstance(patch, Mapping):
        raise StateError(key, "expected a mapping")
    check_keys(patch, PATCH_KEYS, key)
    if manager.kind == "okm" and key.endswith(".*"):
        # "*" means every key manager that has what the patch names: OKM has no servers.
        patch = {name: value for name, value in patch.items() if name != "servers"}
    changes: dict[str, Any] = {}
    if "enabled" in patch:
        enabled = parse_bool(patch["enabled"], f"{key}.enabled")
        if not enabled and state.version < CONFIGURATION_FROM:
            raise StateError(
                f"{key}.enabled",
                f"inactive configurations exist from ONTAP 9.16.1, {state.name} runs "
                f"{state.release}",
            )
        changes["enabled"] = enabled
    if "status" in patch:
        changes.update(_status(patch["status"], f"{key}.status"))
    if "servers" in patch:
        changes["servers"] = _merge_servers(state, manager, patch["servers"], f"{key}.servers")
    return dataclasses.replace(manager, **changes) if changes else manager


def _status(patch: Any, key: str) -> dict[str, Any]:
    """Return the status fields of ``{"code": N, "message": "..."}``; code 65537200 alone
    brings NetApp's healthy message."""
    if not isinstance(patch, Mapping):
        raise StateError(key, "expected a mapping with code and message")
    check_keys(patch, ("code", "message"), key)
    changes: dict[str, Any] = {}
    if "code" in patch:
        changes["status_code"] = parse_int(patch["code"], 0, 2**32, f"{key}.code")
        if changes["status_code"] == KEY_MANAGER_OK_CODE:
            changes["status_message"] = KEY_MANAGER_OK_MESSAGE
    if "message" in patch:
        changes["status_message"] = parse_text(patch["message"], f"{key}.message")
    return changes


def _merge_servers(
    state: ClusterState, manager: KeyManager, patch: Any, key: str
) -> tuple[KmipServer, ...]:
    if manager.kind != "kmip":
        raise StateError(key, "the Onboard Key Manager has no key servers")
    if not isinstance(patch, Mapping):
        raise StateError(key, 'expected a mapping of server ("host:port" or "*") to patch')
    names = ", ".join(s.server for s in manager.servers)
    return merge_each(
        manager.servers,
        lambda server: server.server,
        patch,
        key,
        f"key server (servers: {names})",
        lambda server, entry, where: _merge_server(state, server, entry, where),
    )


def _merge_server(state: ClusterState, server: KmipServer, patch: Any, key: str) -> KmipServer:
    if not isinstance(patch, Mapping):
        raise StateError(key, "expected a mapping with node_states and/or cluster_availability")
    check_keys(patch, SERVER_PATCH_KEYS, key)
    changes: dict[str, Any] = {}
    if "node_states" in patch:
        states = patch["node_states"]
        where = f"{key}.node_states"
        if not isinstance(states, Mapping):
            raise StateError(where, 'expected a mapping of node (or "*") to a state')
        nodes = [node.name for node in state.nodes]
        merged = dict(server.node_states)
        for name in sorted(states, key=lambda n: n != "*"):
            if name != "*" and name not in nodes:
                raise StateError(f"{where}.{name}", f"no such node (nodes: {', '.join(nodes)})")
            value = states[name]
            if value not in KEY_SERVER_STATES:
                raise StateError(
                    f"{where}.{name}", f"expected one of {', '.join(KEY_SERVER_STATES)}"
                )
            for node in nodes if name == "*" else [name]:
                if value == "available":
                    merged.pop(node, None)
                else:
                    merged[node] = value
        changes["node_states"] = merged
    if "cluster_availability" in patch:
        value = patch["cluster_availability"]
        changes["cluster_availability"] = (
            None if value is None else parse_bool(value, f"{key}.cluster_availability")
        )
    return dataclasses.replace(server, **changes)


def _declare(state: ClusterState, entry: Any, key: str) -> KeyManager:
    if not isinstance(entry, Mapping):
        raise StateError(key, "expected a mapping")
    check_keys(entry, DECLARE_KEYS, key)
    kind = entry.get("type", "kmip")
    if kind not in KINDS:
        raise StateError(f"{key}.type", f"expected one of {', '.join(KINDS)}")
    rng = random.Random(f"akv-sim:key-manager:{state.name}:{key}")
    svm = parse_text(entry.get("svm") or "", f"{key}.svm")
    if kind == "okm":
        if svm or "servers" in entry:
            raise StateError(key, "the Onboard Key Manager is cluster-scoped and has no servers")
        manager = make_okm(rng)
    else:
        svm_uuid = next((v.svm_uuid for v in state.volumes if v.svm == svm), "") if svm else ""
        manager = make_kmip(rng, state.name, svm, svm_uuid or (ontap_uuid(rng) if svm else ""))
    values: dict[str, Any] = {}
    if "uuid" in entry:
        values["uuid"] = parse_text(entry["uuid"], f"{key}.uuid")
        if kind == "okm":
            values["key_backup"] = fake_key_backup(values["uuid"])
    if "svm_uuid" in entry:
        values["svm_uuid"] = parse_text(entry["svm_uuid"], f"{key}.svm_uuid")
    if "configuration" in entry:
        values["configuration_name"] = parse_text(entry["configuration"], f"{key}.configuration")
    if "servers" in entry:
        values["servers"] = _declare_servers(entry["servers"], f"{key}.servers")
    manager = dataclasses.replace(manager, **values)
    status = {name: entry[name] for name in ("enabled", "status") if name in entry}
    return _merge_one(state, manager, status, key)


def _declare_servers(entries: Any, key: str) -> tuple[KmipServer, ...]:
    if not isinstance(entries, list) or not entries:
        raise StateError(key, 'expected a list of servers ("host:port" or {server: ...})')
    servers = []
    for index, entry in enumerate(entries):
        where = f"{key}[{index}]"
        if isinstance(entry, str):
            entry = {"server": entry}
        if not isinstance(entry, Mapping) or "server" not in entry:
            raise StateError(where, "expected host:port or a mapping with server")
        check_keys(entry, SERVER_KEYS, where)
        server = parse_text(entry["server"], f"{where}.server")
        if ":" not in server:
            server = f"{server}:{KMIP_PORT}"
        servers.append(
            KmipServer(
                server=server,
                secondary_key_servers=parse_text(
                    entry.get("secondary_key_servers", ""), f"{where}.secondary_key_servers"
                ),
                timeout=parse_int(entry.get("timeout", 25), 1, 60, f"{where}.timeout"),
                username=parse_text(entry.get("username", ""), f"{where}.username"),
            )
        )
    return tuple(servers)


PATCH_EXTENSIONS[PATCH_KEY] = merge


def describe(state: ClusterState) -> list[dict[str, Any]]:
    """Return the key managers as the control API shows them (never the backup)."""
    return [
        {
            "uuid": m.uuid,
            "type": m.kind,
            "svm": m.svm_name,
            "scope": m.scope,
            "enabled": m.enabled,
            "status": {"code": m.status_code, "message": m.status_message},
            "servers": {
                s.server: {
                    "cluster_availability": cluster_availability(state, s),
                    "node_states": {n.name: s.state_of(n.name) for n in state.nodes},
                }
                for s in m.servers
            },
        }
        for m in state.key_managers
    ]
