"""What one poll of one cluster leaves behind: immutable snapshots read by every output.

The poller replaces a cluster's snapshot atomically after each poll; the metrics exposition,
the status page, the JSON API and the ``check`` command only ever read snapshots.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from akv_exporter.ontap.cluster import ClusterIdentity
from akv_exporter.ontap.keymanager import Check, KeyManagerStatus

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
    # Key managers (by kind) whose GET ONTAP answered with an error it documents for that
    # endpoint (KeyManagerEndpoint.get_errors); their configurations are then the last known,
    # as of `key_managers_as_of`.
    refused: Mapping[str, Check] = field(default_factory=dict)
