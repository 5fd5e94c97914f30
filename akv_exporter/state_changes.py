"""What started and what ended between two snapshots of one cluster, logged once each.

An outage is logged when it starts (a warning, with ONTAP's code and message) and when it ends
(info), never on every poll: a log that repeats itself every minute hides the line that
matters. The poller calls ``log_changes`` with every snapshot it publishes.

    cluster ams-01: svm svm_db: azure_reachability false (code 65537549): AKV service is ...
    cluster ams-01: svm svm_db: azure_reachability true again
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from akv_exporter.ontap.key_manager_endpoint import Check, KeyManagerStatus
from akv_exporter.ontap.key_manager_registry import BY_KIND
from akv_exporter.snapshot import ClusterSnapshot

log = logging.getLogger(__name__)


def _coded(check: Check | None) -> str:
    if check is None:
        return ""
    code = f" (code {check.code})" if check.code not in ("", "0") else ""
    return f"{code}: {check.message}" if check.message else code


def _where(status: KeyManagerStatus) -> str:
    return f"svm {status.svm}" if status.svm else "cluster-scoped configuration"


def _problems(status: KeyManagerStatus) -> Iterator[tuple[tuple[str, ...], str, str]]:
    """Yield (identity, what started, what ended) for each thing wrong with one configuration."""
    where = _where(status)
    field = BY_KIND[status.kind].endpoint.service_field  # ONTAP's word: azure_reachability
    if status.service_unreachable:
        yield (
            (status.uuid, "service"),
            f"{where}: {field} false{_coded(status.service)}",
            f"{where}: {field} true again",
        )
    for node in status.ekmip_unreachable:
        yield (
            (status.uuid, "ekmip", node.node),
            f"{where}: EKMIP unreachable from node {node.node}{_coded(node)}",
            f"{where}: EKMIP reachable again from node {node.node}",
        )
    if status.kek_unavailable:
        yield (
            (status.uuid, "kek"),
            f"{where}: KEK unavailable{_coded(status.kek)}",
            f"{where}: KEK available again",
        )
    for server in status.servers_down:
        yield (
            (status.uuid, "server", server.server),
            f"{where}: key server {server.server} not available from every node",
            f"{where}: key server {server.server} available again",
        )
    if status.setup is not None and not status.setup.ok:
        yield (
            (status.uuid, "setup"),
            f"{where}: key manager status{_coded(status.setup)}",
            f"{where}: key manager status ok again",
        )


def _key_manager_problems(snapshot: ClusterSnapshot) -> dict[tuple[str, ...], tuple[str, str]]:
    return {
        identity: (started, ended)
        for status in snapshot.key_managers
        for identity, started, ended in _problems(status)
    }


def _offline(snapshot: ClusterSnapshot) -> dict[str, int]:
    """Return SVM -> encrypted volumes offline, as the latest volumes answer said."""
    volumes = snapshot.blast.volumes
    if volumes is None:
        return {}
    return {svm: n for svm in volumes.svms() if (n := volumes.total(svm, "offline"))}


def log_changes(before: ClusterSnapshot, after: ClusterSnapshot) -> None:
    """Log every state that started or ended from ``before`` to ``after`` (one cluster)."""
    if not after.up:
        return  # the poller logs the cluster's failure; what it knew stays, unchanged
    name = after.name
    extra = {"cluster": name}
    # ONTAP refused the key-manager query itself, with an error NetApp documents for it.
    for kind, error in after.refused.items():
        earlier = before.refused.get(kind)
        if earlier is None or earlier.code != error.code:
            log.warning(
                "cluster %s: ONTAP answered the %s query with an error%s; the last known"
                " configurations stay",
                name,
                BY_KIND[kind].endpoint.path,
                _coded(error),
                extra=extra,
            )
    for kind in before.refused.keys() - after.refused.keys():
        log.info(
            "cluster %s: ONTAP answers the %s query again",
            name,
            BY_KIND[kind].endpoint.path,
            extra=extra,
        )
    if not after.refused and after.key_managers_as_of != before.key_managers_as_of:
        # A fresh answer: compare it with what was known before (nothing, at the first poll).
        was, now = _key_manager_problems(before), _key_manager_problems(after)
        for identity, (started, _) in now.items():
            if identity not in was:
                log.warning("cluster %s: %s", name, started, extra=extra)
        current = {status.uuid for status in after.key_managers}
        for identity, (_, ended) in was.items():
            if identity not in now and identity[0] in current:
                log.info("cluster %s: %s", name, ended, extra=extra)
    if after.blast.volumes is not None and after.blast.volumes is not before.blast.volumes:
        was_offline, offline = _offline(before), _offline(after)
        for svm, count in offline.items():
            if was_offline.get(svm) != count:
                log.warning(
                    "cluster %s: %d encrypted volumes offline in SVM %s",
                    name,
                    count,
                    svm,
                    extra=extra,
                )
        for svm in was_offline.keys() - offline.keys():
            log.info(
                "cluster %s: no encrypted volume offline in SVM %s any more", name, svm, extra=extra
            )
