"""Key managers / Fleet: every ONTAP key manager at once, whichever provider keeps the keys.

AKV, Google Cloud KMS, AWS KMS and Barbican share one shape (the service's reachability, the
KEK's state, per-node EKMIP for all but Barbican): each query unites the providers' families
with a `key_manager` label naming the provider, so one table and one count cover them all.
External KMIP key servers, the Onboard Key Manager and ONTAP's key stores have their own rows.
"""

from __future__ import annotations

from dataclasses import dataclass

from dashboards.common import (
    AVAILABLE,
    CLUSTER_LABELS,
    COLOURED_CELLS,
    KEY_MANAGERS_UID,
    REACHABLE,
    VOLUME_OFFLINE_AFTER_SECONDS,
    WORST_EKMIP,
    akv,
    cluster_column_link,
    cluster_variables,
    links,
    problem_count,
)
from dashboards.panels import (
    Cell,
    Dashboard,
    Json,
    Query,
    Row,
    datasource_variable,
    field_config,
    label_variable,
    merge,
    organize,
    override,
    range_words,
    stat,
    state_timeline,
    table,
    thresholds,
    value_words,
)


@dataclass(frozen=True)
class CloudKeyManager:
    """One cloud key manager's families (the interfaces spec, section 8)."""

    name: str  # the `key_manager` label the queries add: ONTAP's own policy key
    title: str
    prefix: str
    service: str  # the service gauge's name after the prefix
    ekmip: bool = True

    def metric(self, suffix: str) -> str:
        return f"{self.prefix}{suffix}"


CLOUD = (
    CloudKeyManager("akv", "Azure Key Vault", "ontap_akv_", "azure_reachable"),
    CloudKeyManager("gcp", "Google Cloud KMS", "ontap_gcp_kms_", "google_reachable"),
    CloudKeyManager("aws", "AWS KMS", "ontap_aws_kms_", "amazon_reachable"),
    # ONTAP has no EKMIP reachability for Barbican (NetApp's barbican-kms reference).
    CloudKeyManager(
        "barbican", "OpenStack Barbican", "ontap_barbican_kms_", "barbican_reachable", False
    ),
)

_KEY = "cluster, svm, uuid, key_manager"


def _each(aggregate: str, suffix_of, *, only_ekmip: bool = False) -> str:
    """The providers' series, aggregated per configuration, labelled with `key_manager`."""
    parts = [
        f"label_replace({aggregate} ({akv(manager.metric(suffix_of(manager)))}), "
        f'"key_manager", "{manager.name}", "", "")'
        for manager in CLOUD
        if manager.ekmip or not only_ekmip
    ]
    return "(" + " or ".join(parts) + ")"


def _service(aggregate: str = "min by (cluster, svm, uuid)") -> str:
    return _each(aggregate, lambda m: m.service)


def _kek(aggregate: str = "min by (cluster, svm, uuid)") -> str:
    return _each(aggregate, lambda m: "kek_available")


def _ekmip(aggregate: str = "min by (cluster, svm, uuid)") -> str:
    return _each(aggregate, lambda m: "ekmip_reachable", only_ekmip=True)


def _info() -> str:
    return _each("max by (cluster, svm, uuid)", lambda m: "info")


def _every_info() -> str:
    """A selector of every key manager's `_info` series and the key stores' (for $svm)."""
    names = "|".join(
        [m.metric("info") for m in CLOUD] + ["ontap_key_manager_info", "ontap_key_store_info"]
    )
    pairs = [("__name__", names), ("cluster", "$cluster")]
    pairs += [(label, f"${label}") for label in CLUSTER_LABELS]
    return "{" + ", ".join(f'{k}=~"{v}"' for k, v in pairs) + "}"


def _unreachable_since() -> str:
    # AKV's streak is named after Azure (ontap_akv_azure_unreachable_since_...); the other
    # providers' after the provider (ontap_gcp_kms_unreachable_since_...).
    return _each(
        "min by (cluster, svm, uuid)",
        lambda m: (
            "azure_unreachable_since_timestamp_seconds"
            if m.name == "akv"
            else "unreachable_since_timestamp_seconds"
        ),
    )


def _now() -> list[Cell]:
    configurations = stat(
        "Key-manager configurations",
        "Configurations of every external key manager the exporter sees: Azure Key Vault, Google "
        "Cloud KMS, AWS KMS and Barbican (one per SVM, or the cluster's), and external KMIP "
        "servers and the Onboard Key Manager (ONTAP's key-managers endpoint).",
        [
            Query(
                f"count({_info()} or max by (cluster, svm, uuid, type) "
                f"({akv('ontap_key_manager_info')})) or vector(0)"
            )
        ],
        field_config(unit="none", steps=thresholds("blue")),
    )
    services = problem_count(
        "Key services unreachable",
        "Cloud key-manager configurations whose service ONTAP cannot reach: Azure Key Vault "
        "(azure_reachability), Google Cloud KMS (google_reachability), AWS KMS "
        "(amazon_reachability) or Barbican (barbican_reachability).",
        f"count({_service()} == 0)",
    )
    keks = problem_count(
        "KEKs unavailable",
        "Cloud key-manager configurations whose key-encryption key ONTAP reports not available "
        "cluster-wide (state.available for AKV, state.cluster_state for the others).",
        f"count({_kek()} == 0)",
    )
    ekmip = problem_count(
        "Nodes with EKMIP unreachable",
        "Nodes that cannot reach their embedded KMIP server for at least one cloud key-manager "
        "configuration (ekmip_reachability; Barbican has none); each node counts once.",
        f"count(count by (cluster, node) ({_ekmip('min by (cluster, svm, uuid, node)')} == 0))",
    )
    kmip = problem_count(
        "KMIP servers a node cannot reach",
        "(server, node) pairs whose state ONTAP reports not_responding "
        "(connectivity.node_states of the key-managers endpoint, ONTAP 9.13.1 and later).",
        "count(min by (cluster, svm, uuid, server, node) "
        f"({akv('ontap_kmip_server_reachable')}) == 0)",
    )
    blocked = problem_count(
        "Key stores blocked",
        "Key stores whose state ONTAP reports blocked (the key-stores endpoint's state, ONTAP "
        "9.16.1 and later).",
        "count(max by (cluster, svm, uuid) "
        f"({akv('ontap_key_store_state', state='blocked')}) == 1)",
    )
    setup = problem_count(
        "Key managers needing action",
        "External KMIP and Onboard Key Manager configurations whose status code is neither 0 "
        'nor ONTAP\'s "No action needed at this time." (65537200).',
        f"count(min by (cluster, svm, uuid) ({akv('ontap_key_manager_setup_ok')}) == 0)",
    )
    return [
        Cell(configurations, 3, 4),
        *(Cell(panel, 3, 4) for panel in (services, keks, ekmip, kmip, blocked)),
        Cell(setup, 3, 4),
        Cell(_time_left(), 3, 4),
    ]


def _time_left() -> Json:
    return stat(
        "Shortest time left before volumes go offline",
        "Over the cloud key-manager configurations that cannot reach their service: "
        f"{VOLUME_OFFLINE_AFTER_SECONDS} s minus the time since the exporter first saw the "
        "current streak. NetApp's EMS reference (ekmip.akv.volOffline, ekmip.gckms.volOffline, "
        "ekmip.awskms.volOffline) says ONTAP takes the SVM's encrypted volumes offline after "
        "60 minutes of polls without a successful answer, where its key-manager policy lets it. "
        "ONTAP counts from its own polls, which can start earlier: an upper bound.",
        [
            Query(
                f"clamp_min(min({VOLUME_OFFLINE_AFTER_SECONDS} - "
                f"(time() - {_unreachable_since()})), 0)"
            )
        ],
        field_config(
            unit="s",
            mappings=[range_words(None, 0, "60 min passed", "dark-red")],
            steps=thresholds("red", (900, "orange"), (1800, "yellow")),
            no_value="No service unreachable",
        ),
    )


_TABLE_QUERIES = {
    "A": _info(),
    "B": _service(),
    "C": _kek(),
    "D": _ekmip(),
}


def _configurations_table() -> Json:
    words = COLOURED_CELLS
    link = cluster_column_link()
    return table(
        "Cloud key-manager configurations",
        "Every Azure Key Vault, Google Cloud KMS, AWS KMS and Barbican configuration, one row "
        "each: whether ONTAP reaches the service, whether the KEK is available, and the worst "
        "EKMIP state over the nodes. An empty cell means ONTAP did not report the field (an "
        "inactive configuration, or Barbican's EKMIP, which ONTAP does not have): unknown, "
        "not healthy.",
        [Query(expr) for expr in _TABLE_QUERIES.values()],
        field_config(
            no_value="",
            overrides=[
                override("Cluster", links=[link]),
                override("Service", mappings=[REACHABLE], **words),
                override("KEK", mappings=[AVAILABLE], **words),
                override("Worst EKMIP", mappings=[WORST_EKMIP], **words),
            ],
        ),
        [
            merge(),
            organize(
                hidden=["Time", "Value #A", "uuid"],
                columns={
                    "cluster": "Cluster",
                    "svm": "SVM",
                    "key_manager": "Key manager",
                    "Value #B": "Service",
                    "Value #C": "KEK",
                    "Value #D": "Worst EKMIP",
                },
            ),
        ],
        sort_by="Cluster",
    )


def _kmip_table() -> Json:
    return table(
        "KMIP key servers, node by node",
        "Each external KMIP key server as each node sees it (connectivity.node_states, ONTAP "
        "9.13.1 and later): Reachable (available) or UNREACHABLE (not_responding). A node whose "
        "state ONTAP gives as unknown has no row.",
        [Query(f"min by (cluster, svm, server, node) ({akv('ontap_kmip_server_reachable')})")],
        field_config(
            mappings=[REACHABLE],
            steps=thresholds("red", (1, "green")),
            colored_cells=True,
        ),
        [
            organize(
                hidden=["Time"],
                columns={
                    "cluster": "Cluster",
                    "svm": "SVM",
                    "server": "Key server",
                    "node": "Node",
                    "Value": "From the node",
                },
            )
        ],
        sort_by="Cluster",
    )


def _key_stores_table() -> Json:
    return table(
        "Key stores",
        "ONTAP's key stores (the key-stores endpoint, ONTAP 9.10.1 and later) and the state "
        "ONTAP reports for each (ONTAP 9.16.1 and later): blocked is the state to act on.",
        [Query(f"max by (cluster, svm, type, state) ({akv('ontap_key_store_state')} == 1)")],
        field_config(
            overrides=[
                override(
                    "State",
                    mappings=[value_words(("blocked", "BLOCKED", "red"))],
                    custom_cellOptions={"type": "color-text"},
                )
            ],
        ),
        [
            organize(
                hidden=["Time", "Value"],
                columns={
                    "cluster": "Cluster",
                    "svm": "SVM",
                    "type": "Key manager",
                    "state": "State",
                },
            )
        ],
        sort_by="Cluster",
    )


def _history() -> Json:
    return state_timeline(
        "Key service reachability per cluster and key manager",
        "For each cluster and cloud key manager, the worst reachability of the service over its "
        "configurations. Gaps mean no data: the exporter could not poll the cluster, or the "
        "configuration is inactive.",
        [
            Query(
                f"min by (cluster, key_manager) ({_service()})",
                "{{cluster}} {{key_manager}}",
            )
        ],
        field_config(mappings=[REACHABLE], steps=thresholds("red", (1, "green"))),
    )


def dashboard() -> Dashboard:
    """Every key manager of the fleet."""
    return Dashboard(
        uid=KEY_MANAGERS_UID,
        title="Key managers / Fleet",
        description="Every external key manager of the fleet's ONTAP clusters: Azure Key Vault, "
        "Google Cloud KMS, AWS KMS, Barbican, external KMIP servers, the Onboard Key Manager and "
        "ONTAP's key stores.",
        rows=[
            Row("Now", _now()),
            Row("Cloud key managers", [Cell(_configurations_table(), 24, 10)]),
            Row(
                "KMIP key servers and key stores",
                [Cell(_kmip_table(), 12, 9), Cell(_key_stores_table(), 12, 9)],
            ),
            Row("History", [Cell(_history(), 24, 9)]),
        ],
        variables=[
            datasource_variable(),
            *cluster_variables(),
            label_variable("svm", "SVM", _every_info()),
        ],
        links=links(KEY_MANAGERS_UID),
    )
