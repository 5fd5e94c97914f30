"""Snapshots -> metric families -> pre-rendered exposition bytes.

Each cluster's samples are rendered once, when its snapshot changes, into one byte string per
metric family. A scrape sends every cluster's samples of a family, joined (cached until one of
them changes), under the family's HELP/TYPE lines, family after family, so serving ``/metrics``
never waits on ONTAP and costs little more than sending bytes. A cluster that leaves the
configuration leaves the output with it.

The output for one healthy SVM configuration on a two-node cluster looks like::

    ontap_akv_info{cluster="c1",svm="vs1",uuid="u1",scope="svm",configuration="default",...} 1
    ontap_akv_enabled{cluster="c1",svm="vs1",uuid="u1"} 1
    ontap_akv_azure_reachable{cluster="c1",svm="vs1",uuid="u1",code="0"} 1
    ontap_akv_kek_available{cluster="c1",svm="vs1",uuid="u1",code="0"} 1
    ontap_akv_ekmip_reachable{cluster="c1",svm="vs1",uuid="u1",node="c1-01",code="0"} 1
    ontap_akv_ekmip_reachable{cluster="c1",svm="vs1",uuid="u1",node="c1-02",code="0"} 1
    akv_exporter_cluster_up{cluster="c1"} 1
"""

from __future__ import annotations

import functools
import platform
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client import generate_latest as generate_text
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

from akv_exporter import __version__
from akv_exporter.ontap.keymanagers import BY_KIND
from akv_exporter.snapshot import REASONS, BlastRadius, ClusterSnapshot

TEXT_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS_CONTENT_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"
MESSAGE_LIMIT = 256


@dataclass(frozen=True, slots=True)
class Family:
    """A metric family: its sample name, kind (gauge, counter, info) and help text."""

    name: str  # the sample name, as Prometheus stores it
    kind: str
    help: str

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


AKV_INFO = Family("ontap_akv_info", "info", "AKV configuration of an ONTAP cluster or SVM.")
AKV_ENABLED = Family("ontap_akv_enabled", "gauge", "1 if the AKV configuration is enabled.")
AKV_AZURE = Family(
    "ontap_akv_azure_reachable",
    "gauge",
    "1 if Azure Key Vault is reachable from all nodes (ONTAP azure_reachability.reachable).",
)
AKV_KEK = Family(
    "ontap_akv_kek_available",
    "gauge",
    "1 if the AKV-wrapped KEK is available on all nodes (ONTAP state.available).",
)
AKV_EKMIP = Family(
    "ontap_akv_ekmip_reachable",
    "gauge",
    "1 if the node reaches the embedded KMIP servers (ONTAP ekmip_reachability.reachable).",
)
AKV_MESSAGE = Family(
    "ontap_akv_status_message_info", "info", "ONTAP's status message for a failing AKV check."
)
AKV_UNREACHABLE_SINCE = Family(
    "ontap_akv_azure_unreachable_since_timestamp_seconds",
    "gauge",
    "Unix time of the first poll of the current Azure-unreachable streak.",
)
AKV_GET_ERROR = Family(
    "ontap_akv_get_error_info",
    "info",
    "ONTAP answered GET azure-key-vaults with an AKV error code NetApp documents for it.",
)


@dataclass(frozen=True, slots=True)
class KeyManagerFamilies:
    """The families one kind of key manager is exposed as: ``ontap_akv_*`` for AKV."""

    info: Family  # labels: svm, uuid, scope, then the configuration's details
    enabled: Family
    service: Family  # the key service's reachability, with ONTAP's code
    kek: Family
    ekmip: Family
    message: Family
    unreachable_since: Family
    get_error: Family  # ONTAP answered the GET itself with an error it documents for it

    def all(self) -> tuple[Family, ...]:
        return (
            self.info,
            self.enabled,
            self.service,
            self.kek,
            self.ekmip,
            self.message,
            self.unreachable_since,
            self.get_error,
        )


# KeyManagerStatus.kind -> its families: a new key manager adds its own here (its rendering).
KEY_MANAGER_FAMILIES = {
    "akv": KeyManagerFamilies(
        info=AKV_INFO,
        enabled=AKV_ENABLED,
        service=AKV_AZURE,
        kek=AKV_KEK,
        ekmip=AKV_EKMIP,
        message=AKV_MESSAGE,
        unreachable_since=AKV_UNREACHABLE_SINCE,
        get_error=AKV_GET_ERROR,
    ),
}

CLUSTER_INFO = Family(
    "akv_exporter_cluster_info", "info", "ONTAP cluster identity as reported by GET /api/cluster."
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
    "akv_exporter_cluster_poll_errors_total", "counter", "Failed polls, by reason."
)
CLUSTER_REQUESTS = Family(
    "akv_exporter_ontap_requests_total", "counter", "HTTP requests answered by ONTAP, by status."
)
CLUSTER_SKIPPED = Family(
    "akv_exporter_cluster_skipped_records_total",
    "counter",
    "Malformed azure-key-vaults records skipped.",
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
BUILD_INFO = Family("akv_exporter_build_info", "info", "Version of akv-exporter and Python.")
PROBE_SUCCESS = Family(
    "akv_exporter_probe_success", "gauge", "1 if the probe got a valid answer from the cluster."
)
PROBE_DURATION = Family(
    "akv_exporter_probe_duration_seconds", "gauge", "How long the probe took, in seconds."
)
KM_MONITOR_ENABLED = Family(
    "ontap_key_manager_health_monitor_enabled",
    "gauge",
    "1 if ONTAP's key-manager health monitor runs (health_monitor_policy.<km>.enabled).",
)
KM_VOLUME_OFFLINE = Family(
    "ontap_key_manager_manage_volume_offline",
    "gauge",
    "1 if ONTAP takes encrypted volumes offline when the key manager stays unreachable "
    "(health_monitor_policy.<km>.manage_volume_offline).",
)
KM_MONITOR_INTERVAL = Family(
    "ontap_key_manager_health_monitor_interval_seconds",
    "gauge",
    "How often ONTAP's health monitor checks each key manager (health_monitor_polling_interval).",
)
ENCRYPTED_VOLUMES = Family(
    "ontap_encrypted_volumes", "gauge", "Volumes with encryption.enabled, by SVM and volume state."
)
EMS_EVENTS = Family(
    "ontap_ems_events_total",
    "counter",
    "ONTAP key-manager EMS events logged since the exporter started (history not counted).",
)
EMS_EVENT_LAST = Family(
    "ontap_ems_event_last_timestamp_seconds",
    "gauge",
    "Unix time of the last such EMS event, from the last 24 hours before start on.",
)
ENDPOINT_ERRORS = Family(
    "akv_exporter_endpoint_poll_errors_total",
    "counter",
    "Failed slow polls (policy, volumes, EMS events), by endpoint and reason; never cluster down.",
)
ENDPOINT_LAST_SUCCESS = Family(
    "akv_exporter_endpoint_last_success_timestamp_seconds",
    "gauge",
    "Unix time of the last good answer of a slow-polled endpoint.",
)
# Volume states always present for an SVM with encrypted volumes, so "none offline" reads 0.
ALWAYS_STATES = ("online", "offline")
SHARD_ORDINAL = Family(
    "akv_exporter_shard_ordinal", "gauge", "The shard this process polls (--shard; 0 unsharded)."
)
TOTAL_SHARDS = Family(
    "akv_exporter_total_shards",
    "gauge",
    "How many shards the clusters are split into (1 unsharded).",
)
PROBE_CACHED = Family(
    "akv_exporter_probe_cached",
    "gauge",
    "1 if the probe returned the cluster's last poll, which ended within poll.min_interval.",
)
STATE_WRITE_ERRORS = Family(
    "akv_exporter_state_write_errors_total",
    "counter",
    "Failed writes of the state file (unreachable streaks); polling and serving go on.",
)

CLUSTER_FAMILIES = (
    *(family for families in KEY_MANAGER_FAMILIES.values() for family in families.all()),
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


def escape_label_value(value: str) -> str:
    """Return ``value`` escaped for a label in the text format and OpenMetrics."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def label_message(message: str) -> str:
    """Return ONTAP's message as a label value: whitespace folded, at most 256 characters."""
    folded = " ".join(message.split())
    return folded if len(folded) <= MESSAGE_LIMIT else folded[: MESSAGE_LIMIT - 1] + "…"


def format_value(value: float) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    return repr(float(value))


def labels_text(pairs: Iterable[tuple[str, str]]) -> str:
    """Return ``name="value",...`` for ``pairs``: the one place label values are rendered."""
    return ",".join(f'{name}="{escape_label_value(value)}"' for name, value in pairs)


Labels = tuple[tuple[str, str], ...]
_PREFIXES_KEPT = 512  # series names remembered per cluster; more (a flood of messages) start over


class _Samples:
    """Collects sample lines per family for one cluster, all sharing the cluster's labels.

    ``prefixes`` remembers each series' rendered name and labels between polls of the cluster
    (the caller keeps it while the cluster's own labels stay): a poll changes values, rarely
    series, and escaping and joining labels was most of rendering a poll.
    """

    def __init__(self, base: Labels, prefixes: dict[tuple[str, Labels], str] | None = None):
        self.base = labels_text(base)
        self.lines: dict[str, list[str]] = {}
        self._prefixes = {} if prefixes is None else prefixes

    def add(self, family: Family, labels: Labels, value: float) -> None:
        prefix = self._prefixes.get((family.name, labels))
        if prefix is None:
            extra = labels_text(labels)
            inner = ",".join(part for part in (self.base, extra) if part)
            prefix = f"{family.name}{{{inner}}} " if inner else f"{family.name} "
            if len(self._prefixes) >= _PREFIXES_KEPT:
                self._prefixes.clear()
            self._prefixes[(family.name, labels)] = prefix
        line = prefix + format_value(value) + "\n"
        lines = self.lines.get(family.name)
        if lines is None:
            self.lines[family.name] = [line]
        else:
            lines.append(line)

    def encoded(self) -> dict[str, bytes]:
        return {name: "".join(lines).encode() for name, lines in self.lines.items()}


def render_cluster(snapshot: ClusterSnapshot) -> dict[str, bytes]:
    """Return the sample lines of one cluster, one byte string per family name.

    A cluster not yet polled has no series at all: unknown, rather than down.
    """
    if snapshot.last is None:
        return {}
    return {**render_key_managers(snapshot), **render_state(snapshot)}


def render_key_managers(snapshot: ClusterSnapshot) -> dict[str, bytes]:
    """Return the samples of a cluster's key-manager configurations (most of its samples)."""
    out = _Samples(cluster_labels(snapshot))
    for status in snapshot.key_managers:
        families = KEY_MANAGER_FAMILIES[status.kind]
        ident = (("svm", status.svm), ("uuid", status.uuid))
        out.add(families.info, (*ident, ("scope", status.scope), *status.details), 1)
        if status.enabled is not None:
            out.add(families.enabled, ident, status.enabled)
        checks = (
            (families.service, status.service, BY_KIND[status.kind].service),
            (families.kek, status.kek, "kek"),
        )
        for family, check, name in checks:
            if check is None:
                continue
            out.add(family, (*ident, ("code", check.code)), check.ok)
            if check.message:
                message = (
                    ("node", ""),
                    ("code", check.code),
                    ("message", label_message(check.message)),
                )
                out.add(families.message, (*ident, ("check", name), *message), 1)
        for node in status.ekmip:
            out.add(families.ekmip, (*ident, ("node", node.node), ("code", node.code)), node.ok)
            if node.message:
                message = (
                    ("node", node.node),
                    ("code", node.code),
                    ("message", label_message(node.message)),
                )
                out.add(families.message, (*ident, ("check", "ekmip"), *message), 1)
        since = snapshot.unreachable_since.get(status.uuid)
        if since is not None:
            out.add(families.unreachable_since, ident, since)
    return out.encoded()


def cluster_labels(snapshot: ClusterSnapshot) -> Labels:
    """Return the labels every series of a cluster carries: its name, then configured ones."""
    return (("cluster", snapshot.name), *snapshot.labels)


def render_state(
    snapshot: ClusterSnapshot, prefixes: dict[tuple[str, Labels], str] | None = None
) -> dict[str, bytes]:
    """Return the samples of the cluster itself: its poll, identity and requests.

    ``prefixes``: the cluster's series names remembered from its earlier polls (_Samples).
    """
    return {**render_settled(snapshot, prefixes), **render_poll(snapshot, prefixes)}


def settled_source(snapshot: ClusterSnapshot) -> tuple:
    """Return what ``render_settled`` renders from: equal sources render the same samples."""
    return (
        snapshot.refused,
        snapshot.identity,
        snapshot.up,
        snapshot.poll_errors,
        snapshot.skipped_records,
        snapshot.blast,
        snapshot.key_managers,
    )


def render_settled(
    snapshot: ClusterSnapshot, prefixes: dict[tuple[str, Labels], str] | None = None
) -> dict[str, bytes]:
    """Return the cluster's samples that most polls leave as they were: identity, up, errors,
    skipped records and the slow polls' (blast radius) series."""
    out = _Samples(cluster_labels(snapshot), prefixes)
    for kind, error in snapshot.refused.items():
        message = label_message(error.message)
        family = KEY_MANAGER_FAMILIES[kind].get_error
        out.add(family, (("code", error.code), ("message", message)), 1)
    if snapshot.identity is not None:
        identity = snapshot.identity
        out.add(CLUSTER_INFO, (("cluster_uuid", identity.uuid), ("version", identity.version)), 1)
    out.add(CLUSTER_UP, (), snapshot.up)
    for reason in REASONS:
        out.add(CLUSTER_POLL_ERRORS, (("reason", reason),), snapshot.poll_errors.get(reason, 0))
    out.add(CLUSTER_SKIPPED, (), snapshot.skipped_records)
    # An SVM with its own AKV configuration and no encrypted volume shows 0, not nothing, so
    # OntapAkvKekUnavailable can stay quiet for it (NetApp: no KEK to wrap before a volume).
    svms = {km.svm for km in snapshot.key_managers if km.svm}
    _render_blast_radius(out, snapshot.blast, svms)
    return out.encoded()


def render_poll(
    snapshot: ClusterSnapshot, prefixes: dict[tuple[str, Labels], str] | None = None
) -> dict[str, bytes]:
    """Return the cluster's samples every poll changes: its time, duration and requests."""
    out = _Samples(cluster_labels(snapshot), prefixes)
    if snapshot.last_success is not None:
        out.add(CLUSTER_LAST_SUCCESS, (), snapshot.last_success)
    if snapshot.last is not None:
        out.add(CLUSTER_POLL_DURATION, (), snapshot.last.duration)
    for status, count in sorted(snapshot.requests.items()):
        out.add(CLUSTER_REQUESTS, (("status", status),), count)
    return out.encoded()


def assemble(
    families: Iterable[Family], fragments: Sequence[Mapping[str, bytes]], openmetrics: bool
) -> list[bytes]:
    """Return each family's HELP/TYPE lines followed by its samples from every fragment.

    The one assembler of /metrics and /probe: families in catalogue order, a family with no
    samples left out entirely.
    """
    parts: list[bytes] = []
    for family in families:
        samples = [fragment[family.name] for fragment in fragments if family.name in fragment]
        if samples:
            parts.append(family.header(openmetrics))
            parts.extend(samples)
    return parts


def render_probe(
    snapshot: ClusterSnapshot | None,
    success: bool,
    duration: float,
    openmetrics: bool,
    cached: bool = False,
) -> bytes:
    """Return a /probe body: one cluster's families, then the probe's own three."""
    probe = _Samples(())
    probe.add(PROBE_SUCCESS, (), success)
    probe.add(PROBE_DURATION, (), duration)
    probe.add(PROBE_CACHED, (), cached)
    fragments = [render_cluster(snapshot)] if snapshot is not None else []
    parts = assemble(CLUSTER_FAMILIES, fragments, openmetrics)
    parts += assemble(PROBE_FAMILIES, [probe.encoded()], openmetrics)
    if openmetrics:
        parts.append(b"# EOF\n")
    return b"".join(parts)


def _render_blast_radius(out: _Samples, blast: BlastRadius, svms: set[str]) -> None:
    """Add the slow polls' series: policy, encrypted volumes, EMS events, endpoint health.

    A release without key-manager-configs, or a poll not yet answered, gives no series.
    """
    if blast.policy is not None:
        for policy in blast.policy.policies:
            km = (("key_manager", policy.key_manager),)
            if policy.enabled is not None:
                out.add(KM_MONITOR_ENABLED, km, policy.enabled)
            if policy.manage_volume_offline is not None:
                out.add(KM_VOLUME_OFFLINE, km, policy.manage_volume_offline)
        if blast.policy.polling_interval_minutes is not None:
            out.add(KM_MONITOR_INTERVAL, (), blast.policy.polling_interval_minutes * 60)
    if blast.volumes is not None:
        for svm in sorted(set(blast.volumes.svms()) | svms):
            counts = {c.state: c.count for c in blast.volumes.counts if c.svm == svm}
            for state in sorted(set(ALWAYS_STATES) | set(counts)):
                out.add(ENCRYPTED_VOLUMES, (("svm", svm), ("state", state)), counts.get(state, 0))
    for event in blast.events:
        labels = (("node", event.node), ("event", event.name))
        out.add(EMS_EVENTS, labels, event.count)
        out.add(EMS_EVENT_LAST, labels, event.last_time)
    for (endpoint, reason), count in sorted(blast.errors.items()):
        out.add(ENDPOINT_ERRORS, (("endpoint", endpoint), ("reason", reason)), count)
    for endpoint, when in sorted(blast.last_success.items()):
        out.add(ENDPOINT_LAST_SUCCESS, (("endpoint", endpoint),), when)


def _process_registry() -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


@functools.cache
def _header(family: Family, openmetrics: bool) -> bytes:
    return family.header(openmetrics)


def _gzip_member(*chunks: bytes) -> bytes:
    """Return ``chunks`` as one gzip member (header and trailer included), compressed quickly.

    Fed to zlib in turn, not joined first: a family's samples run to megabytes at 5,000
    clusters.
    """
    compressor = zlib.compressobj(1, zlib.DEFLATED, 31)  # 31: gzip framing, mtime 0
    return b"".join([*(compressor.compress(chunk) for chunk in chunks), compressor.flush()])


class Exposition:
    """The pre-rendered /metrics body, updated one cluster at a time.

    At fleet scale a scrape must not cost what the fleet's size costs. Each family keeps every
    cluster's samples of it (in the order clusters were first published) and their join, made
    again only after a cluster's samples of that family changed; gzip-compressed, each family is
    a gzip member of its own, compressed again on the same condition. Between two polls of a
    cluster only its poll time, duration and request counters change, so a scrape re-joins and
    re-compresses those few families and reuses the rest, most of the bytes. The body goes out
    as those parts (``parts``), never copied into one string first.
    """

    def __init__(self, *, process_metrics: bool = True):
        # cluster key -> family -> its samples; in the order clusters were first published.
        self._fragments: dict[str, dict[str, bytes]] = {}
        # family -> cluster key -> samples: what a family's join is made of.
        self._families: dict[str, dict[str, bytes]] = {f.name: {} for f in CLUSTER_FAMILIES}
        self._position: dict[str, int] = {}  # cluster key -> its place in _fragments
        self._published = 0
        self._unordered: set[str] = set()  # families whose clusters are out of that order
        self._joined: dict[str, bytes] = {}  # family -> every cluster's samples, in order
        self._members: dict[tuple[str, bool], tuple[bytes, bytes]] = {}  # -> (join, member)
        # A cluster's rendered key-manager samples and what they were rendered from: polls that
        # bring the same records (most polls) do not render them again.
        self._key_manager_samples: dict[str, tuple[tuple, dict[str, bytes]]] = {}
        # The same for the cluster's own samples most polls leave as they were (render_settled).
        self._settled_samples: dict[str, tuple[tuple, dict[str, bytes]]] = {}
        # A cluster's series names from earlier polls, while its own labels stay the same.
        self._prefixes: dict[str, tuple[Labels, dict[tuple[str, Labels], str]]] = {}
        self._generation = 0
        self._cache: dict[bool, tuple[int, bytes]] = {}  # openmetrics -> (generation, body())
        self._process = _process_registry() if process_metrics else None
        self._global_lines: dict[str, bytes] = {}
        self._global_members: dict[bool, tuple[bytes, bytes]] = {}
        self._last_reload_success: float | None = None
        self._shard = (0, 1)
        self._state_write_errors = 0
        self.set_reload(successful=True, timestamp=None)

    def update(self, key: str, snapshot: ClusterSnapshot) -> None:
        """Re-render one cluster's samples from its new snapshot."""
        fragment = self._render(key, snapshot)
        previous = self._fragments.get(key)
        if previous is None:
            previous = {}
            self._position[key] = self._published
            self._published += 1
        self._fragments[key] = fragment
        changed = False
        for name, samples in fragment.items():
            old = previous.get(name)
            if old is not None and old == samples:
                continue
            family = self._families.setdefault(name, {})
            if old is None and family:
                last = next(reversed(family))
                if self._position[last] > self._position[key]:
                    self._unordered.add(name)  # joined in publishing order again when next asked
            family[key] = samples
            self._joined.pop(name, None)
            changed = True
        for name in previous.keys() - fragment.keys():
            del self._families[name][key]
            self._joined.pop(name, None)
            changed = True
        if changed:
            self._generation += 1

    def _render(self, key: str, snapshot: ClusterSnapshot) -> dict[str, bytes]:
        if snapshot.last is None:
            self._forget(key)
            return {}
        base = cluster_labels(snapshot)
        known = self._prefixes.get(key)
        if known is None or known[0] != base:
            known = self._prefixes[key] = (base, {})
            self._key_manager_samples.pop(key, None)  # rendered with other cluster labels
            self._settled_samples.pop(key, None)
        prefixes = known[1]
        source = (snapshot.key_managers, snapshot.unreachable_since)
        settled = settled_source(snapshot)
        # Tuples compare their items by identity first: the same records cost next to nothing.
        # Equal records parsed anew (a first poll's fields=**, then the release's) are kept as
        # the source, so that from the next poll on they compare by identity too.
        cached = self._key_manager_samples.get(key)
        samples = cached[1] if cached is not None and cached[0] == source else None
        if samples is None:
            samples = render_key_managers(snapshot)
        self._key_manager_samples[key] = (source, samples)
        cached = self._settled_samples.get(key)
        state = cached[1] if cached is not None and cached[0] == settled else None
        if state is None:
            state = render_settled(snapshot, prefixes)
        self._settled_samples[key] = (settled, state)
        return {**samples, **state, **render_poll(snapshot, prefixes)}

    def _forget(self, key: str) -> None:
        """Forget what a cluster's samples were rendered from."""
        self._key_manager_samples.pop(key, None)
        self._settled_samples.pop(key, None)
        self._prefixes.pop(key, None)

    def remove(self, key: str) -> None:
        """Drop a cluster that is no longer configured."""
        self._forget(key)
        self._position.pop(key, None)
        previous = self._fragments.pop(key, None)
        if previous is not None:
            for name in previous:
                del self._families[name][key]
                self._joined.pop(name, None)
            self._generation += 1

    def set_shard(self, ordinal: int, total: int) -> None:
        """Record the shard this process polls (akv_exporter_shard_ordinal, _total_shards)."""
        self._shard = (ordinal, total)
        self.set_reload(successful=self._reload_ok, timestamp=None)

    def set_reload(self, *, successful: bool, timestamp: float | None) -> None:
        """Record the outcome of the last configuration (re)load; a failure keeps the old time."""
        if timestamp is not None:
            self._last_reload_success = timestamp
        self._reload_ok = successful
        self._render_globals()

    def set_state_write_errors(self, count: int) -> None:
        """Record how many writes of the state file have failed since start."""
        self._state_write_errors = count
        self._render_globals()

    def _render_globals(self) -> None:
        samples = _Samples(())
        samples.add(RELOAD_OK, (), self._reload_ok)
        if self._last_reload_success is not None:
            samples.add(RELOAD_TIME, (), self._last_reload_success)
        samples.add(
            BUILD_INFO,
            (("version", __version__), ("python_version", platform.python_version())),
            1,
        )
        samples.add(SHARD_ORDINAL, (), self._shard[0])
        samples.add(TOTAL_SHARDS, (), self._shard[1])
        samples.add(STATE_WRITE_ERRORS, (), self._state_write_errors)
        self._global_lines = samples.encoded()
        self._global_members.clear()
        self._generation += 1

    def _samples_of(self, name: str) -> bytes:
        """Return every cluster's samples of one family, joined again only after a change."""
        joined = self._joined.get(name)
        if joined is None:
            family = self._families[name]
            if name in self._unordered:
                self._unordered.discard(name)
                family = self._families[name] = {
                    k: family[k] for k in self._fragments if k in family
                }
            joined = self._joined[name] = b"".join(family.values())
        return joined

    def _member(self, family: Family, samples: bytes, openmetrics: bool) -> bytes:
        """Return the family's header and samples as a gzip member, compressed once per join."""
        known = self._members.get((family.name, openmetrics))
        if known is None or known[0] is not samples:
            member = _gzip_member(_header(family, openmetrics), samples)
            known = self._members[(family.name, openmetrics)] = (samples, member)
        return known[1]

    def _parts(self, openmetrics: bool, gzipped: bool) -> list[bytes]:
        """Return the cluster and exporter samples as parts of a body (gzip members if asked)."""
        parts: list[bytes] = []
        for family in CLUSTER_FAMILIES:
            samples = self._samples_of(family.name)
            if not samples:
                continue
            if gzipped:
                parts.append(self._member(family, samples, openmetrics))
            else:
                parts += (_header(family, openmetrics), samples)
        exporter = b"".join(assemble(GLOBAL_FAMILIES, [self._global_lines], openmetrics))
        if gzipped:
            known = self._global_members.get(openmetrics)
            if known is None:
                known = self._global_members[openmetrics] = (exporter, _gzip_member(exporter))
            exporter = known[1]
        parts.append(exporter)
        return parts

    def body(self, *, openmetrics: bool = False, gzipped: bool = False) -> bytes:
        """Return the pre-rendered cluster and exporter samples as one string (until a change).

        Gzipped, it is a concatenation of gzip members (one valid gzip stream), one per family.
        """
        if gzipped:
            return b"".join(self._parts(openmetrics, gzipped=True))
        cached = self._cache.get(openmetrics)
        if cached is None or cached[0] != self._generation:
            cached = self._cache[openmetrics] = (
                self._generation,
                b"".join(self._parts(openmetrics, gzipped=False)),
            )
        return cached[1]

    def parts(self, *, openmetrics: bool = False, gzipped: bool = False) -> list[bytes]:
        """Return a whole /metrics body in parts: the cached samples, then the live process
        metrics. Sent one after the other, they are the body; nothing is copied to join them.

        Gzipped, every part is a gzip member: a concatenation of members is one valid gzip
        stream (RFC 1952), which Prometheus, curl and browsers read whole.
        """
        if self._process is None:
            tail = b"# EOF\n" if openmetrics else b""
        elif openmetrics:
            tail = generate_openmetrics(self._process)
        else:
            tail = generate_text(self._process)
        parts = self._parts(openmetrics, gzipped)
        if tail:
            parts.append(_gzip_member(tail) if gzipped else tail)
        return parts

    def scrape(self, *, openmetrics: bool = False, gzipped: bool = False) -> bytes:
        """Return a whole /metrics body as one string (``parts`` joined)."""
        return b"".join(self.parts(openmetrics=openmetrics, gzipped=gzipped))


def wants_openmetrics(accept: str) -> bool:
    return "application/openmetrics-text" in accept
