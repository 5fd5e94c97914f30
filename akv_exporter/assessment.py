"""Snapshots -> the fleet's health: a state per cluster and configuration, problems, a summary.

The status page, ``GET /api/v1/status`` and the ``check`` command all read this one assessment,
so they never disagree about what is broken (the JSON document: assessment_json.py). It reads
every key manager through the common status type (ontap/key_manager_endpoint.py);
``KEY_MANAGER_WORDS`` holds how each kind is named to people and in the JSON. States, most
urgent first::

    down               the last poll got no valid answer (the cluster's state is unknown)
    azure_unreachable  a configuration cannot reach its key service, Azure Key Vault (ONTAP's
                       count towards ekmip.akv.volOffline may run); `<service>_unreachable`
                       for each kind
    ekmip_unreachable  a node cannot reach its embedded KMIP server
    kek_unavailable    the vault-wrapped KEK is not available on every node
    volumes_offline_other  (a cluster) encrypted volumes offline without a current
                       ekmip.akv.volOffline: ONTAP reported no AKV cause
    key_expired        (a cluster) ONTAP logged ekmip.akv.keyExpired in the last 24 hours, and
                       no ekmip.akv.keyVersionChanged for the same SVM since
    pending            not polled yet
    unknown            ONTAP did not report a state (a field missing or null)
    inactive           a configuration that is not enabled: ONTAP reports no state for it
    healthy

Unknown is never healthy: a configuration is healthy only when ONTAP said so for its key
service, the KEK and at least one node's EKMIP reachability.

An inactive configuration (ONTAP's ``enabled`` false, 9.14 and later) is informational: NetApp's
REST reference says inactive configurations have no advanced properties (state, reachability),
so there is nothing of it to watch. It never makes its cluster need attention; a cluster is
``inactive`` only when every one of its configurations is, and the page lists it with the
healthy ones. It is a note, never a problem.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated

from akv_exporter.json_schema import Doc
from akv_exporter.ontap.key_manager_endpoint import Check, KeyManagerStatus, NodeCheck
from akv_exporter.ontap.key_manager_provider import KeyManagerProvider, KeyManagerWords
from akv_exporter.ontap.key_manager_registry import BY_KIND, PROVIDERS
from akv_exporter.ontap.key_servers import streak_key
from akv_exporter.ontap.key_stores import BLOCKED, KeyStore
from akv_exporter.snapshot import ClusterSnapshot, EventCount

# NetApp's EMS reference (9.10.1 on): ekmip.akv.keyExpired (ERROR), the current version of the
# AKV key has expired; ONTAP still unwraps the KEK with it and there is no interruption to data
# availability. A warning, not an outage. "Recent" is the alert OntapAkvKeyExpired's window
# (config/prometheus/alerts.yml): ONTAP's time of the event within the last 24 hours, on a
# cluster that answers.
KEY_EXPIRED_EVENT = "ekmip.akv.keyExpired"
KEY_EXPIRED_WINDOW = 24 * 3600.0
# NetApp's EMS reference: ekmip.akv.keyVersionChanged (NOTICE), the key version changed and the KEK
# "has been successfully re-wrapped with the current key version": it ends an SVM's expiry.
KEY_VERSION_CHANGED_EVENT = "ekmip.akv.keyVersionChanged"
# ekmip.akv.volOffline (each provider's volumes_offline_event: ekmip.gckms.volOffline, ...):
# ONTAP blocked the SVM and took its encrypted volumes offline for lack of the key; volOnline
# (9.13.1 on) and available say it is over. Only a volOffline newer than both, for the same SVM,
# is ONTAP's word that the key manager is the cause of offline volumes (_offline_caused).


# KeyManagerStatus.kind -> its words (its provider's declaration).
KEY_MANAGER_WORDS: dict[str, KeyManagerWords] = {p.kind: p.words for p in PROVIDERS}


def unreachable_state(provider: KeyManagerProvider) -> str:
    """Return the state of a configuration that cannot reach its key service: azure_unreachable."""
    return provider.unreachable_state


# A cluster (never a configuration) with encrypted volumes offline in an SVM whose keys are in
# AKV: ONTAP has acted (ekmip.akv.volOffline), whatever its configurations read now.
VOLUMES_OFFLINE = "volumes_offline"
# A cluster with encrypted volumes offline in such an SVM for which ONTAP logged no current
# ekmip.akv.volOffline: nothing ONTAP reported ties them to AKV (an administrator may have taken
# them offline). A warning, never a page that blames Azure.
VOLUMES_OFFLINE_OTHER = "volumes_offline_other"
DOWN = "down"
# One per key service (azure_unreachable, google_unreachable, ...), each as urgent as the others.
UNREACHABLE_STATES = tuple(
    dict.fromkeys(p.unreachable_state for p in PROVIDERS if p.metrics.service)
)
# A configuration with a node that reaches none of its external KMIP key servers.
KEY_SERVERS_UNREACHABLE = "key_servers_unreachable"
EKMIP_UNREACHABLE = "ekmip_unreachable"
# A configuration with one external KMIP key server not available from every node.
KEY_SERVER_UNREACHABLE = "key_server_unreachable"
KEK_UNAVAILABLE = "kek_unavailable"
# A key manager (key-managers) whose setup status is not ONTAP's "No action needed".
ACTION_NEEDED = "action_needed"
# A cluster (never a configuration) with a key store ONTAP says is blocked (9.16.1+).
KEY_STORE_BLOCKED = "key_store_blocked"
# A cluster (never a configuration) whose ONTAP logged ekmip.akv.keyExpired recently.
KEY_EXPIRED = "key_expired"
PENDING = "pending"
UNKNOWN = "unknown"
INACTIVE = "inactive"
HEALTHY = "healthy"
STATES = (
    VOLUMES_OFFLINE,
    DOWN,
    *UNREACHABLE_STATES,
    KEY_STORE_BLOCKED,
    KEY_SERVERS_UNREACHABLE,
    EKMIP_UNREACHABLE,
    KEY_SERVER_UNREACHABLE,
    KEK_UNAVAILABLE,
    VOLUMES_OFFLINE_OTHER,
    ACTION_NEEDED,
    KEY_EXPIRED,
    PENDING,
    UNKNOWN,
    INACTIVE,
    HEALTHY,
)
# A configuration's states after its key service's unreachable one (key_manager_state).
CONFIGURATION_STATES = (
    KEY_SERVERS_UNREACHABLE,
    EKMIP_UNREACHABLE,
    KEY_SERVER_UNREACHABLE,
    KEK_UNAVAILABLE,
    ACTION_NEEDED,
    UNKNOWN,
    INACTIVE,
    HEALTHY,
)
# Every key service's unreachable state is as urgent as the others.
_RANK = {
    state: STATES.index(UNREACHABLE_STATES[0] if state in UNREACHABLE_STATES else state)
    for state in STATES
}


# How a fleet of several kinds is named where one kind's words would stand.
MIXED_WORDS = KeyManagerWords(
    name="key-manager", title="key-manager", short="Key service", json_key="", target=""
)


def fleet_kinds(fleet: FleetStatus) -> tuple[str, ...]:
    """Return the kinds of key manager the fleet's clusters have, in registry order."""
    present = {view.status.kind for cluster in fleet.clusters for view in cluster.key_managers}
    return tuple(p.kind for p in PROVIDERS if p.kind in present)


def fleet_words(kinds: Iterable[str]) -> list[KeyManagerWords]:
    """Return the words of these kinds; of the first provider when there are none."""
    kinds = set(kinds)
    return [p.words for p in PROVIDERS if p.kind in kinds] or [PROVIDERS[0].words]


def fleet_name(kinds: Iterable[str]) -> KeyManagerWords:
    """Return the words that name a fleet: its one kind's ("Azure Key Vault"), else MIXED_WORDS."""
    named = fleet_words(kinds)
    return named[0] if len(named) == 1 else MIXED_WORDS


def service_header(kinds: Iterable[str]) -> str:
    """Return the key-service column's header for the kinds a fleet has: "Azure", "Azure/Google".

    Kinds with a key service or a setup status (KMIP, OKM) count; a fleet with none is headed
    as the first provider.
    """
    present = set(kinds)
    shorts = [
        p.words.short
        for p in PROVIDERS
        if p.kind in present and (p.metrics.service or p.metrics.setup)
    ]
    return "/".join(shorts or [PROVIDERS[0].words.short])


def urgency(state: str) -> int:
    """Return the sort rank of ``state``: 0 is the most urgent."""
    return _RANK[state]


def utc_time(ts: float) -> str:
    """Return ``ts`` as people read it on every surface: "2026-11-29 07:07:00 UTC"."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def span(seconds: float) -> str:
    """Return a length of time, rounded for reading: "42 s", "12 min", "3.5 h", "2.0 d"."""
    seconds = abs(seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def configuration_label(status: KeyManagerStatus) -> str:
    """Return how a configuration is named to people: its SVM, or "cluster" for the admin SVM."""
    return f"svm {status.svm}" if status.svm else "cluster"


def words(status: KeyManagerStatus) -> KeyManagerWords:
    return KEY_MANAGER_WORDS[status.kind]


# ONTAP's key-manager health-monitor policy for AKV (health_monitor_policy.akv), in three words.
TAKES_VOLUMES_OFFLINE = "takes_volumes_offline"  # manage_volume_offline true
KEEPS_VOLUMES_ONLINE = "keeps_volumes_online"  # manage_volume_offline false
POLICY_UNKNOWN = "unknown"  # a release without the policy, or not polled (yet)
POLICIES = (TAKES_VOLUMES_OFFLINE, KEEPS_VOLUMES_ONLINE, POLICY_UNKNOWN)


@dataclass(frozen=True, slots=True)
class SvmVolumes:
    """The encrypted volumes of one SVM whose keys an AKV configuration holds."""

    svm: str
    encrypted: int
    offline: int
    # ONTAP's time of the SVM's ekmip.akv.volOffline when it is newer than the SVM's volOnline
    # and available (ONTAP said AKV is why its volumes are offline); None: ONTAP said no such thing.
    offline_for_akv_since: float | None = None


@dataclass(frozen=True, slots=True)
class ExporterInfo:
    """The exporter's own health, as the status surfaces show it."""

    version: str
    started_at: float
    config_reload_ok: bool
    last_reload_error: str | None
    shard_ordinal: int = 0
    total_shards: int = 1
    configured_clusters: int = 0  # in the whole file; this process polls its shard's share


@dataclass(frozen=True, slots=True)
class KeyManagerView:
    """One key-manager configuration with its state and, while its key service is unreachable,
    ONTAP's deadline."""

    status: KeyManagerStatus
    state: str
    unreachable_since: float | None
    # Streak start + 60 minutes; None where ONTAP's policy says it will not take volumes offline.
    volumes_offline_deadline: float | None
    svms: tuple[SvmVolumes, ...] | None = None  # None: the volumes are not known
    policy: str = POLICY_UNKNOWN
    # External KMIP key server -> the start of its current not-available streak.
    server_streaks: Mapping[str, float] = field(default_factory=dict)

    @property
    def service_unreachable(self) -> bool:
        """Return whether ONTAP said this configuration cannot reach its key service.

        The one rule for "at stake" on every surface: the summary's count, the page's rows, the
        JSON and check all read it, so a healthy configuration's volumes are never "at stake".
        """
        return self.status.service_unreachable

    @property
    def encrypted_volumes(self) -> int | None:
        """Return the encrypted volumes of the SVMs whose keys this holds; None: not known."""
        return None if self.svms is None else sum(s.encrypted for s in self.svms)

    @property
    def volumes_at_stake(self) -> int | None:
        """Return the encrypted volumes while the key service is unreachable, else 0."""
        if self.svms is None:
            return None
        return self.encrypted_volumes if self.service_unreachable else 0

    @property
    def volumes_offline(self) -> int | None:
        return None if self.svms is None else sum(s.offline for s in self.svms)

    @property
    def volumes_offline_for_akv(self) -> int:
        """Return the offline volumes of the SVMs whose ekmip.akv.volOffline is current."""
        return sum(s.offline for s in self.svms or () if s.offline_for_akv_since is not None)


@dataclass(frozen=True, slots=True)
class ClusterView:
    """One cluster: its snapshot, its most urgent state and one line per problem."""

    snapshot: ClusterSnapshot
    state: str
    problems: tuple[str, ...]
    key_managers: tuple[KeyManagerView, ...]
    policy: str = POLICY_UNKNOWN  # ONTAP's AKV policy, as KeyManagerView.policy
    policy_note: str = ""  # why the policy is unknown, in words ("unknown on ONTAP 9.9.1")
    notes: tuple[str, ...] = ()  # informational lines (inactive configurations): no problem
    # The latest ekmip.akv.keyExpired within KEY_EXPIRED_WINDOW (node, ONTAP's time); None: none.
    key_expired: EventCount | None = None
    # Why no configuration is listed, in words true of the cluster now; "" when some are.
    no_configuration: str = ""

    @property
    def needs_attention(self) -> bool:
        """Return whether the page lists this cluster under "Needs attention"."""
        return self.state not in (HEALTHY, INACTIVE)

    @property
    def inactive_configurations(self) -> int:
        return sum(1 for view in self.key_managers if view.state == INACTIVE)

    @property
    def nodes(self) -> tuple[str, ...]:
        """Return every node any configuration reported EKMIP reachability for, sorted."""
        return tuple(sorted({n.node for view in self.key_managers for n in view.status.ekmip}))

    @property
    def key_stores_blocked(self) -> tuple[KeyStore, ...]:
        """Return the key stores ONTAP says are blocked (9.16.1+ `state`)."""
        return tuple(s for s in self.snapshot.key_stores or () if s.state == BLOCKED)

    @property
    def ekmip_nodes_down(self) -> tuple[str, ...]:
        return tuple(
            sorted({n.node for v in self.key_managers for n in v.status.ekmip_unreachable})
        )


Count = Annotated[int, Doc(minimum=0)]  # a count in the JSON's summary
# The fleet's verdict, in the precedence the check command's exit codes follow (docs/check.md).
CRITICAL = "critical"
WARNING = "warning"
OK = "ok"


@dataclass(frozen=True, slots=True)
class Summary:
    """Counts over the fleet; configurations of a down cluster count as last known."""

    # The verdict: see verdict(). The JSON's summary is this (docs/status.schema.json).
    status: Annotated[str, Doc(values=(CRITICAL, UNKNOWN, WARNING, OK))]
    clusters: Count
    clusters_up: Count
    clusters_down: Count
    clusters_pending: Count
    configurations: Count
    configurations_unreachable: Count
    configurations_ekmip_unreachable: Count
    configurations_kek_unavailable: Count
    configurations_unknown: Count
    configurations_inactive: Count
    ekmip_nodes_down: Count  # distinct (cluster, node) pairs with any configuration unreachable
    # Clusters that answered a key manager's GET with an error code NetApp documents for it
    # (KeyManagerEndpoint.get_errors): AKV's now, hence the name.
    clusters_akv_error: Count
    clusters_key_expired: Annotated[
        int,
        Doc(
            "clusters whose ONTAP logged ekmip.akv.keyExpired in the last 24 hours, with no "
            "ekmip.akv.keyVersionChanged for the same SVM since (above 0 the verdict is at least "
            "warning)",
            minimum=0,
        ),
    ] = 0
    volumes_offline: Annotated[
        int,
        Doc(
            "encrypted volumes offline in SVMs whose keys are in AKV (above 0 the verdict is at "
            "least warning)",
            minimum=0,
        ),
    ] = 0
    # Of those, the ones ONTAP took offline for lack of AKV (a current ekmip.akv.volOffline):
    # critical; the others (no such event) are a warning, never blamed on Azure.
    volumes_offline_for_akv: Annotated[
        int,
        Doc(
            "of volumes_offline, those in SVMs for which ONTAP's latest ekmip.akv.volOffline is "
            "newer than its volOnline and available: ONTAP took them offline for lack of AKV (a "
            "count above 0 is critical)",
            minimum=0,
        ),
    ] = 0
    volumes_at_stake: Annotated[
        int,
        Doc("encrypted volumes whose AKV configuration cannot reach Azure Key Vault", minimum=0),
    ] = 0
    key_servers_down: Annotated[
        int,
        Doc(
            "external KMIP key servers (per key manager) ONTAP says are not available from every "
            "node (above 0 the verdict is at least warning)",
            minimum=0,
        ),
    ] = 0
    nodes_without_key_server: Annotated[
        int,
        Doc(
            "(cluster, node) pairs where a node reaches none of a key manager's KMIP key servers "
            "(critical)",
            minimum=0,
        ),
    ] = 0
    configurations_action_needed: Annotated[
        int,
        Doc(
            "KMIP and Onboard Key Manager configurations whose status is not 'No action needed' "
            "(warning)",
            minimum=0,
        ),
    ] = 0
    key_stores_blocked: Annotated[
        int, Doc("key stores ONTAP says are blocked (9.16.1+; critical)", minimum=0)
    ] = 0


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


def key_manager_state(status: KeyManagerStatus) -> str:
    """Return the most urgent state of one configuration.

    What ONTAP must have said for healthy follows from the kind's declaration: each check it
    has (key service, KEK, EKMIP, setup) reported; a kind without one is not unknown for it.
    """
    provider = BY_KIND[status.kind]
    if status.service_unreachable:
        return provider.unreachable_state
    if status.nodes_without_server:
        return KEY_SERVERS_UNREACHABLE
    if status.ekmip_unreachable:
        return EKMIP_UNREACHABLE
    if status.servers_down:
        return KEY_SERVER_UNREACHABLE
    if status.kek_unavailable:
        return KEK_UNAVAILABLE
    if status.setup is not None and not status.setup.ok:
        return ACTION_NEEDED
    if status.enabled is False:
        return INACTIVE
    if missing_checks(status):
        return UNKNOWN
    return HEALTHY


def declares(status: KeyManagerStatus, role: str) -> bool:
    """Return whether this configuration's kind has a check ("service", "kek", "ekmip",
    "setup"): its provider declares a family for it."""
    return getattr(BY_KIND[status.kind].metrics, role) is not None


def missing_checks(status: KeyManagerStatus) -> list[str]:
    """Return ONTAP's fields of the checks this kind has that ONTAP did not report."""
    provider = BY_KIND[status.kind]
    metrics = provider.metrics
    return [
        name
        for name, has, known in (
            ("enabled", True, status.enabled is not None),
            (provider.endpoint.service_field, metrics.service, status.service is not None),
            ("state", metrics.kek, status.kek is not None),
            ("ekmip_reachability", metrics.ekmip, bool(status.ekmip)),
            ("status", metrics.setup, status.setup is not None),
        )
        if has and not known
    ]


def refused_state(kind: str, error: Check) -> str:
    """Return the state an error NetApp documents for a key manager's GET speaks of."""
    return BY_KIND[kind].endpoint.get_errors[error.code]


def _coded(check: Check | NodeCheck | None, what: str) -> str:
    if check is None:
        return what
    detail = f"{what} (code {check.code})" if check.code not in ("", "0") else what
    return f"{detail}: {check.message}" if check.message else detail


def _problems(
    snapshot: ClusterSnapshot,
    views: Iterable[KeyManagerView],
    key_expired: tuple[EventCount, ...],
) -> list[str]:
    problems: list[str] = []
    last = snapshot.last
    if last is not None and not snapshot.up:
        problems.append(f"cluster not answering ({last.reason}): {last.error}")
    elif last is None:
        problems.append("not polled yet")
    for kind, error in snapshot.refused.items():
        what = f"ONTAP answered the {KEY_MANAGER_WORDS[kind].name} query with an error"
        known = any(view.status.kind == kind for view in views)
        shown = "configurations as last known" if known else "no configuration known"
        problems.append(f"{_coded(error, what)} ({shown})")
    stale = ""
    if last is not None and (not snapshot.up or snapshot.refused):
        stale = " (last known)"
    for view in views:
        status, where = view.status, configuration_label(view.status)
        for svm in view.svms or ():
            if not svm.offline:
                continue
            offline = f"{svm.offline} of {svm.encrypted} encrypted volumes offline in SVM {svm.svm}"
            provider = BY_KIND[status.kind]
            event = provider.volumes_offline_event or "volOffline event"
            if svm.offline_for_akv_since is not None:
                at = utc_time(svm.offline_for_akv_since)
                cause = f"ONTAP logged {event} for it at {at}"
            else:
                cause = (
                    f"ONTAP logged no current {event} for it: no {provider.words.name} cause "
                    "reported"
                )
            problems.append(f"{where}: {offline}{stale} ({cause})")
        if view.service_unreachable:
            what = _coded(status.service, f"{words(status).title} unreachable")
            problems.append(f"{where}: {what}{stale}")
        for node in status.nodes_without_server:
            problems.append(
                f"{where}: node {node} reaches none of its {words(status).name} key servers{stale}"
            )
        for node in status.ekmip_unreachable:
            what = _coded(node, f"EKMIP unreachable from node {node.node}")
            problems.append(f"{where}: {what}{stale}")
        for server in status.servers_down:
            nodes = ", ".join(server.not_responding)
            who = f"not responding from node{'s' if len(server.not_responding) > 1 else ''} "
            detail = who + nodes if nodes else "not available on every node"
            problems.append(f"{where}: key server {server.server} {detail}{stale}")
        if status.kek_unavailable:
            problems.append(f"{where}: {_coded(status.kek, 'KEK unavailable')}{stale}")
        if status.setup is not None and not status.setup.ok:
            what = _coded(status.setup, f"{words(status).title}: action needed")
            problems.append(f"{where}: {what}{stale}")
        if view.state == UNKNOWN:
            missing = ", ".join(missing_checks(status))
            problems.append(f"{where}: state unknown (ONTAP did not report {missing})")
    for store in snapshot.key_stores or ():
        if store.state == BLOCKED:
            where = f"svm {store.svm}" if store.svm else "cluster"
            name = BY_KIND[store.type].words.title if store.type in BY_KIND else store.type
            problems.append(
                f"{where}: ONTAP's {name} key store is blocked (key-stores state, ONTAP 9.16.1+)"
            )
    for expired in key_expired:
        at = utc_time(expired.last_time)
        own = _configuration_of(snapshot, expired.svm)
        where = f" for SVM {expired.svm}" if expired.svm else ""
        key = ""
        if own is not None and (vault := own.detail("vault")):
            key = f" (vault {vault}, key {own.detail('key_id')})"
        problems.append(
            f"ONTAP logged {KEY_EXPIRED_EVENT}{where} at {at} (node {expired.node}): the "
            f"current version of the Azure Key Vault key{key} has expired; NetApp's EMS "
            "reference: ONTAP still unwraps the KEK with it, no interruption to data "
            "availability; update the key to an active, non-expired version in Azure Key Vault "
            f"(ONTAP logs {KEY_VERSION_CHANGED_EVENT} when it has re-wrapped the KEK)"
        )
    return [" ".join(problem.split()) for problem in problems]


def _configuration_of(snapshot: ClusterSnapshot, svm: str) -> KeyManagerStatus | None:
    """Return the AKV configuration an event about ``svm`` speaks of, or None when unsure.

    The SVM's own configuration; else, when the SVM has none, the cluster-scoped one (NetApp's
    EMS reference names "the SVM where the AKV is configured": for a cluster-scoped
    configuration that is the admin SVM, whose name the exporter may not know).
    """
    akvs = [k for k in snapshot.key_managers if k.kind == "akv"]
    own = [k for k in akvs if svm and k.svm == svm]
    if own:
        return next((k for k in own if k.enabled is not False), own[0])
    scoped = [k for k in akvs if not k.svm and k.enabled is not False]
    return scoped[0] if len(scoped) == 1 else None


def _notes(views: Iterable[KeyManagerView]) -> list[str]:
    """Return one informational line per inactive configuration."""
    return [
        f"{configuration_label(view.status)}: inactive configuration"
        + (f" {name!r}" if (name := view.status.detail("configuration")) else "")
        + f" (enabled false; NetApp's REST reference: an inactive {words(view.status).name}"
        + " configuration has no state or reachability)"
        for view in views
        if view.state == INACTIVE
    ]


def why_no_configuration(snapshot: ClusterSnapshot, now: float) -> str:
    """Return why ``snapshot`` lists no key-manager configuration, saying only what is true now.

    A cluster whose last good poll was a minute ago and whose state was dropped after
    poll.stale_after has answered: it is not "a cluster that has not answered".
    """
    if snapshot.key_managers:
        return ""
    if snapshot.last is None:
        return "Not polled yet."
    if snapshot.up and snapshot.refused:
        names = " and ".join(KEY_MANAGER_WORDS[kind].name for kind in snapshot.refused)
        return f"No {names} state known: ONTAP answered the {names} query with an error."
    if snapshot.up:
        return "No AKV configuration on this cluster."
    if snapshot.last_success is None:
        return "No AKV state known: the cluster has not answered since the exporter started."
    ago = span(now - snapshot.last_success)
    return (
        f"No AKV state known: the last good poll was {ago} ago"
        f" ({utc_time(snapshot.last_success)}); what it reported was dropped after"
        " poll.stale_after without a good poll since."
    )


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
    problems = tuple(_problems(snapshot, views, key_expired))
    notes = tuple(_notes(views))
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
