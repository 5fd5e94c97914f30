"""What the three AKV dashboards share: uids, selectors, variables, words for 1/0, links."""

from __future__ import annotations

from dashboards.panels import (
    Json,
    Query,
    dashboard_link,
    data_link,
    datasource_variable,
    field_config,
    label_variable,
    range_words,
    stat,
    thresholds,
    value_words,
)

FLEET_UID = "akv-fleet"
CLUSTER_UID = "akv-cluster"
EXPORTER_UID = "akv-exporter"
KEY_MANAGERS_UID = "key-managers"

# NetApp's EMS text for ekmip.akv.volOffline: ONTAP takes the SVM's encrypted volumes offline
# after 60 minutes of its polls without a successful answer from the key (where its key-manager
# health policy has manage_volume_offline true).
VOLUME_OFFLINE_AFTER_SECONDS = 3600

# Configured cluster labels offered as dashboard variables. The exporter puts them on every
# ontap_akv_* series and on its own per-cluster series, so every per-cluster selector filters
# on them; `=~".*"` (All) also matches a series without the label.
CLUSTER_LABELS = ("datacenter",)

# Every AKV configuration is one (cluster, svm, uuid); svm is empty for cluster scope.
CONFIGURATION = "cluster, svm, uuid"


def akv(metric: str, *, by_svm: bool = True, **matchers: str) -> str:
    """A selector of an ontap_akv_* metric narrowed by the cluster, svm and label variables."""
    pairs = [("cluster", "=~", "$cluster")] + ([("svm", "=~", "$svm")] if by_svm else [])
    pairs += [(label, "=~", f"${label}") for label in CLUSTER_LABELS]
    pairs += [(label, "=", value) for label, value in matchers.items()]
    return metric + "{" + ", ".join(f'{k}{op}"{v}"' for k, op, v in pairs) + "}"


def exporter(metric: str) -> str:
    """A selector of one of the exporter's per-cluster metrics, narrowed by the variables."""
    pairs = [("cluster", "$cluster")] + [(label, f"${label}") for label in CLUSTER_LABELS]
    return metric + "{" + ", ".join(f'{k}=~"{v}"' for k, v in pairs) + "}"


def exporter_in_labels(metric: str) -> str:
    """A selector narrowed by the configured-label variables only (for the cluster list)."""
    pairs = ", ".join(f'{label}=~"${label}"' for label in CLUSTER_LABELS)
    return metric + "{" + pairs + "}"


def cluster_variables() -> list[Json]:
    """The configured-label variables, then `cluster` narrowed by them."""
    # The cluster list comes from the exporter's own series: a cluster it cannot reach has
    # no ontap_akv_* series left, and is exactly the one someone wants to select.
    return [
        *(
            label_variable(label, label.capitalize(), "akv_exporter_cluster_up")
            for label in CLUSTER_LABELS
        ),
        label_variable("cluster", "Cluster", exporter_in_labels("akv_exporter_cluster_up")),
    ]


def akv_variables() -> list[Json]:
    """datasource, the configured cluster labels, cluster and svm."""
    return [
        datasource_variable(),
        *cluster_variables(),
        label_variable("svm", "SVM", akv("ontap_akv_info", by_svm=False)),
    ]


def links(current_uid: str) -> list[Json]:
    """Header links to the other two dashboards."""
    targets = [
        (FLEET_UID, "AKV / Fleet overview", "Every cluster and AKV configuration at a glance"),
        (CLUSTER_UID, "AKV / Cluster detail", "Nodes, messages and history of chosen clusters"),
        (EXPORTER_UID, "AKV / Exporter", "The exporter's own polls, errors and process"),
        (KEY_MANAGERS_UID, "Key managers / Fleet", "Every key manager: AKV, GCP, AWS, KMIP..."),
    ]
    return [dashboard_link(uid, title, tip) for uid, title, tip in targets if uid != current_uid]


def cluster_column_link() -> Json:
    """A table's link from its Cluster column to that cluster's detail."""
    return data_link(
        "Cluster detail of ${__data.fields.Cluster}",
        cluster_detail_url("${__data.fields.Cluster}"),
    )


def cluster_detail_url(cluster_value: str) -> str:
    """URL of the cluster detail with `var-cluster` set, keeping datasource and time range."""
    return (
        f"/d/{CLUSTER_UID}/akv-cluster-detail?var-cluster={cluster_value}"
        "&${datasource:queryparam}&${__url_time_range}"
    )


# Words for the 1/0 gauges, so a colour-blind reader (or a screenshot in grey) still knows.
REACHABLE = value_words((1, "Reachable", "green"), (0, "UNREACHABLE", "red"))
AVAILABLE = value_words((1, "Available", "green"), (0, "UNAVAILABLE", "red"))
ENABLED = value_words((1, "Enabled", "green"), (0, "Inactive", "text"))
UP = value_words((1, "OK", "green"), (0, "DOWN", "red"))
NONE_WHEN_ZERO = value_words((0, "None", "green"))
WORST_EKMIP = value_words((1, "All nodes reachable", "green"), (0, "UNREACHABLE", "red"))
# A table column whose cells take their mapping's colour.
COLOURED_CELLS = {"custom_cellOptions": {"type": "color-background"}}
RED_FROM_ONE = thresholds("green", (1, "red"))


def unreachable_since() -> str:
    """Per configuration, the Unix time the current unreachable-from-Azure streak began."""
    metric = akv("ontap_akv_azure_unreachable_since_timestamp_seconds")
    return f"min by ({CONFIGURATION}) ({metric})"


def problem_count(title: str, description: str, expr: str) -> Json:
    """A stat counting problems: 0 (shown as "None") when there are none, never empty."""
    return stat(
        title,
        description,
        [Query(f"{expr} or vector(0)")],
        field_config(unit="none", mappings=[NONE_WHEN_ZERO], steps=RED_FROM_ONE),
    )


def time_left_panel() -> Json:
    """Per unreachable configuration, the seconds before ONTAP's volume-offline point."""
    return stat(
        "Time left before ONTAP takes encrypted volumes offline",
        "For each AKV configuration that cannot reach Azure Key Vault: "
        f"{VOLUME_OFFLINE_AFTER_SECONDS} s minus the time since the exporter first saw it "
        "unreachable. NetApp's EMS text for ekmip.akv.volOffline: after 60 minutes of ONTAP's "
        "polls (every 15 minutes) without a successful answer from the key, ONTAP takes the "
        "SVM's encrypted volumes offline, where its key-manager health policy lets it. ONTAP "
        "counts from its own polls, which can be earlier than the exporter's first failed "
        "poll: treat this as an upper bound. "
        "Empty when every configuration reaches Azure (or none reports reachability).",
        [
            Query(
                f"clamp_min({VOLUME_OFFLINE_AFTER_SECONDS} - (time() - {unreachable_since()}), 0)",
                "{{cluster}} {{svm}}",
            )
        ],
        field_config(
            unit="s",
            mappings=[range_words(None, 0, "60 min passed: check the volumes", "dark-red")],
            steps=thresholds("red", (900, "orange"), (1800, "yellow")),
            no_value="No configuration unreachable",
        ),
    )


def unreachable_for_panel() -> Json:
    """Per unreachable configuration, how long it has been unable to reach Azure."""
    return stat(
        "Azure Key Vault unreachable for",
        "How long each AKV configuration has been unable to reach Azure Key Vault, counted from "
        "the exporter's first poll of the current streak (kept across exporter restarts). "
        "NetApp's EMS text for ekmip.akv.volOffline puts ONTAP's volume-offline point at 60 "
        "minutes of its polls without a successful answer, where its policy lets it.",
        [Query(f"time() - {unreachable_since()}", "{{cluster}} {{svm}}")],
        field_config(
            unit="s",
            steps=thresholds("yellow", (1800, "orange"), (2700, "red")),
            no_value="No configuration unreachable",
        ),
    )
