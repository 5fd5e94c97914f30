"""ONTAP's aws-kms endpoint (AWS KMS): its path, the fields asked for, records -> status.

NetApp's REST reference (``/api/security/aws-kms``, 9.12 on; ``netapp_ontap/resources/aws_kms.py``):
the shape of azure-key-vaults with ``amazon_reachability`` for the service, ``state.cluster_state``
for the KEK and per-node ``ekmip_reachability``. No ``enabled`` or ``configuration``: an SVM (or
the cluster) has one AWS KMS configuration, the one in use.

NetApp's field text marks ``amazon_reachability`` and ``ekmip_reachability`` advanced, but not
``state``, while its own example fetches all three by name and says "these values are not
retrieved by default with the 'fields=*' option". All three are named: it holds either way.
"""

from __future__ import annotations

from akv_exporter.ontap.cluster import Release
from akv_exporter.ontap.key_manager_endpoint import KeyManagerEndpoint, cloud_parser
from akv_exporter.ontap.key_manager_provider import (
    KeyManagerProvider,
    KeyManagerWords,
    cloud_metrics,
)

PATH = "/api/security/aws-kms"
ADVANCED_FIELDS = ("state", "amazon_reachability", "ekmip_reachability")
ORDINARY_FIELDS = ("uuid", "svm", "scope", "region", "key_id")
FIELDS_QUERY = ",".join(ADVANCED_FIELDS + ORDINARY_FIELDS)
DETAILS = ("region", "key_id")  # ontap_aws_kms_info's labels after `scope`

# The error codes NetApp documents for GET /api/security/aws-kms (collection and instance).
GET_ERRORS = {
    "65537915": "amazon_unreachable",  # the Amazon Web Service Key Management Service is
    # unreachable from one or more nodes
    "65537551": "kek_unavailable",  # top-level internal key protection key (KEK) unavailable
    # on one or more nodes
    "65537552": "ekmip_unreachable",  # embedded KMIP server status not available
}


def fields_query(release: Release | None) -> str:
    """Return the `fields` query: every release since 9.12 has the fields asked for."""
    return FIELDS_QUERY


ENDPOINT = KeyManagerEndpoint(
    kind="aws",
    path=PATH,
    fields=fields_query,
    fallback_fields=FIELDS_QUERY,
    introduced=(9, 12),
    service_field="amazon_reachability",
    parse=cloud_parser("aws", "amazon_reachability", DETAILS),
    get_errors=GET_ERRORS,
)
WORDS = KeyManagerWords(
    name="AWS KMS",
    title="AWS KMS",
    short="Amazon",
    json_key="aws_kms",
    target="key_id",
    details=DETAILS,
)
PROVIDER = KeyManagerProvider(
    kind="aws",
    endpoint=ENDPOINT,
    words=WORDS,
    metrics=cloud_metrics("ontap_aws_kms_", WORDS, ENDPOINT),
    ems_events=("ekmip.awskms.*",),
    ems_alerts=("ekmip.awskms.volOffline", "ekmip.awskms.notAvailable"),
    # NetApp's EMS reference, ekmip.awskms.volOffline: the same 60-minute rule as AKV's.
    volumes_offline_after=3600.0,
    volumes_offline_event="ekmip.awskms.volOffline",
)
