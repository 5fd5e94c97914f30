"""GET /api/security/key-manager-configs: ONTAP's key-manager options and health monitor policy.

One object per cluster, not a collection (NetApp's ``KeyManagerConfig``). What differs by release,
from NetApp's REST and command references:
- before 9.10 the endpoint does not exist ("Introduced In: 9.10"): the answer is the one for any
  unknown path;
- 9.10.1 to 9.14.1 answer ``cc_mode_enabled``, ``cloud_kms_retry_count`` and
  ``health_monitor_polling_interval`` only (NetApp's 9.12.1 and 9.13.1 examples);
- from 9.15.1 ``health_monitor_policy`` too (``security key-manager health policy show`` first
  appears in the 9.15.1 command reference), ``barbican`` in it from 9.17.1 (Barbican KMS support).
A ``fields`` entry the release does not have is refused with 262197.
"""

from __future__ import annotations

import dataclasses
import functools
import random
from collections.abc import Mapping
from typing import Any

from ontap_simulator.ems import EventLog
from ontap_simulator.model import (
    PATCH_EXTENSIONS,
    ClusterState,
    StateError,
    check_keys,
    parse_bool,
    parse_int,
)
from ontap_simulator.query import Kind, OntapError, answer_instance
from ontap_simulator.records import LINKS, Tree, links
from ontap_simulator.verdict import DEFAULT_POLICY, HealthPolicy, KeyManagerConfig

PATH = "/api/security/key-manager-configs"
ENDPOINT_FROM = (9, 10, 0)
POLICY_FROM = (9, 15, 0)
BARBICAN_FROM = (9, 17, 0)
KEYSTORE_TYPES = ("akv", "aws", "barbican", "gcp", "ikp", "kmip", "okm")
PATCH_KEY = "key_manager_config"

_POLICY: Tree = {"enabled": None, "manage_volume_offline": None}
TREE: Tree = {
    "_links": LINKS,
    "cc_mode_enabled": None,
    "cloud_kms_retry_count": None,
    "health_monitor_polling_interval": None,
    "health_monitor_policy": {name: _POLICY for name in KEYSTORE_TYPES},
}


@functools.cache
def kind(version: tuple[int, int, int]) -> Kind:
    """Return the record kind as a release knows it: asking for a newer field is 262197, as for
    the AKV endpoint's newer fields (``fields=health_monitor_policy`` before 9.15.1)."""
    tree = dict(TREE)
    if version < POLICY_FROM:
        del tree["health_monitor_policy"]
    else:
        tree["health_monitor_policy"] = {name: _POLICY for name in keystore_types(version)}
    return Kind(tree, default_fields=(), always=("_links",))


DEFAULT_CONFIG = KeyManagerConfig()


def config_of(state: ClusterState) -> KeyManagerConfig:
    """Return the cluster's key-manager options (NetApp's defaults unless set)."""
    return state.key_manager_config or DEFAULT_CONFIG


def has_endpoint(version: tuple[int, int, int]) -> bool:
    return version >= ENDPOINT_FROM


def keystore_types(version: tuple[int, int, int]) -> tuple[str, ...]:
    """Return the keystore types the release's policy lists."""
    return tuple(t for t in KEYSTORE_TYPES if t != "barbican" or version >= BARBICAN_FROM)


def akv_monitor(state: ClusterState) -> HealthPolicy | None:
    """Return what the health monitor does for AKV on this cluster; None: there is no monitor.

    Before 9.10 no health monitor settings exist; 9.10.1 to 9.14.1 have no policy to change
    its behaviour, so it acts as the default policy does.
    """
    return monitor_policy(state, "akv")


def monitor_policy(state: ClusterState, keystore_type: str) -> HealthPolicy | None:
    """Return what the health monitor does for one keystore type (``akv``, ``gcp``, ``aws``,
    ``barbican``, ``kmip``); None: there is no monitor (before 9.10, as for AKV)."""
    if not has_endpoint(state.version):
        return None
    if state.version < POLICY_FROM:
        return DEFAULT_POLICY
    return config_of(state).policy(keystore_type)


def polling_interval_s(state: ClusterState) -> float:
    """Return the health monitor's interval in (simulated) seconds."""
    return 60.0 * config_of(state).health_monitor_polling_interval


def render(state: ClusterState) -> dict[str, Any]:
    """Return the record this cluster's release answers with."""
    config = config_of(state)
    record: dict[str, Any] = {
        "cc_mode_enabled": config.cc_mode_enabled,
        "cloud_kms_retry_count": config.cloud_kms_retry_count,
        "health_monitor_polling_interval": config.health_monitor_polling_interval,
    }
    if state.version >= POLICY_FROM:
        record["health_monitor_policy"] = {
            name: {
                "enabled": config.policy(name).enabled,
                "manage_volume_offline": config.policy(name).manage_volume_offline,
            }
            for name in keystore_types(state.version)
        }
    record["_links"] = links(PATH)
    return record


def answer(
    state: ClusterState, events: EventLog, path: str, params: list[tuple[str, str]]
) -> dict[str, Any]:
    """Return the GET answer; before 9.10 the one ONTAP gives for a path it does not have."""
    if not has_endpoint(state.version):
        raise OntapError(404, "4", "API not found")
    return answer_instance(render(state), kind(state.version), params)


ENDPOINTS = ((PATH, answer),)


def describe(state: ClusterState) -> dict[str, Any] | None:
    """Return the options as the control API shows them (None where the endpoint is absent)."""
    return render(state) if has_endpoint(state.version) else None


# --- control API and scenario files ----------------------------------------------------------


def merge(state: ClusterState, patch: Any) -> ClusterState:
    """Return the cluster with a ``key_manager_config`` patch merged; StateError names the key."""
    key = PATCH_KEY
    if not isinstance(patch, Mapping):
        raise StateError(key, "expected a mapping")
    if not has_endpoint(state.version):
        raise StateError(
            key, f"the endpoint exists from ONTAP 9.10.1, {state.name} runs {state.release}"
        )
    check_keys(patch, [name for name in TREE if name != "_links"], key)
    config = config_of(state)
    changes: dict[str, Any] = {}
    if "health_monitor_polling_interval" in patch:
        where = f"{key}.health_monitor_polling_interval"
        changes["health_monitor_polling_interval"] = parse_int(
            patch["health_monitor_polling_interval"], 15, 30, where
        )
    if "cloud_kms_retry_count" in patch:
        where = f"{key}.cloud_kms_retry_count"
        changes["cloud_kms_retry_count"] = parse_int(patch["cloud_kms_retry_count"], 0, 10, where)
    if "cc_mode_enabled" in patch:
        changes["cc_mode_enabled"] = parse_bool(patch["cc_mode_enabled"], f"{key}.cc_mode_enabled")
    if "health_monitor_policy" in patch:
        changes["health_monitor_policy"] = _merge_policy(state, config, patch)
    return dataclasses.replace(state, key_manager_config=dataclasses.replace(config, **changes))


def _merge_policy(
    state: ClusterState, config: KeyManagerConfig, patch: Mapping[str, Any]
) -> dict[str, HealthPolicy]:
    key = f"{PATCH_KEY}.health_monitor_policy"
    if state.version < POLICY_FROM:
        raise StateError(
            key, f"the policy exists from ONTAP 9.15.1, {state.name} runs {state.release}"
        )
    policies = patch["health_monitor_policy"]
    if not isinstance(policies, Mapping):
        raise StateError(key, "expected a mapping of keystore type to policy")
    types = keystore_types(state.version)
    check_keys(policies, (*types, "*"), key)
    merged = {name: config.policy(name) for name in types}
    # "*" first, so that a named keystore type in the same patch overrides it.
    for name in sorted(policies, key=lambda n: n != "*"):
        where = f"{key}.{name}"
        entry = policies[name]
        if not isinstance(entry, Mapping):
            raise StateError(where, "expected a mapping")
        check_keys(entry, tuple(_POLICY), where)
        for target in types if name == "*" else (name,):
            values = {
                flag: parse_bool(entry[flag], f"{where}.{flag}")
                for flag in _POLICY
                if flag in entry
            }
            merged[target] = dataclasses.replace(merged[target], **values)
    return merged


PATCH_EXTENSIONS[PATCH_KEY] = merge


def generate(rng: random.Random, version: tuple[int, int, int]) -> KeyManagerConfig | None:
    """Return a plausible configuration: mostly NetApp's defaults, some without volume offlining."""
    if not has_endpoint(version):
        return None
    interval = rng.choices((15, 20, 30), weights=(70, 20, 10))[0]
    policy: dict[str, HealthPolicy] = {}
    if version >= POLICY_FROM and rng.random() < 0.25:
        policy["akv"] = HealthPolicy(enabled=True, manage_volume_offline=False)
    return KeyManagerConfig(health_monitor_polling_interval=interval, health_monitor_policy=policy)
