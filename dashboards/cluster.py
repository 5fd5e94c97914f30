"""AKV / Cluster detail: nodes, messages, history and the exporter's polls of chosen clusters."""

from __future__ import annotations

from dashboards.blast import cluster_cells
from dashboards.common import (
    AVAILABLE,
    CLUSTER_UID,
    CONFIGURATION,
    REACHABLE,
    UP,
    akv,
    akv_variables,
    exporter,
    links,
    time_left_panel,
    unreachable_for_panel,
)
from dashboards.panels import (
    Cell,
    Dashboard,
    Json,
    Query,
    Row,
    field_config,
    organize,
    override,
    stat,
    state_timeline,
    table,
    thresholds,
    timeseries,
    transformation,
)

# A readable name for a configuration within the selected clusters: "cluster / svm".
_SVM_OR_SCOPE = 'label_replace({expr}, "svm", "cluster scope", "svm", "")'
_CONFIGURATION_NAME = 'label_join({expr}, "akv_configuration", " / ", "cluster", "svm")'


def _named(expr: str) -> str:
    return _CONFIGURATION_NAME.format(expr=_SVM_OR_SCOPE.format(expr=expr))


def _exporter_up() -> Json:
    return stat(
        "Exporter reaches ONTAP",
        "OK when the exporter's last poll of the cluster got a valid answer "
        "(akv_exporter_cluster_up); DOWN means the AKV state below is stale or missing.",
        [Query(f"min by (cluster) ({exporter('akv_exporter_cluster_up')})", "{{cluster}}")],
        field_config(
            mappings=[UP],
            steps=thresholds("red", (1, "green")),
            no_value="Not monitored",
        ),
    )


def _last_success_age() -> Json:
    return stat(
        "Last successful poll",
        "Seconds since the exporter last got a valid answer from the cluster. It polls every "
        "poll.interval (60 s by default); much more than that means polls are failing.",
        [
            Query(
                "time() - max by (cluster) "
                f"({exporter('akv_exporter_cluster_last_success_timestamp_seconds')})",
                "{{cluster}}",
            )
        ],
        field_config(
            unit="s",
            steps=thresholds("green", (180, "orange"), (600, "red")),
            no_value="Never",
        ),
    )


def _ekmip_matrix() -> Json:
    return table(
        "EKMIP reachability: node by configuration",
        "One row per AKV configuration (cluster / SVM), one column per node: whether the node "
        "reaches its embedded KMIP server (ekmip_reachability.reachable). An empty cell means "
        "ONTAP reported nothing for that node (an inactive configuration, or a node of another "
        "cluster).",
        [Query(_named(f"min by ({CONFIGURATION}, node) ({akv('ontap_akv_ekmip_reachable')})"))],
        field_config(
            mappings=[REACHABLE],
            steps=thresholds("red", (1, "green")),
            colored_cells=True,
            overrides=[
                override(
                    "akv_configuration\\node",
                    displayName="Configuration \\ node",
                    **{"custom_cellOptions": {"type": "auto"}},
                )
            ],
        ),
        [
            transformation(
                "groupingToMatrix",
                {
                    "columnField": "node",
                    "emptyValue": "null",
                    "rowField": "akv_configuration",
                    "valueField": "Value",
                },
            )
        ],
    )


def _messages() -> Json:
    return table(
        "Messages from ONTAP",
        "Every non-empty message ONTAP gives for the Azure, KEK and EKMIP checks, with its code "
        "(65537549: AKV unreachable from one or more nodes; 65537551: KEK unavailable on one or "
        "more nodes; 65537552: embedded KMIP server status not available).",
        [
            Query(
                f"max by ({CONFIGURATION}, check, node, code, message) "
                f"({akv('ontap_akv_status_message_info')})"
            )
        ],
        field_config(no_value="No messages from ONTAP"),
        [
            organize(
                hidden=["Time", "Value", "uuid"],
                columns={
                    "cluster": "Cluster",
                    "svm": "SVM",
                    "check": "Check",
                    "node": "Node",
                    "code": "Code",
                    "message": "Message",
                },
            )
        ],
        sort_by="Cluster",
    )


def _history() -> list[Cell]:
    azure = state_timeline(
        "Azure Key Vault reachability per configuration",
        "Whether each AKV configuration reached Azure Key Vault over time (worst over its "
        "nodes, as ONTAP reports it). Gaps: no data, the exporter could not poll or the "
        "configuration is inactive.",
        [
            Query(
                f"min by ({CONFIGURATION}) ({akv('ontap_akv_azure_reachable')})",
                "{{cluster}} {{svm}}",
            )
        ],
        field_config(mappings=[REACHABLE], steps=thresholds("red", (1, "green"))),
    )
    kek = state_timeline(
        "KEK availability per configuration",
        "Whether each AKV configuration's wrapped key-encryption key was available cluster-wide.",
        [
            Query(
                f"min by ({CONFIGURATION}) ({akv('ontap_akv_kek_available')})",
                "{{cluster}} {{svm}}",
            )
        ],
        field_config(mappings=[AVAILABLE], steps=thresholds("red", (1, "green"))),
    )
    ekmip = state_timeline(
        "EKMIP reachability per node",
        "Whether each node reached its embedded KMIP server, worst over the node's AKV "
        "configurations.",
        [
            Query(
                f"min by (cluster, node) ({akv('ontap_akv_ekmip_reachable')})",
                "{{cluster}} {{node}}",
            )
        ],
        field_config(mappings=[REACHABLE], steps=thresholds("red", (1, "green"))),
    )
    return [Cell(azure, 24, 7), Cell(kek, 12, 7), Cell(ekmip, 12, 7)]


def _poll_health() -> list[Cell]:
    up = state_timeline(
        "Exporter reaches ONTAP, over time",
        "Whether each poll of the cluster got a valid answer (akv_exporter_cluster_up).",
        [Query(f"min by (cluster) ({exporter('akv_exporter_cluster_up')})", "{{cluster}}")],
        field_config(mappings=[UP], steps=thresholds("red", (1, "green"))),
    )
    duration = timeseries(
        "Poll duration",
        "How long the last poll of the cluster took (akv_exporter_cluster_poll_duration_seconds). "
        "A poll that reaches poll.timeout (30 s by default) fails with reason timeout.",
        [
            Query(
                f"max by (cluster) ({exporter('akv_exporter_cluster_poll_duration_seconds')})",
                "{{cluster}}",
            )
        ],
        field_config(unit="s", minimum=0),
    )
    errors = timeseries(
        "Poll errors by reason",
        "Failed polls per minute, by reason: timeout, connect, tls, auth, forbidden, "
        "rate_limited, http, ontap_error, invalid_response.",
        [
            Query(
                "sum by (cluster, reason) (rate("
                f"{exporter('akv_exporter_cluster_poll_errors_total')}[$__rate_interval])) * 60",
                "{{cluster}} {{reason}}",
            )
        ],
        field_config(unit="cpm", minimum=0),
    )
    age = timeseries(
        "Age of the last successful poll",
        "Seconds since the last valid answer from the cluster, over time: a saw-tooth up to "
        "the poll interval is healthy; a ramp means polls keep failing.",
        [
            Query(
                "time() - max by (cluster) "
                f"({exporter('akv_exporter_cluster_last_success_timestamp_seconds')})",
                "{{cluster}}",
            )
        ],
        field_config(unit="s", minimum=0),
    )
    return [Cell(up, 24, 5), Cell(duration, 8, 8), Cell(errors, 8, 8), Cell(age, 8, 8)]


def _configuration_details() -> Json:
    labels = "scope, configuration, vault, key_id, authentication_method, client_id, tenant_id"
    return table(
        "AKV configuration details",
        "What ontap_akv_info says about each configuration: scope, name, vault, key, how ONTAP "
        "authenticates to Azure (client_secret or certificate), client and tenant ids. ONTAP "
        "never returns the secret or certificate itself.",
        [Query(f"max by ({CONFIGURATION}, {labels}) ({akv('ontap_akv_info')})")],
        field_config(no_value="No AKV configuration"),
        [
            organize(
                hidden=["Time", "Value"],
                columns={
                    "cluster": "Cluster",
                    "svm": "SVM",
                    "scope": "Scope",
                    "configuration": "Configuration",
                    "vault": "Vault",
                    "key_id": "Key id",
                    "authentication_method": "Authentication",
                    "client_id": "Client id",
                    "tenant_id": "Tenant id",
                    "uuid": "UUID",
                },
            )
        ],
        sort_by="Cluster",
    )


def dashboard() -> Dashboard:
    """The cluster detail, reached from the fleet overview with `var-cluster` set."""
    return Dashboard(
        uid=CLUSTER_UID,
        title="AKV / Cluster detail",
        description="The AKV configurations of the chosen clusters: every node's EKMIP "
        "reachability, ONTAP's messages, the history, and how the exporter's polls fare.",
        rows=[
            Row(
                "Now",
                [
                    Cell(_exporter_up(), 6, 4),
                    Cell(_last_success_age(), 6, 4),
                    Cell(unreachable_for_panel(), 12, 4),
                    Cell(time_left_panel(), 24, 4),
                    Cell(_ekmip_matrix(), 12, 9),
                    Cell(_messages(), 12, 9),
                ],
            ),
            Row("ONTAP's verdict: encrypted volumes, policy, events", cluster_cells()),
            Row("History", _history()),
            Row("Exporter polls of this cluster", _poll_health()),
            Row("Configuration details", [Cell(_configuration_details(), 24, 8)], collapsed=True),
        ],
        variables=akv_variables(),
        links=links(CLUSTER_UID),
    )
