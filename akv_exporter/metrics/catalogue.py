"""The metric catalogue: every family the exporter exposes, its name, type, labels and help.

Declarations only: the renderers (render.py) write the samples, and docs/metrics.md is generated
from this module (``make generated``). The catalogue's order is the order of /metrics. Each kind
of key manager brings its own families (``KEY_MANAGER_FAMILIES``), made from its provider's
declaration (ontap/key_manager_provider.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from akv_exporter.ontap.key_manager_provider import KeyManagerMetrics, Metric
from akv_exporter.ontap.key_manager_registry import PROVIDERS


@dataclass(frozen=True, slots=True)
class Family:
    """A metric family: its sample name, kind (gauge, counter, info), help text and labels."""

    name: str  # the sample name, as Prometheus stores it
    kind: str
    help: str
    # The labels its samples carry in this order; a cluster's families carry `cluster` and the
    # cluster's configured labels before these (tests/test_metrics.py holds the renderers to it).
    labels: tuple[str, ...] = ()
    doc: str = ""  # docs/metrics.md only: what the value means beyond the help (markdown)

    def header(self, openmetrics: bool) -> bytes:
        """Return the HELP and TYPE lines for the text format or OpenMetrics."""
        name, kind = self.name, self.kind
        if openmetrics and kind == "counter":
            name = name.removesuffix("_total")
        elif openmetrics and kind == "info":
            name = name.removesuffix("_info")
        elif kind == "info":
            kind = "gauge"
        return f"# HELP {name} {self.help}\n# TYPE {name} {kind}\n".encode()


# A family's type follows from its role in a provider's declaration (KeyManagerMetrics).
_ROLE_KINDS = {
    "info": "info",
    "message": "info",
    "get_error": "info",
}


@dataclass(frozen=True, slots=True)
class KeyManagerFamilies:
    """The families one kind of key manager is exposed as: ``ontap_akv_*`` for AKV.

    Made from the provider's declaration (ontap/key_manager_provider.py); None where the kind
    has no such thing (GCP has no ``enabled``, Barbican no EKMIP, KMIP no KEK).
    """

    info: Family  # labels: svm, uuid, scope, then the configuration's details
    service: Family | None  # the key service's reachability, with ONTAP's code
    enabled: Family | None
    kek: Family | None
    ekmip: Family | None
    message: Family | None
    unreachable_since: Family | None
    get_error: Family | None  # ONTAP answered the GET itself with an error it documents for it
    setup: Family | None  # key-managers' status, with ONTAP's code
    server_reachable: Family | None
    server_cluster_reachable: Family | None
    server_unreachable_since: Family | None

    def all(self) -> tuple[Family, ...]:
        """Return the families in the order of /metrics (the declaration's)."""
        return tuple(
            family
            for family in (
                self.info,
                self.enabled,
                self.service,
                self.kek,
                self.ekmip,
                self.message,
                self.unreachable_since,
                self.get_error,
                self.setup,
                self.server_reachable,
                self.server_cluster_reachable,
                self.server_unreachable_since,
            )
            if family is not None
        )


def _families(metrics: KeyManagerMetrics) -> KeyManagerFamilies:
    def family(role: str) -> Family | None:
        metric: Metric | None = getattr(metrics, role)
        if metric is None:
            return None
        kind = _ROLE_KINDS.get(role, "gauge")
        return Family(metric.name, kind, metric.help, labels=metric.labels, doc=metric.doc)

    roles = {role: family(role) for role in KeyManagerFamilies.__slots__}
    return KeyManagerFamilies(**roles)  # type: ignore[arg-type]


# KeyManagerStatus.kind -> its families, from each provider's declaration.
KEY_MANAGER_FAMILIES = {provider.kind: _families(provider.metrics) for provider in PROVIDERS}
# Every key-manager family once (kmip and okm share theirs), in the registry's order.
_KEY_MANAGER_FAMILY_LIST = tuple(
    {f.name: f for families in KEY_MANAGER_FAMILIES.values() for f in families.all()}.values()
)
KEY_STORE_INFO = Family(
    "ontap_key_store_info",
    "info",
    "A key store of an ONTAP cluster or SVM (GET /api/security/key-stores, 9.10.1+).",
    labels=("svm", "uuid", "type", "location", "configuration"),
    doc="`type` is ONTAP's (`akv`, `gcp`, `aws`, `barbican`, `kmip`, `okm`, `ikp`); `location` "
    "`onboard` or `external`; `configuration` from 9.14. The poller asks a cluster only for the "
    "key managers its key stores list.",
)
KEY_STORE_STATE = Family(
    "ontap_key_store_state",
    "gauge",
    "1 for the key store's current state (ONTAP 9.16.1+ key-stores state; blocked: unusable).",
    labels=("svm", "uuid", "type", "state"),
    doc="One series per key store, for its current `state` (`active`, `mixed`, `svm_kek_rekey`, "
    "`blocked`, `switching`, `initializing`, `disabling`); no series before 9.16.1.",
)

CLUSTER_INFO = Family(
    "akv_exporter_cluster_info",
    "info",
    "ONTAP cluster identity as reported by GET /api/cluster.",
    labels=("cluster_uuid", "version"),
)
CLUSTER_UP = Family(
    "akv_exporter_cluster_up", "gauge", "1 if the last poll of the cluster got a valid answer."
)
CLUSTER_LAST_SUCCESS = Family(
    "akv_exporter_cluster_last_success_timestamp_seconds",
    "gauge",
    "Unix time of the last poll that got a valid answer.",
)
CLUSTER_POLL_DURATION = Family(
    "akv_exporter_cluster_poll_duration_seconds", "gauge", "Duration of the last poll."
)
CLUSTER_POLL_ERRORS = Family(
    "akv_exporter_cluster_poll_errors_total",
    "counter",
    "Failed polls, by reason.",
    labels=("reason",),
    doc="Every reason is present from the first poll on (0).",
)
CLUSTER_REQUESTS = Family(
    "akv_exporter_ontap_requests_total",
    "counter",
    "HTTP requests answered by ONTAP, by status.",
    labels=("status",),
    doc="`status` is the HTTP status code.",
)
CLUSTER_SKIPPED = Family(
    "akv_exporter_cluster_skipped_records_total",
    "counter",
    "Malformed azure-key-vaults records skipped.",
    doc="The rest of the answer is kept.",
)
RELOAD_OK = Family(
    "akv_exporter_config_last_reload_successful",
    "gauge",
    "1 if the last configuration reload succeeded.",
)
RELOAD_TIME = Family(
    "akv_exporter_config_last_reload_success_timestamp_seconds",
    "gauge",
    "Unix time of the last successful configuration load.",
)
BUILD_INFO = Family(
    "akv_exporter_build_info",
    "info",
    "Version of akv-exporter and Python.",
    labels=("version", "python_version"),
)
PROBE_SUCCESS = Family(
    "akv_exporter_probe_success",
    "gauge",
    "1 if the probe got a valid answer from the cluster.",
    doc="`/probe` only.",
)
PROBE_DURATION = Family(
    "akv_exporter_probe_duration_seconds",
    "gauge",
    "How long the probe took, in seconds.",
    doc="`/probe` only.",
)
KM_MONITOR_ENABLED = Family(
    "ontap_key_manager_health_monitor_enabled",
    "gauge",
    "1 if ONTAP's key-manager health monitor runs (health_monitor_policy.<km>.enabled).",
    labels=("key_manager",),
    doc="`key_manager`: ONTAP's name of the policy (`akv`, `aws`, `barbican`, `gcp`, `ikp`, "
    "`kmip`, `okm`).",
)
KM_VOLUME_OFFLINE = Family(
    "ontap_key_manager_manage_volume_offline",
    "gauge",
    "1 if ONTAP takes encrypted volumes offline when the key manager stays unreachable "
    "(health_monitor_policy.<km>.manage_volume_offline).",
    labels=("key_manager",),
)
KM_MONITOR_INTERVAL = Family(
    "ontap_key_manager_health_monitor_interval_seconds",
    "gauge",
    "How often ONTAP's health monitor checks each key manager (health_monitor_polling_interval).",
)
ENCRYPTED_VOLUMES = Family(
    "ontap_encrypted_volumes",
    "gauge",
    "Volumes with encryption.enabled, by SVM and volume state.",
    labels=("svm", "state"),
    doc="`online` and `offline` are always present (0) for an SVM with encrypted volumes or "
    "with an AKV configuration of its own.",
)
EMS_EVENTS = Family(
    "ontap_ems_events_total",
    "counter",
    "ONTAP key-manager EMS events logged since the exporter started (history not counted).",
    labels=("node", "svm", "event"),
    doc="ONTAP's `ekmip.akv.*` events; those of the 24 hours before start give the series at 0. "
    "`svm` is the SVM the event names (its `svm` or `vserver` parameter), empty when none.",
)
EMS_EVENT_LAST = Family(
    "ontap_ems_event_last_timestamp_seconds",
    "gauge",
    "Unix time of the last such EMS event, from the last 24 hours before start on.",
    labels=("node", "svm", "event"),
)
ENDPOINT_ERRORS = Family(
    "akv_exporter_endpoint_poll_errors_total",
    "counter",
    "Failed slow polls (policy, volumes, EMS events), by endpoint and reason; never cluster down.",
    labels=("endpoint", "reason"),
    doc="`endpoint`: `/api/security/key-manager-configs`, `/api/storage/volumes`, "
    "`/api/support/ems/events`.",
)
ENDPOINT_LAST_SUCCESS = Family(
    "akv_exporter_endpoint_last_success_timestamp_seconds",
    "gauge",
    "Unix time of the last good answer of a slow-polled endpoint.",
    labels=("endpoint",),
)
SHARD_ORDINAL = Family(
    "akv_exporter_shard_ordinal",
    "gauge",
    "The shard this process polls (--shard; 0 unsharded).",
    doc="[scaling.md](scaling.md)",
)
TOTAL_SHARDS = Family(
    "akv_exporter_total_shards",
    "gauge",
    "How many shards the clusters are split into (1 unsharded).",
    doc="`--total-shards`; [scaling.md](scaling.md)",
)
PROBE_CACHED = Family(
    "akv_exporter_probe_cached",
    "gauge",
    "1 if the probe returned the cluster's last poll, which ended within poll.min_interval.",
    doc="`/probe` only.",
)
STATE_WRITE_ERRORS = Family(
    "akv_exporter_state_write_errors_total",
    "counter",
    "Failed writes of the state file (unreachable streaks); polling and serving go on.",
    doc="One warning per failure streak; unreachable streaks are kept in memory.",
)

CLUSTER_FAMILIES = (
    *_KEY_MANAGER_FAMILY_LIST,
    KEY_STORE_INFO,
    KEY_STORE_STATE,
    CLUSTER_INFO,
    CLUSTER_UP,
    CLUSTER_LAST_SUCCESS,
    CLUSTER_POLL_DURATION,
    CLUSTER_POLL_ERRORS,
    CLUSTER_REQUESTS,
    CLUSTER_SKIPPED,
    KM_MONITOR_ENABLED,
    KM_VOLUME_OFFLINE,
    KM_MONITOR_INTERVAL,
    ENCRYPTED_VOLUMES,
    EMS_EVENTS,
    EMS_EVENT_LAST,
    ENDPOINT_ERRORS,
    ENDPOINT_LAST_SUCCESS,
)
GLOBAL_FAMILIES = (
    RELOAD_OK,
    RELOAD_TIME,
    BUILD_INFO,
    SHARD_ORDINAL,
    TOTAL_SHARDS,
    STATE_WRITE_ERRORS,
)
PROBE_FAMILIES = (PROBE_SUCCESS, PROBE_DURATION, PROBE_CACHED)  # /probe's own, after the cluster's
