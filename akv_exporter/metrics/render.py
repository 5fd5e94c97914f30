"""Snapshots -> sample lines, one byte string per metric family; the /probe body.

The one place label values are escaped and samples are formatted. The output for one healthy SVM
configuration on a two-node cluster looks like::

    ontap_akv_info{cluster="c1",svm="vs1",uuid="u1",scope="svm",configuration="default",...} 1
    ontap_akv_enabled{cluster="c1",svm="vs1",uuid="u1"} 1
    ontap_akv_azure_reachable{cluster="c1",svm="vs1",uuid="u1",code="0"} 1
    ontap_akv_kek_available{cluster="c1",svm="vs1",uuid="u1",code="0"} 1
    ontap_akv_ekmip_reachable{cluster="c1",svm="vs1",uuid="u1",node="c1-01",code="0"} 1
    ontap_akv_ekmip_reachable{cluster="c1",svm="vs1",uuid="u1",node="c1-02",code="0"} 1
    akv_exporter_cluster_up{cluster="c1"} 1
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from akv_exporter.metrics.catalogue import (
    CLUSTER_FAMILIES,
    CLUSTER_INFO,
    CLUSTER_LAST_SUCCESS,
    CLUSTER_POLL_DURATION,
    CLUSTER_POLL_ERRORS,
    CLUSTER_REQUESTS,
    CLUSTER_SKIPPED,
    CLUSTER_UP,
    EMS_EVENT_LAST,
    EMS_EVENTS,
    ENCRYPTED_VOLUMES,
    ENDPOINT_ERRORS,
    ENDPOINT_LAST_SUCCESS,
    KEY_MANAGER_FAMILIES,
    KEY_STORE_INFO,
    KEY_STORE_STATE,
    KM_MONITOR_ENABLED,
    KM_MONITOR_INTERVAL,
    KM_VOLUME_OFFLINE,
    PROBE_CACHED,
    PROBE_DURATION,
    PROBE_FAMILIES,
    PROBE_SUCCESS,
    Family,
    KeyManagerFamilies,
)
from akv_exporter.ontap.key_manager_endpoint import KeyManagerStatus
from akv_exporter.ontap.key_manager_registry import BY_KIND
from akv_exporter.ontap.key_servers import AVAILABLE, NOT_RESPONDING, streak_key
from akv_exporter.snapshot import REASONS, BlastRadius, ClusterSnapshot

TEXT_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS_CONTENT_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"
MESSAGE_LIMIT = 256
# Volume states always present for an SVM with encrypted volumes, so "none offline" reads 0.
ALWAYS_STATES = ("online", "offline")


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


class Samples:
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
    """Return the samples of a cluster's key-manager configurations (most of its samples).

    Each kind's families are its provider's declaration; what a kind does not have (GCP's
    ``enabled``, Barbican's EKMIP, KMIP's KEK) has no family and no series.
    """
    out = Samples(cluster_labels(snapshot))
    for status in snapshot.key_managers:
        families = KEY_MANAGER_FAMILIES[status.kind]
        ident = (("svm", status.svm), ("uuid", status.uuid))
        out.add(families.info, (*ident, ("scope", status.scope), *status.details), 1)
        if status.enabled is not None and families.enabled is not None:
            out.add(families.enabled, ident, status.enabled)
        checks = (
            (families.service, status.service, BY_KIND[status.kind].endpoint.service),
            (families.kek, status.kek, "kek"),
            (families.setup, status.setup, "setup"),
        )
        for family, check, name in checks:
            if check is None or family is None:
                continue
            out.add(family, (*ident, ("code", check.code)), check.ok)
            if check.message and families.message is not None:
                message = (
                    ("node", ""),
                    ("code", check.code),
                    ("message", label_message(check.message)),
                )
                out.add(families.message, (*ident, ("check", name), *message), 1)
        if families.ekmip is not None:
            for node in status.ekmip:
                labels = (*ident, ("node", node.node), ("code", node.code))
                out.add(families.ekmip, labels, node.ok)
                if node.message and families.message is not None:
                    message = (
                        ("node", node.node),
                        ("code", node.code),
                        ("message", label_message(node.message)),
                    )
                    out.add(families.message, (*ident, ("check", "ekmip"), *message), 1)
        since = snapshot.unreachable_since.get(status.uuid)
        if since is not None and families.unreachable_since is not None:
            out.add(families.unreachable_since, ident, since)
        if status.servers:
            _render_servers(out, families, status, ident, snapshot.unreachable_since)
    return out.encoded()


def _render_servers(
    out: Samples,
    families: KeyManagerFamilies,
    status: KeyManagerStatus,
    ident: Labels,
    unreachable_since: Mapping[str, float],
) -> None:
    """Add the KMIP key servers' series: per node (no series for ``unknown``), cluster-wide."""
    for server in status.servers:
        labels = (*ident, ("server", server.server))
        if families.server_reachable is not None:
            for node in server.nodes:
                if node.state in (AVAILABLE, NOT_RESPONDING):
                    out.add(
                        families.server_reachable,
                        (*labels, ("node", node.node)),
                        node.state == AVAILABLE,
                    )
        if server.cluster_available is not None and families.server_cluster_reachable:
            out.add(families.server_cluster_reachable, labels, server.cluster_available)
        since = unreachable_since.get(streak_key(status.uuid, server.server))
        if since is not None and families.server_unreachable_since is not None:
            out.add(families.server_unreachable_since, labels, since)


def cluster_labels(snapshot: ClusterSnapshot) -> Labels:
    """Return the labels every series of a cluster carries: its name, then configured ones."""
    return (("cluster", snapshot.name), *snapshot.labels)


def render_state(
    snapshot: ClusterSnapshot, prefixes: dict[tuple[str, Labels], str] | None = None
) -> dict[str, bytes]:
    """Return the samples of the cluster itself: its poll, identity and requests.

    ``prefixes``: the cluster's series names remembered from its earlier polls (Samples).
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
        snapshot.key_stores,
    )


def render_settled(
    snapshot: ClusterSnapshot, prefixes: dict[tuple[str, Labels], str] | None = None
) -> dict[str, bytes]:
    """Return the cluster's samples that most polls leave as they were: identity, up, errors,
    skipped records and the slow polls' (blast radius) series."""
    out = Samples(cluster_labels(snapshot), prefixes)
    for kind, error in snapshot.refused.items():
        message = label_message(error.message)
        family = KEY_MANAGER_FAMILIES[kind].get_error
        if family is not None:
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
    for store in snapshot.key_stores or ():
        ident = (("svm", store.svm), ("uuid", store.uuid), ("type", store.type))
        where = (("location", store.location), ("configuration", store.configuration))
        out.add(KEY_STORE_INFO, (*ident, *where), 1)
        if store.state:
            out.add(KEY_STORE_STATE, (*ident, ("state", store.state)), 1)
    return out.encoded()


def render_poll(
    snapshot: ClusterSnapshot, prefixes: dict[tuple[str, Labels], str] | None = None
) -> dict[str, bytes]:
    """Return the cluster's samples every poll changes: its time, duration and requests."""
    out = Samples(cluster_labels(snapshot), prefixes)
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
    probe = Samples(())
    probe.add(PROBE_SUCCESS, (), success)
    probe.add(PROBE_DURATION, (), duration)
    probe.add(PROBE_CACHED, (), cached)
    fragments = [render_cluster(snapshot)] if snapshot is not None else []
    parts = assemble(CLUSTER_FAMILIES, fragments, openmetrics)
    parts += assemble(PROBE_FAMILIES, [probe.encoded()], openmetrics)
    if openmetrics:
        parts.append(b"# EOF\n")
    return b"".join(parts)


def _render_blast_radius(out: Samples, blast: BlastRadius, svms: set[str]) -> None:
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
        # svm: the SVM the event names, so that an alert quotes its own SVM's events only.
        labels = (("node", event.node), ("svm", event.svm), ("event", event.name))
        out.add(EMS_EVENTS, labels, event.count)
        out.add(EMS_EVENT_LAST, labels, event.last_time)
    for (endpoint, reason), count in sorted(blast.errors.items()):
        out.add(ENDPOINT_ERRORS, (("endpoint", endpoint), ("reason", reason)), count)
    for endpoint, when in sorted(blast.last_success.items()):
        out.add(ENDPOINT_LAST_SUCCESS, (("endpoint", endpoint),), when)


def wants_openmetrics(accept: str) -> bool:
    return "application/openmetrics-text" in accept
