"""The simulated key-stores endpoint: every key-manager configuration of the cluster, by type.

From NetApp's REST reference (GET /security/key-stores, "Introduced In: 9.10") and its
``SecurityKeystore`` model: ``type`` (``akv``, ``gcp``, ``aws``, ``barbican``, ``kmip``,
``okm``), ``location`` (``external``, ``onboard``), ``svm``, ``is_svm_kek``; ``scope``,
``configuration`` and ``enabled`` from 9.14; ``state`` from 9.16 (``active``, ``mixed``,
``svm_kek_rekey``, ``blocked``, ``switching``, ``initializing``, ``disabling``). NetApp's
example answer shows no ``state`` for a configuration that is not enabled, and no ``_links``
(the model has none). The records are derived from the configurations the other endpoints serve
(same uuids); ``state`` is ``active``, ``blocked`` while the health monitor holds the
configuration's SVMs offline (health.py), or what the control API's ``key_stores`` key says.
``is_svm_kek`` is true for Barbican only (its ``state`` is the SVM-KEK's, NetApp's Barbican page).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from ontap_simulator.model import (
    PATCH_EXTENSIONS,
    ClusterState,
    StateError,
    check_keys,
    error_fault,
)
from ontap_simulator.records import REF, SimulatedKeyManager, Tree, links

PATH = "/api/security/key-stores"
PATCH_KEY = "key_stores"
STATES = ("active", "mixed", "svm_kek_rekey", "blocked", "switching", "initializing", "disabling")
CONFIGURATION_FROM = (9, 14, 0)
STATE_FROM = (9, 16, 0)
TREE: Tree = {
    "uuid": None,
    "svm": REF,
    "scope": None,
    "configuration": {"name": None, "uuid": None},
    "enabled": None,
    "type": None,
    "location": None,
    "is_svm_kek": None,
    "state": None,
}
INTRODUCED = {
    "scope": CONFIGURATION_FROM,
    "configuration": CONFIGURATION_FROM,
    "enabled": CONFIGURATION_FROM,
    "state": STATE_FROM,
}


@dataclasses.dataclass(frozen=True, slots=True)
class KeyStore:
    """One configuration as key-stores lists it."""

    uuid: str
    type: str
    svm_name: str
    svm_uuid: str
    configuration_name: str
    enabled: bool

    @property
    def location(self) -> str:
        return "onboard" if self.type == "okm" else "external"

    @property
    def scope(self) -> str:
        return "svm" if self.svm_name else "cluster"


def key_stores(state: ClusterState) -> tuple[KeyStore, ...]:
    """Return every key-manager configuration of the cluster, in uuid order."""
    stores = [
        KeyStore(a.uuid, "akv", a.svm_name, a.svm_uuid, a.configuration_name, state.active(a))
        for a in state.akvs
    ]
    stores += [
        KeyStore(c.uuid, c.provider, c.svm_name, c.svm_uuid, c.configuration_name, state.active(c))
        for c in state.cloud_kms
    ]
    stores += [
        KeyStore(m.uuid, m.kind, m.svm_name, m.svm_uuid, m.configuration_name, m.enabled)
        for m in state.key_managers
    ]
    return tuple(sorted(stores, key=lambda s: s.uuid))


def state_of(state: ClusterState, store: KeyStore) -> str | None:
    """Return the key store's `state`: None for one not enabled (NetApp's example has none)."""
    if not store.enabled:
        return None
    return state.key_store_states.get(store.uuid, "active")


def render(cluster: ClusterState) -> tuple[dict[str, Any], ...]:
    """Return the cluster's key-store records, by uuid."""
    version = cluster.version
    records = []
    for store in key_stores(cluster):
        record: dict[str, Any] = {"uuid": store.uuid}
        if store.svm_name:
            record["svm"] = {
                "name": store.svm_name,
                "uuid": store.svm_uuid,
                "_links": links(f"/api/svm/svms/{store.svm_uuid}"),
            }
        if version >= CONFIGURATION_FROM:
            record["scope"] = store.scope
            record["configuration"] = {"name": store.configuration_name, "uuid": store.uuid}
            record["enabled"] = store.enabled
        record["type"] = store.type
        record["location"] = store.location
        record["is_svm_kek"] = store.type == "barbican"
        current = state_of(cluster, store)
        if version >= STATE_FROM and current is not None:
            record["state"] = current
        records.append(record)
    return tuple(records)


ENDPOINT = SimulatedKeyManager(
    path=PATH,
    tree=TREE,
    # The simulator's choice: NetApp's examples all name their fields.
    default_fields=("uuid", "svm", "type"),
    advanced=frozenset(),
    render=render,
    introduced=INTRODUCED,
    refusal=error_fault("key_stores_error_code"),
    since=(9, 10, 0),
)


def with_state(state: ClusterState, uuid: str, value: str | None) -> ClusterState:
    """Return the cluster with one key store's state set (None: back to the derived one)."""
    states = dict(state.key_store_states)
    if value is None:
        states.pop(uuid, None)
    else:
        states[uuid] = value
    return dataclasses.replace(state, key_store_states=states)


def merge(state: ClusterState, patch: Any) -> ClusterState:
    """Return the cluster with ``{"<uuid>" or "*": {"state": "blocked" | null}}`` merged."""
    key = PATCH_KEY
    if not isinstance(patch, Mapping):
        raise StateError(key, 'expected a mapping of key store uuid (or "*") to {"state": ...}')
    uuids = [store.uuid for store in key_stores(state)]
    for name in sorted(patch, key=lambda n: n != "*"):
        where = f"{key}.{name}"
        if name != "*" and name not in uuids:
            raise StateError(where, f"no such key store on {state.name}")
        entry = patch[name]
        if not isinstance(entry, Mapping):
            raise StateError(where, "expected a mapping with state")
        check_keys(entry, ("state",), where)
        value = entry.get("state")
        if value is not None and value not in STATES:
            raise StateError(f"{where}.state", f"expected one of {', '.join(STATES)} or null")
        for uuid in uuids if name == "*" else [name]:
            state = with_state(state, uuid, value)
    return state


PATCH_EXTENSIONS[PATCH_KEY] = merge


def describe(state: ClusterState) -> list[dict[str, Any]]:
    """Return the key stores as the control API shows them (the state on every release)."""
    return [
        {
            "uuid": s.uuid,
            "type": s.type,
            "svm": s.svm_name,
            "enabled": s.enabled,
            "state": state_of(state, s),
        }
        for s in key_stores(state)
    ]
