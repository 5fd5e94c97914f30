"""What one poll of one cluster leaves behind: immutable snapshots read by every output.

The poller replaces a cluster's snapshot atomically after each poll; the metrics exposition,
the status page, the JSON API and the ``check`` command only ever read snapshots.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from akv_exporter.ontap.akv import AkvStatus, Check
from akv_exporter.ontap.cluster import ClusterIdentity

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
    akvs: tuple[AkvStatus, ...] = ()  # last known; emptied once older than poll.stale_after
    akvs_as_of: float | None = None  # when `akvs` were fetched
    last_success: float | None = None
    last: PollOutcome | None = None
    history: tuple[PollOutcome, ...] = ()  # most recent last
    poll_errors: Mapping[str, int] = field(default_factory=dict)  # cumulative, by reason
    requests: Mapping[str, int] = field(default_factory=dict)  # cumulative, by HTTP status
    unreachable_since: Mapping[str, float] = field(default_factory=dict)  # AKV uuid -> Unix time
    skipped_records: int = 0  # malformed records skipped, cumulative
    # ONTAP answered the AKV GET with an error it documents for AKV (ontap.akv.GET_ERRORS);
    # `akvs` are then the last known ones, as of `akvs_as_of`.
    akv_refused: Check | None = None
