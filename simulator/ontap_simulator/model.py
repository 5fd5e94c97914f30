"""The simulated fleet's state: frozen values, replaced whole on every change.

A cluster's state is one ``ClusterState``; a PATCH from the control API, a scenario file's
status entries and an incident all go through ``apply_patch`` (or its parts), so the shorthand
rules (``{"reachable": false}`` fills in ONTAP's code and message) hold everywhere alike.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ontap_simulator.verdict import KeyManagerConfig, PastEvent, SvmVolumes

T = TypeVar("T")

CODE_OK = "0"
CODE_AZURE_UNREACHABLE = "65537549"
CODE_KEK_UNAVAILABLE = "65537551"
CODE_EKMIP_UNAVAILABLE = "65537552"

# The simulator's own wording for why a KEK is unavailable; ONTAP's text around it is real.
DEFAULT_KEK_REASON = "Unable to unwrap the top-level KEK using the Azure Key Vault key."
DEFAULT_AZURE_REASON = "Connection timed out"

NODE_STATES = ("up", "booting", "down", "taken_over", "waiting_for_giveback", "degraded", "unknown")
STATE_FIELDS = ("available", "cluster_state")
CODE_TYPES = ("string", "int")
AUTHENTICATION_METHODS = ("client_secret", "certificate")


def ontap_uuid(rng: random.Random) -> str:
    """Return a uuid shaped like ONTAP's (time-based, a NetApp MAC in the node part)."""
    return (
        f"{rng.getrandbits(32):08x}-{rng.getrandbits(16):04x}-11{rng.choice('abcdef')}"
        f"{rng.randrange(10)}-{0x8000 | rng.getrandbits(14):04x}-00a098{rng.getrandbits(24):06x}"
    )


class StateError(ValueError):
    """A patch, scenario entry or fault that cannot apply; ``key`` names where, dotted."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"{key}: {reason}" if key else reason)
        self.key = key
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Status:
    """One ONTAP check: ok (reachable / available), its code and its message."""

    ok: bool = True
    code: str = CODE_OK
    message: str = ""


HEALTHY = Status()


def azure_unreachable(vault: str, reason: str = DEFAULT_AZURE_REASON) -> Status:
    """Return the status ONTAP reports when the vault cannot be reached from every node."""
    return Status(
        False,
        CODE_AZURE_UNREACHABLE,
        "AKV service is not reachable from all nodes - reason: "
        f"Unable to connect to {vault} : {reason}",
    )


def ekmip_unavailable() -> Status:
    """Return the status ONTAP reports for a node whose embedded KMIP server does not answer."""
    return Status(False, CODE_EKMIP_UNAVAILABLE, "embedded KMIP server status unavailable on node.")


def kek_unavailable(nodes: Iterable[str], reason: str = DEFAULT_KEK_REASON) -> Status:
    """Return the status ONTAP reports when the wrapped KEK is missing on ``nodes``."""
    per_node = " ".join(f"Node: {node}. Reason: {reason}" for node in nodes)
    return Status(
        False,
        CODE_KEK_UNAVAILABLE,
        "Top-level internal key protection key (KEK) is unavailable on the following nodes "
        f"with the associated reasons: {per_node}",
    )


@dataclass(frozen=True, slots=True)
class Node:
    """One node of a simulated cluster; ``partner`` is its HA partner's name."""

    name: str
    uuid: str
    state: str = "up"
    model: str = "AFF-A400"
    serial_number: str = ""
    system_id: str = ""
    partner: str = ""


@dataclass(frozen=True, slots=True)
class Akv:
    """One AKV configuration and its three checks; ``ekmip`` lists only nodes not healthy."""

    uuid: str
    svm_name: str  # "" for the cluster-scoped (admin SVM) configuration
    svm_uuid: str
    vault: str  # ONTAP's `name`: the vault URI
    key_id: str
    client_id: str
    tenant_id: str
    authentication_method: str = "client_secret"
    enabled: bool = True
    configuration_name: str = "default"
    proxy_type: str = ""
    proxy_host: str = ""
    proxy_port: int = 0
    proxy_username: str = ""
    azure: Status = HEALTHY
    kek: Status = HEALTHY
    # Node name -> status. Never mutated: every change builds a new dict.
    ekmip: Mapping[str, Status] = field(default_factory=dict)

    @property
    def scope(self) -> str:
        return "svm" if self.svm_name else "cluster"

    def ekmip_of(self, node: str) -> Status:
        """Return the node's EKMIP status (healthy unless set)."""
        return self.ekmip.get(node, HEALTHY)


@dataclass(frozen=True, slots=True)
class CloudKms:
    """One Google Cloud KMS, AWS KMS or Barbican configuration and its checks (cloud_kms.py).

    ``provider`` is ONTAP's keystore type (``gcp``, ``aws``, ``barbican``); ``attributes`` are
    the provider's own ordinary fields in record order (project_id, region, keystone_url...);
    ``service`` is the provider's ``<service>_reachability``; ``ekmip`` lists only nodes not
    healthy (Barbican has no EKMIP).
    """

    provider: str
    uuid: str
    svm_name: str  # "" for the cluster-scoped configuration
    svm_uuid: str
    attributes: tuple[tuple[str, Any], ...] = ()
    enabled: bool = True  # only Barbican reports it; GCP and AWS configurations are always on
    configuration_name: str = "default"
    service: Status = HEALTHY
    kek: Status = HEALTHY
    ekmip: Mapping[str, Status] = field(default_factory=dict)

    @property
    def scope(self) -> str:
        return "svm" if self.svm_name else "cluster"

    def attribute(self, name: str, default: Any = "") -> Any:
        """Return one of the provider's own fields."""
        return next((value for key, value in self.attributes if key == name), default)

    def ekmip_of(self, node: str) -> Status:
        """Return the node's EKMIP status (healthy unless set)."""
        return self.ekmip.get(node, HEALTHY)


KEY_SERVER_STATES = ("available", "not_responding", "unknown")


@dataclass(frozen=True, slots=True)
class KmipServer:
    """One external KMIP key server of a key manager and how each node reaches it."""

    server: str  # "host:port"
    secondary_key_servers: str = ""  # comma-delimited, as ONTAP sends it on key-managers
    timeout: int = 25
    username: str = ""
    # Node name -> key_server_state; a node left out is "available". Never mutated.
    node_states: Mapping[str, str] = field(default_factory=dict)
    # None: ONTAP's meaning, true when the server is available on every node.
    cluster_availability: bool | None = None

    def state_of(self, node: str) -> str:
        return self.node_states.get(node, "available")


# ONTAP's healthy key-manager status (NetApp's example: "No action needed at this time.").
KEY_MANAGER_OK_CODE = 65537200
KEY_MANAGER_OK_MESSAGE = "No action needed at this time."


@dataclass(frozen=True, slots=True)
class KeyManager:
    """One entry of /api/security/key-managers: external KMIP servers or the Onboard Key Manager."""

    uuid: str
    kind: str  # "kmip" (external) or "okm" (onboard)
    svm_name: str = ""  # "" for the cluster (admin SVM); OKM is cluster-scoped only
    svm_uuid: str = ""
    enabled: bool = True
    configuration_name: str = "default"
    status_code: int = KEY_MANAGER_OK_CODE
    status_message: str = KEY_MANAGER_OK_MESSAGE
    servers: tuple[KmipServer, ...] = ()
    client_certificate: str = ""
    server_ca_certificates: tuple[str, ...] = ()
    key_backup: str = ""  # OKM's backup block: fake key material, never asked for by the exporter

    @property
    def scope(self) -> str:
        return "svm" if self.svm_name else "cluster"


@dataclass(frozen=True, slots=True)
class Faults:
    """How a cluster misbehaves; the defaults mean it behaves."""

    latency_s: float = 0.0
    http_status: int | None = None
    retry_after_s: float | None = None
    hang: bool = False
    drop_connection: bool = False
    malformed_body: bool = False
    auth_reject: bool = False
    state_field: str | None = None  # None: the release's own (cluster_state before 9.10)
    code_type: str | None = None  # None: the release's own (int before 9.10)
    empty_pages: bool = False
    # GET azure-key-vaults answers with this error, one of the codes NetApp documents for it;
    # the others likewise for their endpoint (GET_ERRORS lists the codes).
    akv_error_code: str | None = None
    gcp_kms_error_code: str | None = None
    aws_kms_error_code: str | None = None
    barbican_kms_error_code: str | None = None
    key_managers_error_code: str | None = None
    key_stores_error_code: str | None = None

    def as_json(self) -> dict[str, Any]:
        """Return the faults that are set, as the control API shows them."""
        defaults = Faults()
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if getattr(self, f.name) != getattr(defaults, f.name)
        }


@dataclass(frozen=True, slots=True)
class ClusterState:
    """Everything one simulated cluster answers from."""

    name: str
    uuid: str
    version: tuple[int, int, int]
    nodes: tuple[Node, ...]
    akvs: tuple[Akv, ...]
    username: str = "admin"
    password: str = "netapp1!"
    faults: Faults = Faults()
    # GET /api/security/key-manager-configs; None: NetApp's defaults (key_manager_configs.py).
    key_manager_config: KeyManagerConfig | None = None
    # GET /api/storage/volumes, per SVM (volumes.py).
    volumes: tuple[SvmVolumes, ...] = ()
    # The EMS log's first entries (ems.py); the log itself lives beside the state, it only grows.
    ems_history: tuple[PastEvent, ...] = ()
    # GCP, AWS and Barbican configurations (cloud_kms.py), in that order of providers.
    cloud_kms: tuple[CloudKms, ...] = ()
    # External KMIP and Onboard Key Manager entries (key_managers.py).
    key_managers: tuple[KeyManager, ...] = ()
    # Key store uuid -> a `state` that is not the derived one (key_stores.py); never mutated.
    key_store_states: Mapping[str, str] = field(default_factory=dict)

    @property
    def release(self) -> str:
        return ".".join(str(part) for part in self.version)

    def akv(self, uuid: str) -> Akv | None:
        """Return the configuration with this uuid, None if there is none."""
        return next((a for a in self.akvs if a.uuid == uuid), None)

    def active(self, akv: Akv | CloudKms) -> bool:
        """Return whether ONTAP computes checks for it (before 9.14 every configuration is)."""
        return akv.enabled or self.version < (9, 14, 0)

    def cloud(self, provider: str) -> tuple[CloudKms, ...]:
        """Return the configurations of one cloud provider (``gcp``, ``aws``, ``barbican``)."""
        return tuple(c for c in self.cloud_kms if c.provider == provider)

    def svms_with_own_key_manager(self) -> set[str]:
        """Return the SVMs with an active SVM-scoped configuration of any key manager."""
        own = {a.svm_name for a in self.akvs if a.svm_name and self.active(a)}
        own.update(c.svm_name for c in self.cloud_kms if c.svm_name and self.active(c))
        own.update(k.svm_name for k in self.key_managers if k.svm_name and k.enabled)
        return own


# --- parsing and merging patches -------------------------------------------------------------

# Patch keys beyond "akvs" and "faults": each endpoint module registers the key it owns and the
# function merging it (ClusterState, patch value) -> ClusterState, so the control API and the
# scenario files accept it alike. Filled when those modules are imported (server.py does).
PATCH_EXTENSIONS: dict[str, Callable[[ClusterState, Any], ClusterState]] = {}

STATUS_FLAGS = {
    "azure_reachability": ("reachable",),
    "state": ("available", "cluster_state"),
    "ekmip_reachability": ("reachable",),
}
AKV_PATCH_KEYS = ("enabled", "azure_reachability", "state", "ekmip_reachability")
FAULT_KEYS = tuple(f.name for f in dataclasses.fields(Faults))


def _mapping(value: Any, key: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise StateError(key, f"expected a mapping, got {_kind(value)}")
    return value


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def check_keys(value: Mapping[str, Any], allowed: Iterable[str], prefix: str) -> None:
    """Raise StateError naming the first key of ``value`` not in ``allowed``."""
    allowed = tuple(allowed)
    for key in value:
        if key not in allowed:
            raise StateError(
                _join(prefix, str(key)), f"unknown key (expected one of {', '.join(allowed)})"
            )


def parse_bool(value: Any, key: str) -> bool:
    """Return ``value`` if it is a boolean; StateError otherwise."""
    if not isinstance(value, bool):
        raise StateError(key, f"expected true or false, got {_kind(value)}")
    return value


def parse_int(value: Any, low: int, high: int, key: str) -> int:
    """Return ``value`` if it is a whole number from ``low`` to ``high``; StateError otherwise."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise StateError(key, f"expected a whole number {low}-{high}, got {value!r}")
    return value


def parse_code(value: Any, key: str) -> str:
    """Return an ONTAP code (a number, or its decimal string) as a string."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str) and value.strip().isdigit():
        return str(int(value))
    raise StateError(key, f"expected a numeric code, got {value!r}")


def parse_text(value: Any, key: str) -> str:
    """Return ``value`` if it is a string; StateError otherwise."""
    if not isinstance(value, str):
        raise StateError(key, f"expected a string, got {_kind(value)}")
    return value


def merge_each(
    items: Sequence[T],
    name_of: Callable[[T], str],
    patch: Mapping[str, Any],
    key: str,
    what: str,
    merge: Callable[[T, Any, str], T],
) -> tuple[T, ...]:
    """Return ``items`` with a ``{"<name>" or "*": {...}}`` patch merged by ``merge(item, entry,
    key)``: "*" into every item first, then a named one; StateError for a name no item has
    ("no such <what>")."""
    names = {name_of(item) for item in items}
    for name in patch:
        if name != "*" and name not in names:
            raise StateError(_join(key, str(name)), f"no such {what}")
    merged = []
    for item in items:
        for name in ("*", name_of(item)):
            if name in patch:
                item = merge(item, patch[name], _join(key, name))
        merged.append(item)
    return tuple(merged)


def merge_status(
    current: Status,
    patch: Any,
    flags: tuple[str, ...],
    failing: Callable[[], Status],
    key: str,
) -> Status:
    """Return ``current`` with the patch applied; a flip of the flag fills in code and message.

    ``{"reachable": false}`` alone gives ONTAP's failure code and message (from ``failing``);
    ``{"reachable": true}`` alone gives code "0" and an empty message. An explicit ``code`` or
    ``message`` always wins.
    """
    patch = _mapping(patch, key)
    check_keys(patch, (*flags, "code", "message"), key)
    given = [flag for flag in flags if flag in patch]
    if len(given) > 1:
        raise StateError(key, f"give one of {' or '.join(flags)}, not both")
    ok = parse_bool(patch[given[0]], _join(key, given[0])) if given else current.ok
    # The flag flipped: start from the healthy or the failing status, not the old one.
    base = current if ok == current.ok else HEALTHY if ok else failing()
    code = parse_code(patch["code"], _join(key, "code")) if "code" in patch else base.code
    message = (
        parse_text(patch["message"], _join(key, "message")) if "message" in patch else base.message
    )
    return Status(ok, code, message)


def merge_akv(
    akv: Akv, patch: Any, nodes: tuple[Node, ...], version: tuple[int, int, int], key: str
) -> Akv:
    """Return ``akv`` with an AKV patch (enabled and the three checks) applied."""
    patch = _mapping(patch, key)
    check_keys(patch, AKV_PATCH_KEYS, key)
    changes: dict[str, Any] = {}
    node_names = [node.name for node in nodes]
    if "enabled" in patch:
        enabled = parse_bool(patch["enabled"], _join(key, "enabled"))
        if not enabled and version < (9, 14, 0):
            raise StateError(
                _join(key, "enabled"),
                "inactive configurations exist from ONTAP 9.14 on, this cluster runs "
                + ".".join(str(part) for part in version),
            )
        changes["enabled"] = enabled
    if "azure_reachability" in patch:
        changes["azure"] = merge_status(
            akv.azure,
            patch["azure_reachability"],
            STATUS_FLAGS["azure_reachability"],
            lambda: azure_unreachable(akv.vault),
            _join(key, "azure_reachability"),
        )
    if "state" in patch:
        changes["kek"] = merge_status(
            akv.kek,
            patch["state"],
            STATUS_FLAGS["state"],
            lambda: kek_unavailable(node_names),
            _join(key, "state"),
        )
    if "ekmip_reachability" in patch:
        changes["ekmip"] = merge_ekmip(akv, patch["ekmip_reachability"], node_names, key)
    return dataclasses.replace(akv, **changes) if changes else akv


def merge_ekmip(akv: Akv, patch: Any, node_names: list[str], key: str) -> dict[str, Status]:
    """Return the AKV's per-node EKMIP statuses with ``{"<node>" or "*": {...}}`` applied."""
    key = _join(key, "ekmip_reachability")
    patch = _mapping(patch, key)
    ekmip = dict(akv.ekmip)
    # "*" first so that a named node in the same patch overrides it.
    for name in sorted(patch, key=lambda n: n != "*"):
        targets = node_names if name == "*" else [name]
        if name != "*" and name not in node_names:
            raise StateError(_join(key, name), f"no such node (nodes: {', '.join(node_names)})")
        for node in targets:
            status = merge_status(
                ekmip.get(node, HEALTHY),
                patch[name],
                STATUS_FLAGS["ekmip_reachability"],
                ekmip_unavailable,
                _join(key, name),
            )
            if status == HEALTHY:
                ekmip.pop(node, None)
            else:
                ekmip[node] = status
    return ekmip


# The errors NetApp documents for GET /api/security/azure-key-vaults, in its words.
AKV_GET_ERRORS = {
    "65537549": "The Azure Key Vault Key Management Service is unreachable from one or more nodes.",
    "65537551": "Top-level internal key protection key (KEK) unavailable on one or more nodes.",
    "65537552": "Embedded KMIP server status not available.",
}


# The errors NetApp documents for the other key-manager GETs, in its words
# (../shared/reference/ontap-key-managers.md lists each page). Key-managers: the instance GET's.
GET_ERRORS: dict[str, dict[str, str]] = {
    "akv_error_code": AKV_GET_ERRORS,
    "gcp_kms_error_code": {
        "65537551": AKV_GET_ERRORS["65537551"],
        "65537552": AKV_GET_ERRORS["65537552"],
        "65537730": "The Google Cloud Key Management Service is unreachable from one or more "
        "nodes.",
    },
    "aws_kms_error_code": {
        "65537551": AKV_GET_ERRORS["65537551"],
        "65537552": AKV_GET_ERRORS["65537552"],
        "65537915": "The Amazon Web Service Key Management Service is unreachable from one or "
        "more nodes.",
    },
    "barbican_kms_error_code": {
        "65539801": "The Barbican Key Management Service is unreachable from one or more nodes.",
    },
    "key_managers_error_code": {
        "65537201": "There are no key servers configured for this SVM in the local cluster.",
        "65537202": "There are no key servers configured for this SVM in the remote cluster.",
        "65537203": "Internal error. Failed to check for key servers on partner cluster.",
    },
    "key_stores_error_code": {"13434920": "SVM does not exist."},
}


def error_fault(name: str) -> Callable[[ClusterState], tuple[str, str] | None]:
    """Return an endpoint's ``refusal``: the GET error the cluster's fault ``name`` names
    (code, NetApp's words), None while the fault is not set."""

    def refusal(cluster: ClusterState) -> tuple[str, str] | None:
        code = getattr(cluster.faults, name)
        return None if code is None else (code, GET_ERRORS[name][code])

    return refusal


def merge_faults(faults: Faults, patch: Any, key: str = "faults") -> Faults:
    """Return ``faults`` with a faults patch applied; null or false removes a fault."""
    patch = _mapping(patch, key)
    check_keys(patch, FAULT_KEYS, key)
    defaults = Faults()
    changes: dict[str, Any] = {}
    for name, value in patch.items():
        where = _join(key, name)
        if value is None or value is False:
            changes[name] = getattr(defaults, name)
        elif name in ("latency_s", "retry_after_s"):
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise StateError(where, f"expected a number of seconds >= 0, got {value!r}")
            changes[name] = float(value)
        elif name == "http_status":
            if isinstance(value, bool) or not isinstance(value, int) or not 400 <= value <= 599:
                raise StateError(where, f"expected an HTTP error status 400-599, got {value!r}")
            changes[name] = value
        elif name == "state_field":
            changes[name] = _choice(value, STATE_FIELDS, where)
        elif name == "code_type":
            changes[name] = _choice(value, CODE_TYPES, where)
        elif name in GET_ERRORS:
            changes[name] = _choice(str(value), tuple(GET_ERRORS[name]), where)
        else:
            changes[name] = parse_bool(value, where)
    return dataclasses.replace(faults, **changes)


def _choice(value: Any, choices: tuple[str, ...], key: str) -> str:
    if value not in choices:
        raise StateError(key, f"expected one of {', '.join(choices)}, got {value!r}")
    return value


def apply_patch(cluster: ClusterState, patch: Any) -> ClusterState:
    """Return the cluster with a control-API patch ``{"akvs": {...}, "faults": {...}}`` merged.

    The keys of PATCH_EXTENSIONS (``key_manager_config``, ``volumes``) merge after these two.
    """
    patch = _mapping(patch, "")
    check_keys(patch, ("akvs", "faults", *PATCH_EXTENSIONS), "")
    changes: dict[str, Any] = {}
    if "akvs" in patch:
        changes["akvs"] = merge_each(
            cluster.akvs,
            lambda akv: akv.uuid,
            _mapping(patch["akvs"], "akvs"),
            "akvs",
            f"AKV configuration on {cluster.name}",
            lambda akv, entry, key: merge_akv(akv, entry, cluster.nodes, cluster.version, key),
        )
    if "faults" in patch:
        changes["faults"] = merge_faults(cluster.faults, patch["faults"])
    cluster = dataclasses.replace(cluster, **changes) if changes else cluster
    for key, merge in PATCH_EXTENSIONS.items():
        if key in patch:
            cluster = merge(cluster, patch[key])
    return cluster
