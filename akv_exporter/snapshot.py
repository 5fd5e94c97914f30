"""What one poll of one cluster leaves behind: immutable snapshots read by every output.

The poller replaces a cluster's snapshot atomically after each poll; the metrics exposition,
the status page, the JSON API and the ``check`` command only ever read snapshots.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from akv_exporter.ontap.cluster import ClusterIdentity
from akv_exporter.ontap.ems import EmsEvent
from akv_exporter.ontap.key_manager_endpoint import Check, KeyManagerStatus
from akv_exporter.ontap.key_manager_policy import KeyManagerConfig
from akv_exporter.ontap.key_stores import KeyStore
from akv_exporter.ontap.volumes import EncryptedVolumes

# Why a poll failed: the `reason` label of akv_exporter_cluster_poll_errors_total.
REASONS = (
    "timeout",
    "connect",
    "tls",
    "auth",
    "forbidden",
    "rate_limited",
    "http",
    "ontap_error",
    "invalid_response",
)


@dataclass(frozen=True, slots=True)
class PollOutcome:
    """One attempt to poll a cluster: when, how long, and the failure if any."""

    started: float  # Unix time
    duration: float  # seconds
    reason: str | None = None  # one of REASONS; None on success
    error: str = ""  # one line naming endpoint and cause; "" on success
    skipped_records: int = 0

    @property
    def ok(self) -> bool:
        return self.reason is None


@dataclass(frozen=True, slots=True)
class EventCount:
    """How many times one node logged one event about one SVM since the exporter started, and
    when last."""

    node: str
    name: str
    count: int
    last_time: float
    svm: str = ""  # the SVM the event names ("" when it names none): alerts select by it


@dataclass(frozen=True, slots=True)
class BlastRadius:
    """What the slow polls of one cluster know (blast_radius.py); None / empty: not known."""

    policy: KeyManagerConfig | None = None
    policy_unsupported: str | None = None  # the release that has no key-manager-configs
    volumes: EncryptedVolumes | None = None
    volumes_as_of: float | None = None
    events: tuple[EventCount, ...] = ()  # sorted by node, name, svm
    recent_events: tuple[EmsEvent, ...] = ()  # newest first
    errors: Mapping[tuple[str, str], int] = field(default_factory=dict)  # (endpoint, reason)
    last_error: Mapping[str, str] = field(default_factory=dict)  # endpoint -> one line, if failing
    last_success: Mapping[str, float] = field(default_factory=dict)  # endpoint -> Unix time

    @property
    def takes_volumes_offline(self) -> bool | None:
        """Return ONTAP's AKV ``manage_volume_offline``: True, False, or None when unknown."""
        return None if self.policy is None else self.policy.akv_takes_volumes_offline

    def without_inventory(self) -> BlastRadius:
        """Return this without the policy and volumes (events are counters: they stay)."""
        return replace(self, policy=None, volumes=None, volumes_as_of=None)


@dataclass(frozen=True, slots=True)
class ClusterSnapshot:
    """Everything known about one configured cluster after its latest poll."""

    name: str  # the configured name, else ONTAP's, else the address until ONTAP has answered
    address: str  # the configured address (never carries credentials)
    labels: tuple[tuple[str, str], ...] = ()
    up: bool = False
    identity: ClusterIdentity | None = None
    # Every key-manager configuration (AKV's now), last known; emptied after poll.stale_after.
    key_managers: tuple[KeyManagerStatus, ...] = ()
    key_managers_as_of: float | None = None  # when `key_managers` were fetched
    last_success: float | None = None
    last: PollOutcome | None = None
    history: tuple[PollOutcome, ...] = ()  # most recent last
    poll_errors: Mapping[str, int] = field(default_factory=dict)  # cumulative, by reason
    requests: Mapping[str, int] = field(default_factory=dict)  # cumulative, by HTTP status
    # Configuration uuid -> Unix time its key service became unreachable (the current streak).
    unreachable_since: Mapping[str, float] = field(default_factory=dict)
    skipped_records: int = 0  # malformed records skipped, cumulative
    blast: BlastRadius = BlastRadius()  # policy, encrypted volumes, EMS events (slow polls)
    # Key managers (by kind) whose GET ONTAP answered with an error it documents for that
    # endpoint (KeyManagerEndpoint.get_errors); their configurations are then the last known,
    # as of `key_managers_as_of`.
    refused: Mapping[str, Check] = field(default_factory=dict)
    # ONTAP's key stores (GET /api/security/key-stores, 9.10.1+), as last read on
    # poll.inventory_interval; None: not read (an older release, or key-stores cannot be read).
    key_stores: tuple[KeyStore, ...] | None = None
