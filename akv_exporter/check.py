"""``akv-exporter check``: poll now, print a monitoring-plugin verdict, exit 0/1/2/3.

The first line follows the Nagios plugin guidelines (status, a short text, then performance data
after ``|``); a table and one line per problem follow, or with ``--format json`` the same
document as ``GET /api/v1/status``. Exit codes, first match wins (docs/check.md):

    2 CRITICAL  a configuration cannot reach Azure Key Vault (ONTAP's count towards its
                volume-offline point, EMS ekmip.akv.volOffline, may be running), or an SVM on a
                node cannot reach the cluster's EKMIP servers
    3 UNKNOWN   a cluster gave no valid answer, an enabled configuration's state was not
                reported, or a --cluster name is not configured
    1 WARNING   a KEK is unavailable, or ONTAP logged ekmip.akv.keyExpired in the last 24 hours
    0 OK        everything ONTAP reported is healthy (inactive configurations are listed under
                "Notes:", and change nothing)

Critical beats unknown: one broken vault must page even while another cluster is unreachable.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal

from akv_exporter import assessment
from akv_exporter.assessment import (
    DOWN,
    KEY_MANAGER_WORDS,
    PENDING,
    ClusterView,
    FleetStatus,
    Summary,
    configuration_label,
    declares,
    documents_volumes_offline,
    fleet_kinds,
    fleet_name,
    service_header,
    urgency,
    utc_time,
    words,
)
from akv_exporter.assessment_json import to_json
from akv_exporter.config import Config
from akv_exporter.exporter import Exporter
from akv_exporter.logs import setup_logging
from akv_exporter.ontap.key_manager_endpoint import Check, KeyManagerStatus
from akv_exporter.ontap.key_manager_provider import KeyManagerWords

# The fleet's verdict (fleet_assessment.verdict fixes the precedence) -> the plugin's exit code.
EXIT_CODES = {
    assessment.OK: 0,
    assessment.WARNING: 1,
    assessment.CRITICAL: 2,
    assessment.UNKNOWN: 3,
}
UNKNOWN_EXIT = EXIT_CODES[assessment.UNKNOWN]


def exit_code(summary: Summary) -> int:
    """Return the plugin exit code for the fleet: 2 critical, 3 unknown, 1 warning, 0 ok."""
    return EXIT_CODES[summary.status]


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def status_line(summary: Summary) -> str:
    """Return the first output line: verdict, short text, then performance data."""
    s = summary
    parts = []
    if s.volumes_offline_for_akv:
        offline = _plural(s.volumes_offline_for_akv, "encrypted volume")
        parts.append(f"{offline} offline (ONTAP logged ekmip.akv.volOffline)")
    if other := s.volumes_offline - s.volumes_offline_for_akv:
        parts.append(f"{_plural(other, 'encrypted volume')} offline (no AKV cause from ONTAP)")
    if s.configurations_unreachable:
        stake = f" ({s.volumes_at_stake} encrypted volumes at stake)" if s.volumes_at_stake else ""
        parts.append(
            f"{s.configurations_unreachable} of {s.configurations} configurations unreachable"
            + stake
        )
    if s.ekmip_nodes_down:
        parts.append(f"{_plural(s.ekmip_nodes_down, 'node')} with EKMIP down")
    if s.nodes_without_key_server:
        nodes = _plural(s.nodes_without_key_server, "node")
        parts.append(f"{nodes} reaching none of their KMIP key servers")
    if s.key_stores_blocked:
        parts.append(f"{_plural(s.key_stores_blocked, 'key store')} blocked")
    if s.clusters_down or s.clusters_pending:
        parts.append(
            f"{s.clusters_down + s.clusters_pending} of {s.clusters} clusters not answering"
        )
    if s.configurations_unknown:
        parts.append(f"{_plural(s.configurations_unknown, 'configuration')} in an unknown state")
    if s.clusters_akv_error:
        parts.append(f"{_plural(s.clusters_akv_error, 'cluster')} answered an AKV error")
    if s.configurations_kek_unavailable:
        parts.append(f"{s.configurations_kek_unavailable} of {s.configurations} KEKs unavailable")
    if s.clusters_key_expired:
        count = _plural(s.clusters_key_expired, "cluster")
        parts.append(f"{count} logged ekmip.akv.keyExpired in the last 24 h")
    if s.key_servers_down:
        parts.append(f"{_plural(s.key_servers_down, 'KMIP key server')} down")
    if s.configurations_action_needed:
        count = _plural(s.configurations_action_needed, "key manager")
        parts.append(f"{count} needing action")
    if not parts:
        # Inactive configurations are not "healthy": ONTAP reports no state for them.
        healthy = s.configurations - s.configurations_inactive
        parts.append(
            f"{_plural(healthy, 'configuration')} healthy on {_plural(s.clusters, 'cluster')}"
        )
    if s.configurations_inactive:
        parts.append(f"{s.configurations_inactive} inactive")
    # 'label'=value;warn;crit;min: a count above 0 is critical (or warning, for KEKs).
    perfdata = (
        f"configurations={s.configurations};;;0 "
        f"unreachable={s.configurations_unreachable};;0;0 "
        f"ekmip_down={s.ekmip_nodes_down};;0;0 "
        f"kek_unavailable={s.configurations_kek_unavailable};0;;0 "
        f"clusters_down={s.clusters_down + s.clusters_pending};;;0 "
        f"clusters={s.clusters};;;0 "
        f"unknown={s.configurations_unknown};;;0 "
        f"inactive={s.configurations_inactive};;;0 "
        f"akv_errors={s.clusters_akv_error};;0;0 "
        f"volumes_at_stake={s.volumes_at_stake};;;0 "
        f"volumes_offline={s.volumes_offline_for_akv};;0;0 "
        f"volumes_offline_other={s.volumes_offline - s.volumes_offline_for_akv};0;;0 "
        f"key_expired={s.clusters_key_expired};0;;0 "
        f"no_key_server={s.nodes_without_key_server};;0;0 "
        f"key_stores_blocked={s.key_stores_blocked};;0;0 "
        f"key_servers_down={s.key_servers_down};0;;0 "
        f"action_needed={s.configurations_action_needed};0;;0"
    )
    return f"AKV {s.status.upper()} - {', '.join(parts)} | {perfdata}"


def _columns(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


def _check_cell(check: Check | None, good: str, bad: str) -> str:
    return "unknown" if check is None else good if check.ok else bad


def _cells(km: KeyManagerStatus) -> tuple[str, str, str]:
    """Return the key-service, KEK and EKMIP cells in the kind's words; "-" where it has none."""
    if declares(km, "service"):
        service = _check_cell(km.service, "reachable", "UNREACHABLE")
    elif declares(km, "setup"):
        service = _check_cell(km.setup, "setup ok", "ACTION NEEDED")
    else:
        service = "-"
    kek = _check_cell(km.kek, "available", "UNAVAILABLE") if declares(km, "kek") else "-"
    if declares(km, "ekmip"):
        down = len(km.ekmip_unreachable)
        ekmip = (
            "unknown"
            if not km.ekmip
            else f"{len(km.ekmip)}/{len(km.ekmip)} reachable"
            if not down
            else f"{down}/{len(km.ekmip)} UNREACHABLE"
        )
    elif km.servers:
        down = len(km.servers_down)
        total = len(km.servers)
        ekmip = f"{down}/{total} servers DOWN" if down else f"{total}/{total} servers available"
    else:
        ekmip = "-"
    return service, kek, ekmip


def _rows(cluster: ClusterView, fleet_words: KeyManagerWords) -> list[tuple[str, ...]]:
    name = cluster.snapshot.name
    if cluster.state in (DOWN, PENDING) or not cluster.key_managers:
        snapshot = cluster.snapshot
        if cluster.state in (DOWN, PENDING):
            word = "-"
        elif snapshot.refused:
            # ONTAP refused the query itself: whether there are configurations is not known.
            kinds = " AND ".join(KEY_MANAGER_WORDS[kind].name for kind in snapshot.refused)
            word = f"{kinds} QUERY ERROR"
        else:
            word = f"NO {fleet_words.name.upper()} CONFIGURATION"
        return [(name, word, cluster.state.upper(), "-", "-", "-")]
    rows = []
    for view in sorted(cluster.key_managers, key=lambda v: urgency(v.state)):
        km = view.status
        rows.append((name, configuration_label(km), view.state.upper(), *_cells(km)))
    return rows


def table(fleet: FleetStatus) -> list[str]:
    """Return the lines after the first: one row per configuration, then one per problem."""
    ordered = fleet.by_urgency()
    kinds = fleet_kinds(fleet)
    # The key-service column names the services the fleet has: "AZURE" for an AKV fleet.
    header = ("CLUSTER", "CONFIGURATION", "STATE", service_header(kinds).upper(), "KEK", "EKMIP")
    fleet_words = fleet_name(kinds)
    rows = (row for cluster in ordered for row in _rows(cluster, fleet_words))
    lines = _columns([header, *rows])
    problems = []
    for cluster in ordered:
        problems += [f"{cluster.snapshot.name}: {problem}" for problem in cluster.problems]
        for view in cluster.key_managers:
            if view.unreachable_since is None:
                continue
            where = f"{cluster.snapshot.name}: {configuration_label(view.status)}"
            stake = "" if view.volumes_at_stake is None else f" ({view.volumes_at_stake} at stake)"
            deadline = view.volumes_offline_deadline
            if not documents_volumes_offline(view.status):
                title = words(view.status).title
                problems.append(
                    f"{where}: NetApp documents no volume-offline deadline for {title}; the "
                    f"encrypted volumes{stake} depend on it"
                )
                continue
            if deadline is None:
                problems.append(
                    f"{where}: ONTAP will not take the encrypted volumes{stake} offline (policy)"
                )
                continue
            left = (deadline - fleet.generated_at) / 60
            when = f"in about {left:.0f} min" if left > 0 else f"{-left:.0f} min ago"
            policy = "" if view.policy == assessment.TAKES_VOLUMES_OFFLINE else " (policy unknown)"
            problems.append(
                f"{where}: ONTAP takes the encrypted volumes{stake} offline at about "
                f"{utc_time(deadline)} ({when}) unless {words(view.status).title} answers{policy}"
            )
    if problems:
        lines += ["", "Problems:", *problems]
    # Inactive configurations: listed, never problems (they change no verdict).
    notes = [f"{c.snapshot.name}: {note}" for c in ordered for note in c.notes]
    if notes:
        lines += ["", "Notes:", *notes]
    # Nagios reads everything after a '|' as performance data, even in the long text.
    return [line.replace("|", "/") for line in lines]


async def run_check(config: Config, clusters: list[str] | None, fmt: str) -> int:
    """Poll the configured (or the named) clusters once; print the verdict; return the exit code.

    SIGINT (Ctrl-C) or SIGTERM (a runner's timeout) ends it with an UNKNOWN verdict, like any
    other monitoring plugin.
    """
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    interrupted: list[str] = []

    def interrupt(signum: signal.Signals) -> None:
        interrupted.append(signum.name)
        if task is not None:
            task.cancel()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, interrupt, signum)
    try:
        return await _poll_and_judge(config, clusters, fmt)
    except asyncio.CancelledError:
        if not interrupted:
            raise
        print(f"AKV UNKNOWN - interrupted by {interrupted[0]} before the clusters answered")
        return UNKNOWN_EXIT
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


async def _poll_and_judge(config: Config, clusters: list[str] | None, fmt: str) -> int:
    setup_logging("warning", "text")  # stdout carries only the verdict; warnings go to stderr
    # The outages the verdict lists would be logged too, as they "start" at check's only poll.
    logging.getLogger("akv_exporter.state_changes").setLevel(logging.ERROR)
    # It reads the exporter's unreachable streaks and writes nothing, not even a temporary file:
    # it runs in the exporter's pod, whose root filesystem is read-only and which has no /tmp.
    exporter = Exporter(config, process_metrics=False, persist_state=False)
    try:
        keys, unknown = exporter.select(clusters)
        if unknown:
            names = ", ".join(json.dumps(name) for name in unknown)
            reason = "not a configured cluster name or address"
            print(f"AKV UNKNOWN - unknown cluster {names}: {reason}")
            return UNKNOWN_EXIT
        await exporter.poll_all(keys)
    finally:
        await exporter.stop()
    fleet = exporter.status(keys)
    if fmt == "json":
        print(json.dumps(to_json(fleet), indent=2))
    else:
        print(status_line(fleet.summary))
        for line in table(fleet):
            print(line)
    return exit_code(fleet.summary)
