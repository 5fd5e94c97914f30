"""AKV / Fleet overview: every cluster and AKV configuration at a glance."""

from __future__ import annotations

from dashboards.blast import volumes_at_stake_stat, volumes_offline_stat
from dashboards.common import (
    AVAILABLE,
    COLOURED_CELLS,
    CONFIGURATION,
    ENABLED,
    FLEET_UID,
    REACHABLE,
    WORST_EKMIP,
    akv,
    akv_variables,
    cluster_column_link,
    cluster_detail_url,
    exporter,
    links,
    problem_count,
    time_left_panel,
    unreachable_since,
)
from dashboards.panels import (
    Cell,
    Dashboard,
    Json,
    Query,
    Row,
    data_link,
    field_config,
    merge,
    organize,
    override,
    stat,
    state_timeline,
    table,
    thresholds,
)


def _stats() -> list[Cell]:
    clusters = stat(
        "Clusters monitored",
        "Clusters in the exporter's configuration (distinct `cluster` of akv_exporter_cluster_up), "
        "whether or not the last poll reached them.",
        [Query(f"count(count by (cluster) ({exporter('akv_exporter_cluster_up')})) or vector(0)")],
        field_config(unit="none", steps=thresholds("blue")),
    )
    down = problem_count(
        "Clusters the exporter cannot reach",
        "Clusters whose last poll got no valid answer from ONTAP (akv_exporter_cluster_up = 0): "
        "their AKV state is unknown, not healthy. The AKV / Exporter dashboard shows why.",
        f"count(max by (cluster) ({exporter('akv_exporter_cluster_up')}) == 0)",
    )
    azure = problem_count(
        "AKV configurations unreachable",
        "AKV configurations (cluster or SVM scope) whose nodes cannot reach Azure Key Vault "
        "(azure_reachability.reachable = false: not from all nodes). See the runbook's "
        "sources for what ONTAP does next (ekmip.akv.volOffline).",
        f"count(min by ({CONFIGURATION}) ({akv('ontap_akv_azure_reachable')}) == 0)",
    )
    ekmip = problem_count(
        "Nodes with EKMIP unreachable",
        "Nodes that cannot reach their embedded KMIP server for at least one AKV configuration "
        "(ekmip_reachability.reachable = false); each node counts once.",
        f"count(count by (cluster, node) ({akv('ontap_akv_ekmip_reachable')} == 0))",
    )
    kek = problem_count(
        "KEKs unavailable",
        "AKV configurations whose wrapped key-encryption key is not available cluster-wide "
        "(state.available or state.cluster_state = false).",
        f"count(min by ({CONFIGURATION}) ({akv('ontap_akv_kek_available')}) == 0)",
    )
    return [Cell(clusters, 4, 4)] + [Cell(p, 5, 4) for p in (down, azure, ekmip, kek)]


# Table columns: label columns shared by every query, then one value column per query.
_TABLE_QUERIES = {
    "A": f"max by ({CONFIGURATION}, vault) ({akv('ontap_akv_info')})",
    "B": f"max by ({CONFIGURATION}) ({akv('ontap_akv_enabled')})",
    "C": f"min by ({CONFIGURATION}) ({akv('ontap_akv_azure_reachable')})",
    "D": f"min by ({CONFIGURATION}) ({akv('ontap_akv_kek_available')})",
    "E": f"min by ({CONFIGURATION}) ({akv('ontap_akv_ekmip_reachable')})",
    # One message per configuration: Azure's, else the KEK's, else one node's EKMIP message;
    # with no message at all, at least the Azure check's code.
    "F": " or on (cluster, svm, uuid) ".join(
        [
            f"max by ({CONFIGURATION}, check, code, message) "
            f"({akv('ontap_akv_status_message_info', check='azure')})",
            f"max by ({CONFIGURATION}, check, code, message) "
            f"({akv('ontap_akv_status_message_info', check='kek')})",
            f"topk by ({CONFIGURATION}) (1, max by ({CONFIGURATION}, check, code, message) "
            f"({akv('ontap_akv_status_message_info', check='ekmip')}))",
            f"max by ({CONFIGURATION}, code) ({akv('ontap_akv_azure_reachable')})",
        ]
    ),
    "G": f"time() - {unreachable_since()}",
}


def _configurations_table() -> Json:
    words = COLOURED_CELLS
    # Overrides and data links see the columns as organize renamed them.
    link = cluster_column_link()
    return table(
        "AKV configurations",
        "Every AKV configuration, one row each: the vault, whether it is enabled, whether Azure "
        "Key Vault is reachable, whether the KEK is available, the worst EKMIP state over its "
        "nodes, ONTAP's code and message (Azure's, else the KEK's, else a node's EKMIP message) "
        "and how long Azure has been unreachable. An empty cell means ONTAP did not report the "
        "field (inactive configurations report none): unknown, not healthy. Click a cluster to "
        "open its detail.",
        [Query(expr) for expr in _TABLE_QUERIES.values()],
        field_config(
            no_value="",
            overrides=[
                override("Cluster", links=[link]),
                override("Enabled", mappings=[ENABLED], **words),
                override("Azure", mappings=[REACHABLE], **words),
                override("KEK", mappings=[AVAILABLE], **words),
                override("Worst EKMIP", mappings=[WORST_EKMIP], **words),
                override(
                    "Unreachable for",
                    unit="s",
                    thresholds=thresholds("yellow", (1800, "orange"), (2700, "red")),
                    **{"custom_cellOptions": {"type": "color-text"}},
                ),
            ],
        ),
        [
            merge(),
            organize(
                hidden=["Time", "Value #A", "Value #F", "uuid"],
                columns={
                    "cluster": "Cluster",
                    "svm": "SVM",
                    "vault": "Vault",
                    "Value #B": "Enabled",
                    "Value #C": "Azure",
                    "Value #D": "KEK",
                    "Value #E": "Worst EKMIP",
                    "check": "Check",
                    "code": "Code",
                    "message": "Message",
                    "Value #G": "Unreachable for",
                },
            ),
        ],
        sort_by="Cluster",
    )


def _reachability_timeline() -> Json:
    link = data_link(
        "Cluster detail of ${__field.labels.cluster}",
        cluster_detail_url("${__field.labels.cluster}"),
    )
    return state_timeline(
        "Azure Key Vault reachability per cluster",
        "For each cluster, the worst Azure Key Vault reachability over its AKV configurations. "
        "Gaps mean no data: the exporter could not poll the cluster, or every configuration is "
        "inactive. Click a band to open the cluster's detail.",
        [Query(f"min by (cluster) ({akv('ontap_akv_azure_reachable')})", "{{cluster}}")],
        field_config(mappings=[REACHABLE], steps=thresholds("red", (1, "green")), links=[link]),
    )


def dashboard() -> Dashboard:
    """The fleet overview."""
    return Dashboard(
        uid=FLEET_UID,
        title="AKV / Fleet overview",
        description="NetApp ONTAP clusters keeping volume-encryption keys in Azure Key Vault: "
        "what is unreachable now and how long before ONTAP takes encrypted volumes offline.",
        rows=[
            Row(
                "Now",
                [
                    *_stats(),
                    Cell(volumes_offline_stat(), 6, 5),
                    Cell(volumes_at_stake_stat(), 6, 5),
                    Cell(time_left_panel(), 12, 5),
                ],
            ),
            Row("AKV configurations", [Cell(_configurations_table(), 24, 12)]),
            Row("History", [Cell(_reachability_timeline(), 24, 9)]),
        ],
        variables=akv_variables(),
        links=links(FLEET_UID),
    )
