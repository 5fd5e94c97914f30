"""Snapshots -> the fleet's health: a state per cluster and configuration, problems, a summary.

The status page, ``GET /api/v1/status`` and the ``check`` command all read this one assessment,
so they never disagree about what is broken. States, most urgent first::

    down               the last poll got no valid answer (the cluster's state is unknown)
    azure_unreachable  a configuration cannot reach Azure Key Vault (the 60-minute clock runs)
    ekmip_unreachable  a node cannot reach its embedded KMIP server
    kek_unavailable    the vault-wrapped KEK is not available on every node
    pending            not polled yet
    unknown            ONTAP did not report a state (a field missing or null)
    inactive           a configuration that is not enabled: ONTAP reports no state for it
    healthy

Unknown is never healthy: a configuration is healthy only when ONTAP said so for Azure, the KEK
and at least one node's EKMIP reachability.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from akv_exporter.ontap.akv import GET_ERRORS, AkvStatus, Check
from akv_exporter.snapshot import ClusterSnapshot, PollOutcome

# ONTAP takes encrypted volumes offline after this long without Azure Key Vault.
VOLUMES_OFFLINE_AFTER = 3600.0

DOWN = "down"
AZURE_UNREACHABLE = "azure_unreachable"
EKMIP_UNREACHABLE = "ekmip_unreachable"
KEK_UNAVAILABLE = "kek_unavailable"
PENDING = "pending"
UNKNOWN = "unknown"
INACTIVE = "inactive"
HEALTHY = "healthy"
STATES = (
    DOWN,
    AZURE_UNREACHABLE,
    EKMIP_UNREACHABLE,
    KEK_UNAVAILABLE,
    PENDING,
    UNKNOWN,
    INACTIVE,
    HEALTHY,
)
_RANK = {state: rank for rank, state in enumerate(STATES)}


def urgency(state: str) -> int:
    """Return the sort rank of ``state``: 0 is the most urgent."""
    return _RANK[state]


def configuration_label(akv: AkvStatus) -> str:
    """Return how a configuration is named to people: its SVM, or "cluster" for the admin SVM."""
    return f"svm {akv.svm}" if akv.svm else "cluster"


@dataclass(frozen=True, slots=True)
class ExporterInfo:
    """The exporter's own health, as the status surfaces show it."""

    version: str
    started_at: float
    config_reload_ok: bool
    last_reload_error: str | None


@dataclass(frozen=True, slots=True)
class AkvView:
    """One AKV configuration with its state and, while Azure is unreachable, ONTAP's deadline."""

    akv: AkvStatus
    state: str
    azure_unreachable_since: float | None
    volumes_offline_deadline: float | None  # estimated: streak start + 60 minutes


@dataclass(frozen=True, slots=True)
class ClusterView:
    """One cluster: its snapshot, its most urgent state and one line per problem."""

    snapshot: ClusterSnapshot
    state: str
    problems: tuple[str, ...]
    akvs: tuple[AkvView, ...]

    @property
    def nodes(self) -> tuple[str, ...]:
        """Return every node any configuration reported EKMIP reachability for, sorted."""
        return tuple(sorted({n.node for view in self.akvs for n in view.akv.ekmip}))

    @property
    def ekmip_nodes_down(self) -> tuple[str, ...]:
        return tuple(sorted({n.node for v in self.akvs for n in v.akv.ekmip_unreachable}))


# The fleet's verdict, in the precedence the check command's exit codes follow (docs/check.md).
CRITICAL = "critical"
WARNING = "warning"
OK = "ok"


@dataclass(frozen=True, slots=True)
class Summary:
    """Counts over the fleet; configurations of a down cluster count as last known."""

    status: str  # CRITICAL, UNKNOWN, WARNING or OK: see verdict()
    clusters: int
    clusters_up: int
    clusters_down: int
    clusters_pending: int
    configurations: int
    configurations_unreachable: int
    configurations_ekmip_unreachable: int
    configurations_kek_unavailable: int
    configurations_unknown: int
    configurations_inactive: int
    ekmip_nodes_down: int  # distinct (cluster, node) pairs with any configuration unreachable
    clusters_akv_error: int  # answered the AKV GET with an AKV error code (ontap.akv.GET_ERRORS)


@dataclass(frozen=True, slots=True)
class FleetStatus:
    """The assessment of every cluster at ``generated_at``, in configuration order."""

    generated_at: float
    exporter: ExporterInfo
    summary: Summary
    clusters: tuple[ClusterView, ...]

    def by_urgency(self) -> list[ClusterView]:
        """Return the clusters most urgent first, then by name."""
        return sorted(self.clusters, key=lambda c: (urgency(c.state), c.snapshot.name))

    def to_json(self) -> dict[str, Any]:
        """Return the ``GET /api/v1/status`` document (docs/api.md, docs/status.schema.json)."""
        exporter = self.exporter
        return {
            "generated_at": self.generated_at,
            "exporter": {
                "version": exporter.version,
                "started_at": exporter.started_at,
                "config_reload_ok": exporter.config_reload_ok,
                "last_reload_error": exporter.last_reload_error,
            },
            "summary": dataclasses.asdict(self.summary),
            "clusters": [_cluster_json(view) for view in self.clusters],
        }


def akv_state(akv: AkvStatus) -> str:
    """Return the most urgent state of one configuration."""
    if akv.azure is not None and not akv.azure.ok:
        return AZURE_UNREACHABLE
    if akv.ekmip_unreachable:
        return EKMIP_UNREACHABLE
    if akv.kek is not None and not akv.kek.ok:
        return KEK_UNAVAILABLE
    if akv.enabled is False:
        return INACTIVE
    if akv.enabled is None or akv.azure is None or akv.kek is None or not akv.ekmip:
        return UNKNOWN
    return HEALTHY


def _coded(check: Check | None, what: str) -> str:
    if check is None:
        return what
    detail = f"{what} (code {check.code})" if check.code not in ("", "0") else what
    return f"{detail}: {check.message}" if check.message else detail


def _problems(snapshot: ClusterSnapshot, akvs: Iterable[AkvView]) -> list[str]:
    problems = []
    last = snapshot.last
    if last is not None and not snapshot.up:
        problems.append(f"cluster not answering ({last.reason}): {last.error}")
    elif last is None:
        problems.append("not polled yet")
    refused = snapshot.akv_refused
    if refused is not None:
        problems.append(
            f"{_coded(refused, 'ONTAP answered the AKV query with an error')}"
            " (configurations as last known)"
        )
    stale = " (last known)" if last is not None and (not snapshot.up or refused) else ""
    for view in akvs:
        akv, where = view.akv, configuration_label(view.akv)
        if akv.azure is not None and not akv.azure.ok:
            problems.append(f"{where}: {_coded(akv.azure, 'Azure Key Vault unreachable')}{stale}")
        for node in akv.ekmip_unreachable:
            check = Check(node.ok, node.code, node.message)
            what = _coded(check, f"EKMIP unreachable from node {node.node}")
            problems.append(f"{where}: {what}{stale}")
        if akv.kek is not None and not akv.kek.ok:
            problems.append(f"{where}: {_coded(akv.kek, 'KEK unavailable')}{stale}")
        if view.state == INACTIVE:
            problems.append(f"{where}: inactive (not enabled; ONTAP reports no state)")
        elif view.state == UNKNOWN:
            missing = [
                name
                for name, known in (
                    ("enabled", akv.enabled is not None),
                    ("azure_reachability", akv.azure is not None),
                    ("state", akv.kek is not None),
                    ("ekmip_reachability", bool(akv.ekmip)),
                )
                if not known
            ]
            problems.append(f"{where}: state unknown (ONTAP did not report {', '.join(missing)})")
    return [" ".join(problem.split()) for problem in problems]


def assess_cluster(snapshot: ClusterSnapshot) -> ClusterView:
    """Return the state and problems of one cluster from its latest snapshot."""
    views = []
    for akv in snapshot.akvs:
        since = snapshot.unreachable_since.get(akv.uuid)
        views.append(
            AkvView(
                akv=akv,
                state=akv_state(akv),
                azure_unreachable_since=since,
                volumes_offline_deadline=None if since is None else since + VOLUMES_OFFLINE_AFTER,
            )
        )
    if snapshot.last is None:
        state = PENDING
    elif not snapshot.up:
        state = DOWN
    else:
        states = [v.state for v in views]
        if snapshot.akv_refused is not None:
            states.append(GET_ERRORS[snapshot.akv_refused.code])
        state = min(states, key=urgency, default=HEALTHY)
    return ClusterView(snapshot, state, tuple(_problems(snapshot, views)), tuple(views))


def verdict(
    *, unreachable: int, ekmip_unreachable: int, unanswered: int, unknown: int, kek: int
) -> str:
    """Return the fleet's verdict; first match wins: critical, unknown, warning, ok.

    Critical beats unknown: one vault that cannot be reached must page even while another
    cluster does not answer. Inactive configurations change nothing.
    """
    if unreachable or ekmip_unreachable:
        return CRITICAL
    if unanswered or unknown:
        return UNKNOWN
    if kek:
        return WARNING
    return OK


def summarize(clusters: Iterable[ClusterView]) -> Summary:
    """Return the fleet's counts and its most urgent state."""
    clusters = list(clusters)
    akvs = [view for cluster in clusters for view in cluster.akvs]

    def count(state: str) -> int:
        return sum(1 for view in akvs if view.state == state)

    # A configuration can fail several checks at once; each count asks one question.
    unreachable = sum(1 for v in akvs if v.akv.azure is not None and not v.akv.azure.ok)
    ekmip_unreachable = sum(1 for v in akvs if v.akv.ekmip_unreachable)
    kek = sum(1 for v in akvs if v.akv.kek is not None and not v.akv.kek.ok)
    down = sum(1 for c in clusters if c.state == DOWN)
    pending = sum(1 for c in clusters if c.state == PENDING)
    # A cluster that answered the AKV query with an AKV error speaks of every configuration.
    refused = [
        GET_ERRORS[c.snapshot.akv_refused.code]
        for c in clusters
        if c.snapshot.up and c.snapshot.akv_refused is not None
    ]
    return Summary(
        status=verdict(
            unreachable=unreachable + refused.count(AZURE_UNREACHABLE),
            ekmip_unreachable=ekmip_unreachable + refused.count(EKMIP_UNREACHABLE),
            unanswered=down + pending,
            unknown=count(UNKNOWN),
            kek=kek + refused.count(KEK_UNAVAILABLE),
        ),
        clusters=len(clusters),
        clusters_up=sum(1 for c in clusters if c.snapshot.up),
        clusters_down=down,
        clusters_pending=pending,
        configurations=len(akvs),
        configurations_unreachable=unreachable,
        configurations_ekmip_unreachable=ekmip_unreachable,
        configurations_kek_unavailable=kek,
        configurations_unknown=count(UNKNOWN),
        configurations_inactive=count(INACTIVE),
        ekmip_nodes_down=sum(len(c.ekmip_nodes_down) for c in clusters),
        clusters_akv_error=len(refused),
    )


def assess(snapshots: Iterable[ClusterSnapshot], exporter: ExporterInfo, now: float) -> FleetStatus:
    """Return the fleet's status from the latest snapshots, in the order given."""
    clusters = tuple(assess_cluster(snapshot) for snapshot in snapshots)
    return FleetStatus(now, exporter, summarize(clusters), clusters)


# --- JSON ---------------------------------------------------------------------------------------


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


def _akv_json(view: AkvView) -> dict[str, Any]:
    akv = view.akv
    return {
        "uuid": akv.uuid,
        "svm": akv.svm,
        "scope": akv.scope,
        "vault": akv.vault,
        "enabled": akv.enabled,
        "configuration": akv.configuration,
        "key_id": akv.key_id,
        "client_id": akv.client_id,
        "tenant_id": akv.tenant_id,
        "authentication_method": akv.authentication_method,
        "state": view.state,
        "azure": _check_json(akv.azure, "reachable"),
        "kek": _check_json(akv.kek, "available"),
        "ekmip": [
            {
                "node": node.node,
                "node_uuid": node.node_uuid,
                "reachable": node.ok,
                "code": node.code,
                "message": node.message,
            }
            for node in akv.ekmip
        ],
        "azure_unreachable_since": view.azure_unreachable_since,
        "volumes_offline_deadline": view.volumes_offline_deadline,
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
        "akvs_as_of": snapshot.akvs_as_of,
        "last_poll": None if snapshot.last is None else _outcome_json(snapshot.last),
        "history": [_outcome_json(outcome) for outcome in snapshot.history],
        "poll_errors": dict(snapshot.poll_errors),
        "akv_error": None
        if snapshot.akv_refused is None
        else {"code": snapshot.akv_refused.code, "message": snapshot.akv_refused.message},
        "akvs": [_akv_json(akv) for akv in view.akvs],
    }
