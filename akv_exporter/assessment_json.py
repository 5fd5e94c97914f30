"""The fleet's assessment as the ``GET /api/v1/status`` document (docs/api.md).

The check command's ``--json`` prints the same document. Every key manager's configurations
appear under its kind's JSON key (``KEY_MANAGER_WORDS``), its checks under its key service's name.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from akv_exporter.assessment import KEY_MANAGER_WORDS, ClusterView, FleetStatus, KeyManagerView
from akv_exporter.ontap.ems import EmsEvent
from akv_exporter.ontap.key_manager_endpoint import Check
from akv_exporter.ontap.key_manager_registry import BY_KIND
from akv_exporter.snapshot import PollOutcome


def to_json(fleet: FleetStatus) -> dict[str, Any]:
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


def _check_json(check: Check | None, flag: str) -> dict[str, Any] | None:
    if check is None:
        return None
    return {flag: check.ok, "code": check.code, "message": check.message}


def _outcome_json(outcome: PollOutcome) -> dict[str, Any]:
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
    service = BY_KIND[status.kind].service
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
        service: _check_json(status.service, "reachable"),
        "kek": _check_json(status.kek, "available"),
        "ekmip": [
            {
                "node": node.node,
                "node_uuid": node.node_uuid,
                "reachable": node.ok,
                "code": node.code,
                "message": node.message,
            }
            for node in status.ekmip
        ],
        f"{service}_unreachable_since": view.unreachable_since,
        "volumes_offline_deadline": view.volumes_offline_deadline,
        "volume_offline_policy": view.policy,
        "encrypted_volumes": view.encrypted_volumes,
        "volumes_at_stake": view.volumes_at_stake,
        "volumes_offline": view.volumes_offline,
        "svms": svms,
        # The same SVMs only while the key service is unreachable: what the summary counts.
        "svms_at_stake": svms if svms is None or view.service_unreachable else [],
    }


def _event_json(event: EmsEvent) -> dict[str, Any]:
    return {
        "node": event.node,
        "index": event.index,
        "time": event.time,
        "name": event.name,
        "severity": event.severity,
        "log_message": event.log_message,
    }


def _blast_radius_json(view: ClusterView) -> dict[str, Any]:
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


def _cluster_json(view: ClusterView) -> dict[str, Any]:
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
            for kind in KEY_MANAGER_WORDS
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
        else {"event": expired.name, "node": expired.node, "time": expired.last_time},
    }
