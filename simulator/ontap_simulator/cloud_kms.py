"""What Google Cloud KMS, AWS KMS and Barbican share: AKV's shape under other names.

Each provider module (gcp_kms.py, aws_kms.py, barbican_kms.py) declares a ``Provider``: its
path, release, the name of its reachability check, its own fields, its failure wording; this
module turns the declaration into the endpoint (records by release), the control-API/scenario
key and the generated configurations. NetApp's facts, with sources, are in
../shared/reference/ontap-key-managers.md: one configuration per SVM or for the cluster; the
service's reachability and the KEK's ``state`` (``cluster_state``, not AKV's ``available``) are
cluster-wide objects, ``ekmip_reachability`` a per-node array (not on Barbican); all three are
advanced fields and absent for an inactive configuration.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ontap_simulator.model import (
    CloudKms,
    ClusterState,
    StateError,
    Status,
    check_keys,
    error_fault,
    merge_each,
    merge_ekmip,
    merge_status,
    ontap_uuid,
    parse_bool,
    parse_text,
)
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

STATE_FLAG = "cluster_state"
DEFAULT_REASON = "Connection timed out"
Version = tuple[int, int, int]


@dataclass(frozen=True, slots=True)
class Provider:
    """Everything the simulator knows about one cloud key manager."""

    keystore_type: str  # ONTAP's keystore type: key-stores' `type`, the health policy's key
    title: str  # for messages and incident lines
    patch_key: str  # the control API's and the scenario's key: "gcp_kms"
    path: str
    since: Version  # the endpoint's release (older ones answer 404)
    service_field: str  # "google_reachability"
    service_code: str  # the code of an unreachable service
    kek_code: str  # the code of an unavailable KEK
    # (configuration, reason) -> the unreachable service's message
    service_message: Callable[[CloudKms, str], str]
    kek_message: Callable[[Sequence[str]], str]  # failing node names -> message
    fields: Tree  # the provider's own ordinary fields
    introduced: Mapping[str, Version] = field(default_factory=dict)
    ekmip: bool = True
    reports_enabled: bool = False  # `enabled` and `configuration` (Barbican)
    integer_codes_before: Version = (0, 0, 0)  # releases before it send codes as integers
    # (rng, site-env prefix, svm word) -> the provider's fields for a new configuration
    generate: Callable[[random.Random, str, str], tuple[tuple[str, Any], ...]] = (
        lambda _rng, _prefix, _word: ()
    )
    ems: str = ""  # the EMS group, "ekmip.gckms"; "" when NetApp documents none

    @property
    def error_fault(self) -> str:
        return f"{self.patch_key}_error_code"

    @property
    def advanced(self) -> frozenset[str]:
        names = {"state", self.service_field}
        if self.ekmip:
            names.add("ekmip_reachability")
        return frozenset(names)

    def unreachable(self, config: CloudKms, reason: str = DEFAULT_REASON) -> Status:
        return Status(False, self.service_code, self.service_message(config, reason))

    def kek_unavailable(self, nodes: Sequence[str]) -> Status:
        return Status(False, self.kek_code, self.kek_message(nodes))

    def tree(self) -> Tree:
        tree: dict[str, Any] = {"_links": LINKS, "uuid": None, "scope": None, "svm": REF}
        if self.reports_enabled:
            tree.update(enabled=None, configuration=REF)
        tree.update(self.fields)
        tree["state"] = {STATE_FLAG: None, **CHECK}
        tree[self.service_field] = {"reachable": None, **CHECK}
        if self.ekmip:
            tree["ekmip_reachability"] = {"node": REF, "reachable": None, **CHECK}
        return tree


def endpoint(provider: Provider) -> SimulatedKeyManager:
    """Return the simulated endpoint of one provider."""

    def render(cluster: ClusterState) -> tuple[dict[str, Any], ...]:
        configs = sorted(cluster.cloud(provider.keystore_type), key=lambda c: c.uuid)
        return tuple(_record(provider, cluster, config) for config in configs)

    return SimulatedKeyManager(
        path=provider.path,
        tree=provider.tree(),
        default_fields=("uuid", "svm"),
        advanced=provider.advanced,
        render=render,
        introduced=provider.introduced,
        refusal=error_fault(provider.error_fault),
        since=provider.since,
    )


def _record(provider: Provider, cluster: ClusterState, config: CloudKms) -> dict[str, Any]:
    version = cluster.version
    record: dict[str, Any] = {"uuid": config.uuid, "scope": config.scope}
    if config.svm_name:
        record["svm"] = {
            "name": config.svm_name,
            "uuid": config.svm_uuid,
            "_links": links(f"/api/svm/svms/{config.svm_uuid}"),
        }
    if provider.reports_enabled:
        record["enabled"] = config.enabled
        record["configuration"] = {
            "name": config.configuration_name,
            "uuid": config.uuid,
            "_links": links(f"/api/security/key-stores/{config.uuid}"),
        }
    introduced = provider.introduced
    for name, value in config.attributes:
        if introduced.get(name, provider.since) <= version:
            record[name] = value
    # As for AKV: an inactive configuration has no advanced properties.
    if cluster.active(config):
        default = "int" if version < provider.integer_codes_before else "string"
        integer_codes = (cluster.faults.code_type or default) == "int"
        record["state"] = render_check(config.kek, STATE_FLAG, integer_codes)
        record[provider.service_field] = render_check(config.service, "reachable", integer_codes)
        if provider.ekmip:
            record["ekmip_reachability"] = [
                {
                    "node": node_ref(node),
                    **render_check(config.ekmip_of(node.name), "reachable", integer_codes),
                }
                for node in cluster.nodes
            ]
    record["_links"] = links(f"{provider.path}/{config.uuid}")
    return record


# --- control API and scenario files ----------------------------------------------------------


def status_keys(provider: Provider) -> tuple[str, ...]:
    """Return the keys of a configuration patch: its checks (and ``enabled`` for Barbican)."""
    keys = [provider.service_field, "state"]
    if provider.ekmip:
        keys.append("ekmip_reachability")
    if provider.reports_enabled:
        keys.insert(0, "enabled")
    return tuple(keys)


def merge_config(
    provider: Provider, config: CloudKms, patch: Any, state: ClusterState, key: str
) -> CloudKms:
    """Return ``config`` with a patch of its checks applied (the shorthand as for AKV)."""
    if not isinstance(patch, Mapping):
        raise StateError(key, "expected a mapping")
    check_keys(patch, status_keys(provider), key)
    nodes = [node.name for node in state.nodes]
    changes: dict[str, Any] = {}
    if "enabled" in patch:
        changes["enabled"] = parse_bool(patch["enabled"], f"{key}.enabled")
    if provider.service_field in patch:
        changes["service"] = merge_status(
            config.service,
            patch[provider.service_field],
            ("reachable",),
            lambda: provider.unreachable(config),
            f"{key}.{provider.service_field}",
        )
    if "state" in patch:
        changes["kek"] = merge_status(
            config.kek,
            patch["state"],
            (STATE_FLAG,),
            lambda: provider.kek_unavailable(nodes),
            f"{key}.state",
        )
    if "ekmip_reachability" in patch:
        changes["ekmip"] = merge_ekmip(config, patch["ekmip_reachability"], nodes, key)
    return dataclasses.replace(config, **changes) if changes else config


def merge(provider: Provider, state: ClusterState, patch: Any) -> ClusterState:
    """Return the cluster with a ``<provider>_kms`` patch or declaration merged.

    A list declares the provider's configurations (it replaces them: ``[]`` removes them all); a
    mapping ``{"<uuid>" or "*": {...}}`` patches the checks of existing ones.
    """
    key = provider.patch_key
    if state.version < provider.since:
        raise StateError(
            key,
            f"{provider.path} exists from ONTAP {_release(provider.since)}, "
            f"{state.name} runs {state.release}",
        )
    others = tuple(c for c in state.cloud_kms if c.provider != provider.keystore_type)
    if isinstance(patch, list):
        configs = declare(provider, state, patch, key)
        return dataclasses.replace(state, cloud_kms=others + configs)
    if not isinstance(patch, Mapping):
        raise StateError(key, "expected a list of configurations or a mapping of uuid to patch")
    merged = merge_each(
        state.cloud(provider.keystore_type),
        lambda config: config.uuid,
        patch,
        key,
        f"{provider.title} configuration",
        lambda config, entry, where: merge_config(provider, config, entry, state, where),
    )
    return dataclasses.replace(state, cloud_kms=others + merged)


DECLARE_KEYS = ("uuid", "svm", "svm_uuid", "scope", "configuration")


def declare(
    provider: Provider, state: ClusterState, entries: list[Any], key: str
) -> tuple[CloudKms, ...]:
    """Return the configurations a list describes; what an entry leaves out is generated."""
    rng = random.Random(f"akv-sim:{provider.keystore_type}:{state.name}")
    configs = []
    for index, entry in enumerate(entries):
        where = f"{key}[{index}]"
        if not isinstance(entry, Mapping):
            raise StateError(where, "expected a mapping")
        check_keys(entry, (*DECLARE_KEYS, *provider.fields, *status_keys(provider)), where)
        svm = parse_text(entry.get("svm") or "", f"{where}.svm")
        scope = entry.get("scope", "svm" if svm else "cluster")
        if scope not in ("svm", "cluster") or (scope == "svm") != bool(svm):
            raise StateError(f"{where}.scope", "svm needs an SVM name, cluster none")
        svm_uuid = next((c.svm_uuid for c in configs if c.svm_name == svm), None)
        config = make_config(provider, rng, state.name, svm, svm_uuid or _svm_uuid(state, svm, rng))
        values: dict[str, Any] = {}
        for name, attribute in (("uuid", "uuid"), ("svm_uuid", "svm_uuid")):
            if name in entry:
                values[attribute] = parse_text(entry[name], f"{where}.{name}")
        if "configuration" in entry:
            values["configuration_name"] = parse_text(
                entry["configuration"], f"{where}.configuration"
            )
        attributes = dict(config.attributes)
        for name in provider.fields:
            if name in entry:
                value = entry[name]
                if not isinstance(value, str | int | bool):
                    raise StateError(f"{where}.{name}", "expected a string, number or boolean")
                attributes[name] = value
        values["attributes"] = tuple(attributes.items())
        config = dataclasses.replace(config, **values)
        status = {name: entry[name] for name in status_keys(provider) if name in entry}
        configs.append(merge_config(provider, config, status, state, where))
    uuids = [c.uuid for c in configs]
    if len(set(uuids)) != len(uuids):
        raise StateError(key, f"{provider.title} uuids must be unique")
    return tuple(configs)


def make_config(
    provider: Provider, rng: random.Random, cluster: str, svm: str, svm_uuid: str
) -> CloudKms:
    """Return one healthy configuration with plausible fields."""
    prefix = "-".join(cluster.split("-")[:2])
    word = "".join(c for c in (svm.removeprefix("svm_") or "admin") if c.isalnum())[:8] or "svm"
    return CloudKms(
        provider=provider.keystore_type,
        uuid=ontap_uuid(rng),
        svm_name=svm,
        svm_uuid=svm_uuid,
        attributes=provider.generate(rng, prefix, word.lower()),
    )


def _svm_uuid(state: ClusterState, svm: str, rng: random.Random) -> str:
    if not svm:
        return ""
    known = [a.svm_uuid for a in (*state.akvs, *state.cloud_kms) if a.svm_name == svm]
    known += [v.svm_uuid for v in state.volumes if v.svm == svm]
    return known[0] if known else ontap_uuid(rng)


def _release(version: Version) -> str:
    return ".".join(str(part) for part in version[:2]) + ".1"
