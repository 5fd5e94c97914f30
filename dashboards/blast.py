"""The blast-radius panels: encrypted volumes at stake and offline, ONTAP's policy, its events.

From the exporter's slow polls (poll.inventory_interval, poll.events_interval): GET
/api/storage/volumes, /api/security/key-manager-configs and /api/support/ems/events.
"""

from __future__ import annotations

from dashboards.common import akv, problem_count
from dashboards.panels import (
    Cell,
    Json,
    Query,
    field_config,
    merge,
    organize,
    override,
    stat,
    table,
    thresholds,
    value_words,
)

ON_OFF = value_words((1, "Yes", "green"), (0, "No", "orange"))
TAKES_OFFLINE = value_words(
    (1, "Takes volumes offline", "red"), (0, "Keeps volumes online", "green")
)


def volumes_offline_stat() -> Json:
    """Fleet: encrypted volumes offline now (ONTAP's own verdict)."""
    return problem_count(
        "Encrypted volumes offline",
        "Encrypted volumes (encryption.enabled) whose state is offline, over the selected "
        "clusters and SVMs. A volume ONTAP takes offline for lack of its key manager shows "
        "here, with EMS ekmip.akv.volOffline in the cluster detail. Polled every "
        "poll.inventory_interval (5 minutes by default).",
        f"sum(max by (cluster, svm) ({akv('ontap_encrypted_volumes', state='offline')}))",
    )


def volumes_at_stake_stat() -> Json:
    """Fleet: encrypted volumes on clusters where an AKV configuration cannot reach Azure."""
    unreachable = f"min by (cluster) ({akv('ontap_akv_azure_reachable', by_svm=False)}) == 0"
    return stat(
        "Encrypted volumes at stake",
        "Encrypted volumes of the selected SVMs on clusters where an AKV configuration cannot "
        "reach Azure Key Vault: what ONTAP may take offline if the outage lasts (where its "
        "policy, manage_volume_offline, says so). 0 when every vault is reachable.",
        [
            Query(
                f"sum(max by (cluster, svm, state) ({akv('ontap_encrypted_volumes')}) "
                f"and on (cluster) ({unreachable})) or vector(0)"
            )
        ],
        field_config(unit="none", steps=thresholds("green", (1, "orange"))),
    )


def volumes_table() -> Json:
    """Cluster detail: encrypted volumes per SVM and state."""
    return table(
        "Encrypted volumes by SVM and state",
        "Volumes with encryption.enabled, counted per SVM and volume state (online, offline, "
        "restricted, mixed, error) from GET /api/storage/volumes. ONTAP takes an SVM's "
        "encrypted volumes offline when its key manager stays unreachable and its "
        "policy says so.",
        [Query(f"max by (cluster, svm, state) ({akv('ontap_encrypted_volumes')})")],
        field_config(no_value="Volumes not polled yet"),
        [
            organize(
                hidden=["Time"],
                columns={"cluster": "Cluster", "svm": "SVM", "state": "State", "Value": "Volumes"},
            )
        ],
        sort_by="Cluster",
    )


def policy_table() -> Json:
    """Cluster detail: ONTAP's health-monitor policy per key manager, and its interval."""
    return table(
        "ONTAP key-manager health-monitor policy",
        "health_monitor_policy of GET /api/security/key-manager-configs, per key manager: "
        "whether ONTAP's health monitor runs, and whether it takes encrypted volumes offline "
        "when the key manager stays unreachable (manage_volume_offline); the row akv is the "
        "one that matters here. Empty on releases that do not report the policy: unknown, "
        "not off.",
        [
            Query(
                "max by (cluster, key_manager) "
                f"({akv('ontap_key_manager_health_monitor_enabled', by_svm=False)})"
            ),
            Query(
                "max by (cluster, key_manager) "
                f"({akv('ontap_key_manager_manage_volume_offline', by_svm=False)})"
            ),
        ],
        field_config(
            no_value="",
            overrides=[
                override("Monitor runs", mappings=[ON_OFF]),
                override("On outage", mappings=[TAKES_OFFLINE]),
            ],
        ),
        [
            merge(),
            organize(
                hidden=["Time"],
                columns={
                    "cluster": "Cluster",
                    "key_manager": "Key manager",
                    "Value #A": "Monitor runs",
                    "Value #B": "On outage",
                },
            ),
        ],
        sort_by="Cluster",
    )


def interval_stat() -> Json:
    """Cluster detail: how often ONTAP's health monitor checks the key managers."""
    return stat(
        "ONTAP health-monitor interval",
        "health_monitor_polling_interval (15 to 30 minutes): how often ONTAP's health monitor "
        "checks each key manager; ONTAP acts on an outage at one of these checks.",
        [
            Query(
                "max by (cluster) "
                f"({akv('ontap_key_manager_health_monitor_interval_seconds', by_svm=False)})",
                "{{cluster}}",
            )
        ],
        field_config(unit="s", steps=thresholds("blue"), no_value="Unknown"),
    )


def events_table() -> Json:
    """Cluster detail: ONTAP's AKV EMS events, last time and count in the dashboard's range."""
    return table(
        "ONTAP key-manager events (EMS)",
        "ONTAP's ekmip.akv.* EMS events per node: when each was last logged (ONTAP's time; the "
        "exporter reads the 24 hours before its start too) and how many were logged in the "
        "dashboard's time range. volOffline: ONTAP took encrypted volumes offline; "
        "notAvailable / available: the key manager went away / came back; keyExpired: the "
        "key version in Azure expired.",
        [
            Query(
                "max by (cluster, node, event) "
                f"({akv('ontap_ems_event_last_timestamp_seconds', by_svm=False)}) * 1000"
            ),
            Query(
                "sum by (cluster, node, event) "
                f"(increase({akv('ontap_ems_events_total', by_svm=False)}[$__range]))"
            ),
        ],
        field_config(
            no_value="",
            overrides=[
                override("Last logged", unit="dateTimeAsIso"),
                override("In range", decimals=0),
            ],
        ),
        [
            merge(),
            organize(
                hidden=["Time"],
                columns={
                    "cluster": "Cluster",
                    "node": "Node",
                    "event": "Event",
                    "Value #A": "Last logged",
                    "Value #B": "In range",
                },
            ),
        ],
        sort_by="Last logged",
    )


def cluster_cells() -> list[Cell]:
    """The cluster detail's row of ONTAP's verdict."""
    return [
        Cell(volumes_table(), 12, 8),
        Cell(policy_table(), 8, 8),
        Cell(interval_stat(), 4, 8),
        Cell(events_table(), 24, 8),
    ]
