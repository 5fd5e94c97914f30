"""Snapshots -> the fleet's status: each cluster's state, problems, policy and volumes at stake,
then the fleet's counts and verdict (``assess``).

The states, their urgency and the views they fill are in assessment.py; the problem and note
lines in assessment_problems.py.
"""

from __future__ import annotations

from collections.abc import Iterable

from akv_exporter.assessment import (
    ACTION_NEEDED,
    CRITICAL,
    DOWN,
    EKMIP_UNREACHABLE,
    HEALTHY,
    INACTIVE,
    KEEPS_VOLUMES_ONLINE,
    KEK_UNAVAILABLE,
    KEY_EXPIRED,
    KEY_EXPIRED_EVENT,
    KEY_EXPIRED_WINDOW,
    KEY_STORE_BLOCKED,
    KEY_VERSION_CHANGED_EVENT,
    OK,
    PENDING,
    POLICY_UNKNOWN,
    TAKES_VOLUMES_OFFLINE,
    UNKNOWN,
    UNREACHABLE_STATES,
    VOLUMES_OFFLINE,
    VOLUMES_OFFLINE_OTHER,
    WARNING,
    ClusterView,
    ExporterInfo,
    FleetStatus,
    KeyManagerView,
    Summary,
    SvmVolumes,
    key_manager_state,
    refused_state,
    urgency,
)
from akv_exporter.assessment_problems import note_lines, problem_lines, why_no_configuration
from akv_exporter.ontap.key_manager_endpoint import KeyManagerStatus
from akv_exporter.ontap.key_manager_registry import BY_KIND, PROVIDERS
from akv_exporter.ontap.key_servers import streak_key
from akv_exporter.ontap.key_stores import BLOCKED
from akv_exporter.snapshot import ClusterSnapshot, EventCount


def cluster_kind(snapshot: ClusterSnapshot) -> str:
    """Return the kind a cluster's own policy line speaks of: its first kind in registry order
    (the first provider's when it has no configuration)."""
    kinds = {status.kind for status in snapshot.key_managers}
    return next((p.kind for p in PROVIDERS if p.kind in kinds), PROVIDERS[0].kind)


def policy_of(snapshot: ClusterSnapshot, kind: str) -> tuple[str, str]:
    """Return ONTAP's volume-offline policy for ``kind`` (health_monitor_policy.<kind>) in three
    words, and why it is unknown if so."""
    blast = snapshot.blast
    release = snapshot.identity.version if snapshot.identity else ""
    if blast.policy_unsupported is not None:
        return POLICY_UNKNOWN, f"unknown on ONTAP {blast.policy_unsupported}"
    takes = None if blast.policy is None else blast.policy.takes_volumes_offline(kind)
    if takes is None and blast.policy is not None:
        return POLICY_UNKNOWN, f"unknown: ONTAP {release} does not report the policy"
    if takes is None:
        return POLICY_UNKNOWN, "unknown (not polled yet)"
    return (TAKES_VOLUMES_OFFLINE if takes else KEEPS_VOLUMES_ONLINE), ""


def _svms(status: KeyManagerStatus, snapshot: ClusterSnapshot) -> tuple[SvmVolumes, ...] | None:
    """Return the SVMs whose keys ``status`` holds, with their encrypted volumes.

    An SVM configuration holds its own SVM's keys; a cluster-scoped one those of every SVM
    without a configuration of its own (a known inactive one does not count), as the
    recording rule svm:ontap_encrypted_volumes_in_akv:max does.
    """
    volumes = snapshot.blast.volumes
    if volumes is None:
        return None
    if status.svm:
        svms: tuple[str, ...] = (status.svm,)
    else:
        own = {k.svm for k in snapshot.key_managers if k.svm and k.enabled is not False}
        svms = tuple(svm for svm in volumes.svms() if svm not in own)
    return tuple(
        SvmVolumes(
            svm,
            encrypted,
            offline,
            _offline_caused(snapshot, svm, status.kind) if offline else None,
        )
        for svm in svms
        if (encrypted := volumes.total(svm))
        for offline in [volumes.total(svm, "offline")]
    )


def _latest(snapshot: ClusterSnapshot, names: Iterable[str], svm: str) -> float | None:
    """Return ONTAP's latest time of any of the events ``names`` about ``svm``; None: none."""
    names = set(names)
    times = [e.last_time for e in snapshot.blast.events if e.name in names and e.svm == svm]
    return max(times, default=None)


def _offline_caused(snapshot: ClusterSnapshot, svm: str, kind: str) -> float | None:
    """Return the time of ``svm``'s volOffline of its key manager's kind (ekmip.akv.volOffline,
    ekmip.gckms.volOffline, ...) if no volOnline or available of that kind followed; None for a
    kind NetApp documents no such event for."""
    provider = BY_KIND[kind]
    if not provider.volumes_offline_event:
        return None
    event = provider.volumes_offline_event
    prefix = event.rsplit(".", 1)[0]
    offline = _latest(snapshot, (event,), svm)
    ended = _latest(snapshot, (f"{prefix}.volOnline", f"{prefix}.available"), svm)
    if offline is None or (ended is not None and ended >= offline):
        return None
    return offline


def recent_key_expired(snapshot: ClusterSnapshot, now: float) -> tuple[EventCount, ...]:
    """Return, per SVM, the latest ekmip.akv.keyExpired of the last 24 hours (ONTAP's time)
    that no ekmip.akv.keyVersionChanged for the same SVM followed; newest first.

    As the alert OntapAkvKeyExpired: only while the cluster answers.
    """
    if not snapshot.up:
        return ()
    latest: dict[str, EventCount] = {}
    for event in snapshot.blast.events:
        if event.name != KEY_EXPIRED_EVENT or event.last_time <= now - KEY_EXPIRED_WINDOW:
            continue
        if event.svm not in latest or event.last_time > latest[event.svm].last_time:
            latest[event.svm] = event
    renewed = {svm: _latest(snapshot, (KEY_VERSION_CHANGED_EVENT,), svm) or 0.0 for svm in latest}
    current = [e for svm, e in latest.items() if renewed[svm] < e.last_time]
    return tuple(sorted(current, key=lambda e: (-e.last_time, e.svm)))


def assess_cluster(snapshot: ClusterSnapshot, now: float) -> ClusterView:
    """Return the state and problems of one cluster from its latest snapshot, at ``now``."""
    policies = {kind: policy_of(snapshot, kind) for kind in BY_KIND}
    policy, note = policies[cluster_kind(snapshot)]
    key_expired = recent_key_expired(snapshot, now)
    views = []
    for status in snapshot.key_managers:
        since = snapshot.unreachable_since.get(status.uuid)
        kind_policy = policies[status.kind][0]
        after = BY_KIND[status.kind].volumes_offline_after
        deadline = None if since is None or after is None else since + after
        views.append(
            KeyManagerView(
                status=status,
                state=key_manager_state(status),
                unreachable_since=since,
                volumes_offline_deadline=None if kind_policy == KEEPS_VOLUMES_ONLINE else deadline,
                svms=_svms(status, snapshot),
                policy=kind_policy,
                server_streaks={
                    server.server: snapshot.unreachable_since[key]
                    for server in status.servers
                    if (key := streak_key(status.uuid, server.server)) in snapshot.unreachable_since
                },
            )
        )
    if snapshot.last is None:
        state = PENDING
    elif not snapshot.up:
        state = DOWN
    else:
        # Inactive configurations do not count: the cluster is inactive only when all are.
        states = [v.state for v in views if v.state != INACTIVE]
        states += (refused_state(kind, error) for kind, error in snapshot.refused.items())
        if any(view.volumes_offline for view in views):
            # ONTAP's volOffline says AKV is the cause: the most urgent state. Without it the
            # volumes are offline for a reason ONTAP did not tie to AKV: a warning (KEK's rank).
            cause = any(view.volumes_offline_for_akv for view in views)
            states.append(VOLUMES_OFFLINE if cause else VOLUMES_OFFLINE_OTHER)
        if key_expired:
            states.append(KEY_EXPIRED)
        if any(store.state == BLOCKED for store in snapshot.key_stores or ()):
            states.append(KEY_STORE_BLOCKED)
        state = min(states, key=urgency, default=INACTIVE if views else HEALTHY)
    problems = tuple(problem_lines(snapshot, views, key_expired))
    notes = tuple(note_lines(views))
    return ClusterView(
        snapshot,
        state,
        problems,
        tuple(views),
        policy,
        note,
        notes,
        key_expired[0] if key_expired else None,
        why_no_configuration(snapshot, now),
    )


def verdict(
    *,
    unreachable: int,
    ekmip_unreachable: int,
    unanswered: int,
    unknown: int,
    kek: int,
    volumes_offline: int = 0,
    key_expired: int = 0,
    volumes_offline_other: int = 0,
    no_key_server: int = 0,
    key_stores_blocked: int = 0,
    key_servers_down: int = 0,
    action_needed: int = 0,
) -> str:
    """Return the fleet's verdict; first match wins: critical, unknown, warning, ok.

    Critical beats unknown: one vault that cannot be reached, or encrypted volumes that ONTAP
    took offline for lack of AKV (ekmip.akv.volOffline), must page even while another cluster
    does not answer. Inactive configurations change nothing. A recent ekmip.akv.keyExpired, and
    encrypted volumes offline without an AKV cause ONTAP reported, are warnings, as their alerts.
    A node that reaches none of its KMIP key servers, or a blocked key store, pages; one key
    server down, or a key manager that needs action, warns.
    """
    if unreachable or ekmip_unreachable or volumes_offline or no_key_server or key_stores_blocked:
        return CRITICAL
    if unanswered or unknown:
        return UNKNOWN
    if kek or key_expired or volumes_offline_other or key_servers_down or action_needed:
        return WARNING
    return OK


def summarize(clusters: Iterable[ClusterView]) -> Summary:
    """Return the fleet's counts and its most urgent state."""
    clusters = list(clusters)
    # A cluster that answered a key manager's query with an error keeps that kind's last known
    # configurations for the page, but they are not counted: `check`, polling once, cannot know
    # them, and the totals of both must agree. The refused query counts (clusters_akv_error).
    counted = [
        (index, view)
        for index, cluster in enumerate(clusters)
        for view in cluster.key_managers
        if not (cluster.snapshot.up and view.status.kind in cluster.snapshot.refused)
    ]
    views = [view for _, view in counted]

    def count(state: str) -> int:
        return sum(1 for view in views if view.state == state)

    # A configuration can fail several checks at once; each count asks one question.
    unreachable = sum(1 for v in views if v.service_unreachable)
    ekmip_unreachable = sum(1 for v in views if v.status.ekmip_unreachable)
    kek = sum(1 for v in views if v.status.kek_unavailable)
    down = sum(1 for c in clusters if c.state == DOWN)
    pending = sum(1 for c in clusters if c.state == PENDING)
    # A cluster that answered a key manager's query with its error speaks of every configuration.
    answered = [c for c in clusters if c.snapshot.up and c.snapshot.refused]
    refused = [
        refused_state(kind, error) for c in answered for kind, error in c.snapshot.refused.items()
    ]
    offline = sum(v.volumes_offline or 0 for v in views)
    offline_for_akv = sum(v.volumes_offline_for_akv for v in views)
    key_expired = sum(1 for c in clusters if c.key_expired is not None)
    servers_down = sum(len(v.status.servers_down) for v in views)
    no_server = len({(i, node) for i, v in counted for node in v.status.nodes_without_server})
    blocked = sum(len(c.key_stores_blocked) for c in clusters if c.snapshot.up)
    return Summary(
        status=verdict(
            unreachable=unreachable + sum(state in UNREACHABLE_STATES for state in refused),
            ekmip_unreachable=ekmip_unreachable + refused.count(EKMIP_UNREACHABLE),
            unanswered=down + pending,
            unknown=count(UNKNOWN),
            kek=kek + refused.count(KEK_UNAVAILABLE),
            volumes_offline=offline_for_akv,
            key_expired=key_expired,
            volumes_offline_other=offline - offline_for_akv,
            no_key_server=no_server,
            key_stores_blocked=blocked,
            key_servers_down=servers_down,
            action_needed=count(ACTION_NEEDED),
        ),
        clusters=len(clusters),
        clusters_up=sum(1 for c in clusters if c.snapshot.up),
        clusters_down=down,
        clusters_pending=pending,
        configurations=len(views),
        configurations_unreachable=unreachable,
        configurations_ekmip_unreachable=ekmip_unreachable,
        configurations_kek_unavailable=kek,
        configurations_unknown=count(UNKNOWN),
        configurations_inactive=count(INACTIVE),
        ekmip_nodes_down=len(
            {(index, n.node) for index, v in counted for n in v.status.ekmip_unreachable}
        ),
        clusters_akv_error=len(answered),
        clusters_key_expired=key_expired,
        volumes_offline=offline,
        volumes_offline_for_akv=offline_for_akv,
        volumes_at_stake=sum(v.volumes_at_stake or 0 for v in views),
        key_servers_down=servers_down,
        nodes_without_key_server=no_server,
        configurations_action_needed=count(ACTION_NEEDED),
        key_stores_blocked=blocked,
    )


def assess(snapshots: Iterable[ClusterSnapshot], exporter: ExporterInfo, now: float) -> FleetStatus:
    """Return the fleet's status from the latest snapshots, in the order given."""
    clusters = tuple(assess_cluster(snapshot, now) for snapshot in snapshots)
    return FleetStatus(now, exporter, summarize(clusters), clusters)
