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
    }
)

# Labels Prometheus sets on every scraped series.
TARGET_LABELS = frozenset({"job", "instance"})
