"""The assessment in words for people: one line per problem, one per note, why a cluster shows
no configuration.

The page, the JSON and ``check`` all show these lines as they are. Each names where (the
configuration's SVM, or the cluster) and what ONTAP said, with its code and message; a line
about a cluster that no longer answers says its state is the last known.
"""

from __future__ import annotations

from collections.abc import Iterable

from akv_exporter.assessment import (
    INACTIVE,
    KEY_EXPIRED_EVENT,
    KEY_MANAGER_WORDS,
    KEY_VERSION_CHANGED_EVENT,
    UNKNOWN,
    KeyManagerView,
    configuration_label,
    missing_checks,
    span,
    utc_time,
    words,
)
from akv_exporter.ontap.key_manager_endpoint import Check, KeyManagerStatus, NodeCheck
from akv_exporter.ontap.key_manager_registry import BY_KIND
from akv_exporter.ontap.key_stores import BLOCKED
from akv_exporter.snapshot import ClusterSnapshot, EventCount


def _coded(check: Check | NodeCheck | None, what: str) -> str:
    if check is None:
        return what
    detail = f"{what} (code {check.code})" if check.code not in ("", "0") else what
    return f"{detail}: {check.message}" if check.message else detail


def problem_lines(
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


def note_lines(views: Iterable[KeyManagerView]) -> list[str]:
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
