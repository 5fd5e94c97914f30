"""The fleet's assessment as the ``GET /api/v1/status`` document, and the document's model.

The check command's ``--json`` prints the same document. The TypedDicts below describe it field by
field; docs/status.schema.json is generated from them (``make generated``), so the schema is
what this module writes. Every key manager's configurations appear under its kind's JSON key
(``KEY_MANAGER_WORDS``), its key-service check under its service's name (``azure``).
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any, TypedDict

from akv_exporter.assessment import (
    CONFIGURATION_STATES,
    KEY_EXPIRED_EVENT,
    KEY_MANAGER_WORDS,
    POLICIES,
    STATES,
    ClusterView,
    FleetStatus,
    KeyManagerView,
    Summary,
)
from akv_exporter.json_schema import Doc, document_schema
from akv_exporter.ontap.ems import EmsEvent
from akv_exporter.ontap.key_manager_endpoint import Check, KeyManagerStatus
from akv_exporter.ontap.key_manager_registry import BY_KIND, PROVIDERS
from akv_exporter.snapshot import REASONS, PollOutcome

# --- the document's model -----------------------------------------------------------------------

UnixTime = Annotated[float, Doc("Unix time, seconds")]
MaybeUnixTime = Annotated[float | None, Doc("Unix time, seconds; null when not known")]
Count = Annotated[int, Doc(minimum=0)]
Policy = Annotated[
    str,
    Doc(
        "ONTAP's health_monitor_policy.akv.manage_volume_offline: true, false, or not known "
        "(release without the policy, not polled yet)",
        values=POLICIES,
    ),
]


class Poll(TypedDict):
    """One attempt to poll a cluster."""

    started: UnixTime
    duration: Annotated[float, Doc("seconds", minimum=0)]
    ok: bool
    reason: Annotated[str | None, Doc("why the poll failed; null on success", values=REASONS)]
    error: Annotated[str, Doc("one line naming endpoint and cause; empty on success")]
    skipped_records: Count


class ServiceCheck(TypedDict):
    """ONTAP's answer whether every node reaches the key service."""

    reachable: bool
    code: str
    message: str


class KekCheck(TypedDict):
    """ONTAP's answer whether the wrapped KEK is available on every node."""

    available: bool
    code: str
    message: str


class NodeReachability(TypedDict):
    """One node's reachability of the embedded KMIP server."""

    node: str
    node_uuid: str
    reachable: bool
    code: str
    message: str


class SetupCheck(TypedDict):
    """ONTAP's key-manager status: ok when its code is 0 or 65537200 ("No action needed at this
    time.")."""

    ok: bool
    code: str
    message: str


class ServerNode(TypedDict):
    """One node's connectivity to one external key server (ONTAP's node_states, 9.13.1+)."""

    node: str
    node_uuid: str
    state: Annotated[str, Doc(values=("available", "not_responding", "unknown"))]


class KeyServer(TypedDict):
    """One external KMIP key server and ONTAP's word on its connectivity."""

    server: Annotated[str, Doc("host:port")]
    cluster_available: Annotated[
        bool | None, Doc("connectivity.cluster_availability; null when ONTAP did not say")
    ]
    nodes: list[ServerNode]
    unreachable_since: MaybeUnixTime


class SvmVolumes(TypedDict):
    """An SVM whose keys the configuration holds, with its encrypted volumes."""

    svm: str
    encrypted_volumes: Count
    offline_volumes: Count


def _configuration_model(kind: str) -> type:
    """Return the model of one configuration of ``kind``: its fields follow its declarations."""
    provider = BY_KIND[kind]
    words, endpoint, metrics = provider.words, provider.endpoint, provider.metrics
    service, title = endpoint.service, words.title
    svms = "the SVMs whose keys this configuration holds (its SVM, or for a cluster-scoped one "
    svms += "every SVM without its own)"
    checks: dict[str, Any] = {}
    if metrics.service is not None:
        checks[service] = Annotated[
            ServiceCheck | None,
            Doc(f"{endpoint.service_field}; null when ONTAP did not report it"),
        ]
    if metrics.kek is not None:
        checks["kek"] = Annotated[
            KekCheck | None, Doc("state.available (or state.cluster_state); null when not reported")
        ]
    if metrics.ekmip is not None:
        checks["ekmip"] = list[NodeReachability]
    if metrics.setup is not None:
        checks["setup"] = Annotated[SetupCheck | None, Doc("status; null when not reported")]
    if metrics.server_reachable is not None:
        checks["servers"] = list[KeyServer]
    if metrics.service is not None:
        checks[provider.streak_field] = MaybeUnixTime
    states = (*((provider.unreachable_state,) if metrics.service else ()), *CONFIGURATION_STATES)
    fields: dict[str, Any] = {
        "uuid": str,
        "svm": Annotated[str, Doc("empty for a cluster-scoped configuration")],
        "scope": str,
        "enabled": bool | None,
        **dict.fromkeys(words.details, str),
        "state": Annotated[str, Doc(values=states)],
        **checks,
        "volumes_offline_deadline": Annotated[
            float | None,
            Doc(
                f"Unix time: the streak start + 60 minutes; null when {words.short} is reachable "
                "or ONTAP's policy keeps volumes online"
            ),
        ],
        "volume_offline_policy": Policy,
        "encrypted_volumes": Annotated[
            int | None, Doc(f"encrypted volumes of {svms}; null when not known", minimum=0)
        ],
        "volumes_at_stake": Annotated[
            int | None,
            Doc(
                f"encrypted_volumes while this configuration cannot reach {words.short} "
                f"({service}.reachable false, the rule of summary.volumes_at_stake), else 0; "
                "null when not known",
                minimum=0,
            ),
        ],
        "volumes_offline": Annotated[int | None, Doc("of encrypted_volumes, offline", minimum=0)],
        "svms": Annotated[
            list[SvmVolumes] | None, Doc(f"{svms}, with encrypted volumes; null when not known")
        ],
        "svms_at_stake": Annotated[
            list[SvmVolumes] | None,
            Doc(
                f"svms while this configuration cannot reach {words.short} (as "
                "volumes_at_stake), else empty; null when not known"
            ),
        ],
    }
    model_name = "".join(words.name.title().split())  # "Akv", "GoogleCloudKms"
    model = TypedDict(f"{model_name}Configuration", fields)  # type: ignore[misc]
    model.__doc__ = f"One {words.name} configuration ({title}) as ONTAP last reported it."
    return model


class Ontap(TypedDict):
    """The cluster's identity, from GET /api/cluster."""

    name: str
    uuid: str
    version: str
    version_full: str


class GetError(TypedDict):
    """ONTAP's answer to a key manager's GET with an error NetApp documents for it."""

    code: str
    message: str


class HealthMonitorPolicy(TypedDict):
    """One key manager's entry of ONTAP's health_monitor_policy."""

    key_manager: str
    enabled: bool | None
    manage_volume_offline: bool | None


class Event(TypedDict):
    """One EMS event as ONTAP logged it."""

    node: str
    index: int
    time: Annotated[float, Doc("ONTAP's time of the event, Unix seconds")]
    name: Annotated[str, Doc("message.name, e.g. ekmip.akv.volOffline")]
    severity: str
    log_message: str


class KeyManagerSettings(TypedDict):
    """From GET /api/security/key-manager-configs, /api/storage/volumes and
    /api/support/ems/events (slow polls)."""

    volume_offline_policy: Policy
    policy_note: Annotated[
        str, Doc("why the policy is unknown, e.g. 'unknown on ONTAP 9.9.1'; empty when known")
    ]
    health_monitor_interval_minutes: Annotated[int | None, Doc("health_monitor_polling_interval")]
    policies: list[HealthMonitorPolicy]
    volumes_as_of: Annotated[float | None, Doc("when the encrypted volumes were polled, Unix time")]
    recent_events: Annotated[
        list[Event], Doc("ONTAP's recent ekmip.akv.* EMS events, newest first")
    ]
    endpoint_errors: Annotated[
        dict[str, str], Doc("endpoint -> the last error of a slow poll that is failing now")
    ]


class KeyExpired(TypedDict):
    """The latest ekmip.akv.keyExpired ONTAP logged in the last 24 hours (the window of the
    alert OntapAkvKeyExpired) that no ekmip.akv.keyVersionChanged for the same SVM followed,
    while the cluster answers."""

    event: Annotated[str, Doc(values=(KEY_EXPIRED_EVENT,))]
    node: str
    svm: Annotated[str, Doc("the SVM the event names (its svm parameter); empty when none")]
    time: Annotated[float, Doc("ONTAP's time of the latest such event (Unix seconds)")]


def _get_error_doc(kind: str) -> Doc:
    endpoint, words = BY_KIND[kind].endpoint, KEY_MANAGER_WORDS[kind]
    codes = ", ".join(sorted(endpoint.get_errors))
    return Doc(
        f"Set while ONTAP answers GET {endpoint.path} with an error code NetApp documents for "
        f"it ({codes}); {words.json_key} are then the last known."
    )


# The kinds whose GET has errors NetApp documents (each gets a `<kind>_error`).
ERROR_KINDS = tuple(p.kind for p in PROVIDERS if p.endpoint.get_errors)
# A cluster lists every kind's configurations under the kind's own keys.
Cluster = TypedDict(  # type: ignore[misc]
    "Cluster",
    {
        "name": str,
        "address": str,
        "labels": dict[str, str],
        "state": Annotated[str, Doc(values=STATES)],
        "problems": list[str],
        "notes": Annotated[
            list[str],
            Doc("informational lines, never a problem: one per inactive configuration"),
        ],
        "up": bool,
        "ontap": Ontap | None,
        "last_success": MaybeUnixTime,
        "akvs_as_of": MaybeUnixTime,
        "last_poll": Poll | None,
        "history": list[Poll],
        "poll_errors": Annotated[dict[str, int], Doc(minimum=0, keys=REASONS)],
        **{
            f"{kind}_error": Annotated[GetError | None, _get_error_doc(kind)]
            for kind in ERROR_KINDS
        },
        **{
            words.json_key: list[_configuration_model(kind)]  # type: ignore[misc]
            for kind, words in KEY_MANAGER_WORDS.items()
        },
        "key_manager": KeyManagerSettings,
        "key_expired": Annotated[KeyExpired | None, Doc("null: none")],
    },
)
Cluster.__doc__ = "One cluster: its last poll, state, problems and key-manager configurations."


class Shard(TypedDict):
    """The shard this process polls (run --shard I --total-shards N); 0 of 1 unsharded."""

    ordinal: Count
    total: Annotated[int, Doc(minimum=1)]


class Exporter(TypedDict):
    """The exporter's own health."""

    version: str
    started_at: UnixTime
    config_reload_ok: bool
    last_reload_error: str | None
    shard: Shard
    configured_clusters: Annotated[
        int,
        Doc("clusters in the whole configuration; `clusters` lists only this shard's", minimum=0),
    ]


class StatusDocument(TypedDict):
    """GET /api/v1/status."""

    generated_at: UnixTime
    exporter: Exporter
    summary: Summary
    clusters: list[Cluster]  # type: ignore[valid-type]


def schema() -> dict[str, Any]:
    """Return docs/status.schema.json: the JSON Schema of ``StatusDocument``."""
    return document_schema(
        StatusDocument,
        title="akv-exporter GET /api/v1/status (and akv-exporter check --format json)",
        description="Exactly what this version sends (the exporter's tests validate every "
        "answer against it). Field names are stable within /api/v1: later versions may add "
        "fields (and update this file), never rename or remove one. See docs/api.md. "
        "Generated from akv_exporter/assessment_json.py by `make generated`.",
    )


# --- the document ---------------------------------------------------------------------------------


def to_json(fleet: FleetStatus) -> StatusDocument:
    """Return the ``GET /api/v1/status`` document (docs/api.md, docs/status.schema.json)."""
    exporter = fleet.exporter
    return {
        "generated_at": fleet.generated_at,
        "exporter": {
            "version": exporter.version,
            "started_at": exporter.started_at,
            "config_reload_ok": exporter.config_reload_ok,
            "last_reload_error": exporter.last_reload_error,
            "shard": {"ordinal": exporter.shard_ordinal, "total": exporter.total_shards},
            "configured_clusters": exporter.configured_clusters,
        },
        "summary": dataclasses.asdict(fleet.summary),
        "clusters": [_cluster_json(view) for view in fleet.clusters],
    }


def _check_json(check: Check | None, flag: str) -> Any:
    if check is None:
        return None
    return {flag: check.ok, "code": check.code, "message": check.message}


def _outcome_json(outcome: PollOutcome) -> Poll:
    return {
        "started": outcome.started,
        "duration": outcome.duration,
        "ok": outcome.ok,
        "reason": outcome.reason,
        "error": outcome.error,
        "skipped_records": outcome.skipped_records,
    }


def _key_manager_json(view: KeyManagerView) -> dict[str, Any]:
    """Return one configuration: ONTAP's fields and details, the check results, the state."""
    status = view.status
    provider = BY_KIND[status.kind]
    service, metrics = provider.endpoint.service, provider.metrics
    svms = (
        None
        if view.svms is None
        else [
            {"svm": svm.svm, "encrypted_volumes": svm.encrypted, "offline_volumes": svm.offline}
            for svm in view.svms
        ]
    )
    return {
        "uuid": status.uuid,
        "svm": status.svm,
        "scope": status.scope,
        "enabled": status.enabled,
        **dict(status.details),
        "state": view.state,
        # The checks this kind has (its provider's declaration), each under ONTAP's word.
        **({service: _check_json(status.service, "reachable")} if metrics.service else {}),
        **({"kek": _check_json(status.kek, "available")} if metrics.kek else {}),
        **({"ekmip": _ekmip_json(status)} if metrics.ekmip else {}),
        **({"setup": _check_json(status.setup, "ok")} if metrics.setup else {}),
        **({"servers": _servers_json(view)} if metrics.server_reachable else {}),
        **({provider.streak_field: view.unreachable_since} if metrics.service else {}),
        "volumes_offline_deadline": view.volumes_offline_deadline,
        "volume_offline_policy": view.policy,
        "encrypted_volumes": view.encrypted_volumes,
        "volumes_at_stake": view.volumes_at_stake,
        "volumes_offline": view.volumes_offline,
        "svms": svms,
        # The same SVMs only while the key service is unreachable: what the summary counts.
        "svms_at_stake": svms if svms is None or view.service_unreachable else [],
    }


def _ekmip_json(status: KeyManagerStatus) -> list[NodeReachability]:
    return [
        {
            "node": node.node,
            "node_uuid": node.node_uuid,
            "reachable": node.ok,
            "code": node.code,
            "message": node.message,
        }
        for node in status.ekmip
    ]


def _servers_json(view: KeyManagerView) -> list[KeyServer]:
    """Return the external key servers: ONTAP's connectivity, cluster-wide and per node."""
    return [
        {
            "server": server.server,
            "cluster_available": server.cluster_available,
            "nodes": [
                {"node": n.node, "node_uuid": n.node_uuid, "state": n.state} for n in server.nodes
            ],
            "unreachable_since": view.server_streaks.get(server.server),
        }
        for server in view.status.servers
    ]


def _event_json(event: EmsEvent) -> Event:
    return {
        "node": event.node,
        "index": event.index,
        "time": event.time,
        "name": event.name,
        "severity": event.severity,
        "log_message": event.log_message,
    }


def _blast_radius_json(view: ClusterView) -> KeyManagerSettings:
    blast = view.snapshot.blast
    config = blast.policy
    return {
        "volume_offline_policy": view.policy,
        "policy_note": view.policy_note,
        "health_monitor_interval_minutes": None
        if config is None
        else config.polling_interval_minutes,
        "policies": []
        if config is None
        else [
            {
                "key_manager": p.key_manager,
                "enabled": p.enabled,
                "manage_volume_offline": p.manage_volume_offline,
            }
            for p in config.policies
        ],
        "volumes_as_of": blast.volumes_as_of,
        "recent_events": [_event_json(event) for event in blast.recent_events],
        "endpoint_errors": dict(sorted(blast.last_error.items())),
    }


def _cluster_json(view: ClusterView) -> Cluster:
    snapshot = view.snapshot
    identity = snapshot.identity
    return {
        "name": snapshot.name,
        "address": snapshot.address,
        "labels": dict(snapshot.labels),
        "state": view.state,
        "problems": list(view.problems),
        "notes": list(view.notes),
        "up": snapshot.up,
        "ontap": None
        if identity is None
        else {
            "name": identity.name,
            "uuid": identity.uuid,
            "version": identity.version,
            "version_full": identity.version_full,
        },
        "last_success": snapshot.last_success,
        "akvs_as_of": snapshot.key_managers_as_of,
        "last_poll": None if snapshot.last is None else _outcome_json(snapshot.last),
        "history": [_outcome_json(outcome) for outcome in snapshot.history],
        "poll_errors": dict(snapshot.poll_errors),
        **{
            f"{kind}_error": None
            if (error := snapshot.refused.get(kind)) is None
            else {"code": error.code, "message": error.message}
            for kind in ERROR_KINDS
        },
        **{
            kind_words.json_key: [
                _key_manager_json(km) for km in view.key_managers if km.status.kind == kind
            ]
            for kind, kind_words in KEY_MANAGER_WORDS.items()
        },
        "key_manager": _blast_radius_json(view),
        "key_expired": None
        if (expired := view.key_expired) is None
        else {
            "event": expired.name,
            "node": expired.node,
            "svm": expired.svm,
            "time": expired.last_time,
        },
    }
