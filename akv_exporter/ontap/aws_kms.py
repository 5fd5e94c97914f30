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

from typing import Any

from akv_exporter.ontap.cluster import Release
from akv_exporter.ontap.key_manager_endpoint import (
    KeyManagerEndpoint,
    KeyManagerStatus,
    identify,
    parse_check,
    parse_ekmip,
    text,
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


def parse_record(record: Any, release: Release | None = None) -> KeyManagerStatus:
    """Return the status of one aws-kms record; MalformedRecord if it has no identity."""
    record, uuid, svm, svm_uuid, scope = identify(record)
    return KeyManagerStatus(
        kind="aws",
        uuid=uuid,
        svm=svm,
        svm_uuid=svm_uuid,
        scope=scope,
        enabled=True,  # no `enabled`: a scope's one configuration is the one in use
        service=parse_check(record.get("amazon_reachability"), "reachable"),
        kek=parse_check(record.get("state"), "cluster_state", "available"),
        ekmip=parse_ekmip(record.get("ekmip_reachability")),
        details=tuple((name, text(record.get(name))) for name in DETAILS),
    )


ENDPOINT = KeyManagerEndpoint(
    kind="aws",
    path=PATH,
    fields=fields_query,
    fallback_fields=FIELDS_QUERY,
    introduced=(9, 12),
    service_field="amazon_reachability",
    parse=parse_record,
    get_errors=GET_ERRORS,
)
