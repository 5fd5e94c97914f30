"""The fleet's health in states: what each means, how urgent it is, the views that carry them.

The status page, ``GET /api/v1/status`` and the ``check`` command all read this one assessment,
so they never disagree about what is broken. Here: the states, their urgency, a configuration's
own state, and the views (ClusterView, Summary, FleetStatus); fleet_assessment.py fills them from
the snapshots (``assess``), assessment_problems.py words the problems, assessment_json.py writes
the JSON. It reads
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
from akv_exporter.ontap.key_manager_endpoint import Check, KeyManagerStatus
from akv_exporter.ontap.key_manager_provider import KeyManagerProvider, KeyManagerWords
from akv_exporter.ontap.key_manager_registry import BY_KIND, PROVIDERS
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


def documents_volumes_offline(status: KeyManagerStatus) -> bool:
    """Return whether NetApp documents a volume-offline deadline for this kind (its EMS rule)."""
    return BY_KIND[status.kind].volumes_offline_after is not None


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
