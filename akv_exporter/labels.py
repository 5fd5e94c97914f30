"""The label names the exporter puts on series itself.

The metrics renderer emits these; the configuration refuses a configured label of the same name,
since a series cannot carry one label twice. tests/test_metrics.py checks that every label the
metric catalogue (metrics/catalogue.py) declares, and so every label the renderer emits, is
listed here.
"""

from __future__ import annotations

# ontap_akv_info's labels beyond cluster, svm and uuid: the configuration's scope, then its
# details as ontap/akv.py names them (KeyManagerStatus.details).
AKV_INFO_LABELS = (
    "scope",
    "configuration",
    "vault",
    "key_id",
    "authentication_method",
    "client_id",
    "tenant_id",
)

EXPORTER_LABELS = frozenset(
    {
        "cluster",
        "svm",
        "uuid",
        *AKV_INFO_LABELS,
        "node",
        "code",
        "check",
        "message",
        "cluster_uuid",  # akv_exporter_cluster_info
        "version",
        "python_version",  # akv_exporter_build_info
        "reason",  # akv_exporter_cluster_poll_errors_total
        "status",  # akv_exporter_ontap_requests_total
        "key_manager",  # ontap_key_manager_* (the health-monitor policy)
        "state",  # ontap_encrypted_volumes
        "event",  # ontap_ems_*
        "endpoint",  # akv_exporter_endpoint_* (the slow polls)
        # The other key managers' _info labels (ontap/gcp_kms.py, aws_kms.py, barbican_kms.py,
        # kmip.py) and the key stores' (ontap/key_stores.py), by ONTAP's field names.
        "project_id",
        "key_ring_location",
        "key_ring_name",
        "key_name",
        "region",
        "keystone_url",
        "type",
        "location",
        "server",  # ontap_kmip_server_*
    }
)

# Labels Prometheus sets on every scraped series.
TARGET_LABELS = frozenset({"job", "instance"})
