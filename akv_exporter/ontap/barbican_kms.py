"""ONTAP's barbican-kms endpoint (OpenStack Barbican): path, fields asked for, records -> status.

NetApp's REST reference (``/api/security/barbican-kms``, 9.17 on;
``netapp_ontap/resources/barbican.py``): ``barbican_reachability`` for the service and
``state.cluster_state`` for the SVM KEK ("true when an SVM-KEK is present on all nodes"), both
advanced. Unlike the other cloud key managers it has ``enabled`` and ``configuration`` (an SVM
may keep several inactive configurations, one active) and **no** ``ekmip_reachability``: ONTAP
refuses that field name (error 262197), so it is never asked for and a Barbican configuration's
health never waits on it.
"""

from __future__ import annotations

from typing import Any

from akv_exporter.ontap.cluster import Release
from akv_exporter.ontap.key_manager_endpoint import (
    KeyManagerEndpoint,
    KeyManagerStatus,
    boolean,
    identify,
    name_of,
    parse_check,
    text,
)
from akv_exporter.ontap.key_manager_provider import (
    KeyManagerProvider,
    KeyManagerWords,
    cloud_metrics,
)

PATH = "/api/security/barbican-kms"
ADVANCED_FIELDS = ("state", "barbican_reachability")
ORDINARY_FIELDS = ("uuid", "svm", "scope", "enabled", "configuration", "key_id", "keystone_url")
FIELDS_QUERY = ",".join(ADVANCED_FIELDS + ORDINARY_FIELDS)
DETAILS = ("configuration", "key_id", "keystone_url")  # ontap_barbican_kms_info's, after scope

# The one error code NetApp documents for GET /api/security/barbican-kms.
GET_ERRORS = {
    "65539801": "barbican_unreachable",  # the Barbican Key Management Service is unreachable
    # from one or more nodes
}


def fields_query(release: Release | None) -> str:
    """Return the `fields` query: ekmip_reachability never (Barbican has none)."""
    return FIELDS_QUERY


def parse_record(record: Any, release: Release | None = None) -> KeyManagerStatus:
    """Return the status of one barbican-kms record; MalformedRecord if it has no identity."""
    record, uuid, svm, svm_uuid, scope = identify(record)
    enabled = boolean(record.get("enabled"))
    if enabled is None and isinstance(record.get("barbican_reachability"), dict):
        enabled = True  # ONTAP computes the advanced fields only for the active configuration
    details = {
        "configuration": name_of(record.get("configuration")),
        "key_id": text(record.get("key_id")),
        "keystone_url": text(record.get("keystone_url")),
    }
    return KeyManagerStatus(
        kind="barbican",
        uuid=uuid,
        svm=svm,
        svm_uuid=svm_uuid,
        scope=scope,
        enabled=enabled,
        service=parse_check(record.get("barbican_reachability"), "reachable"),
        kek=parse_check(record.get("state"), "cluster_state", "available"),
        ekmip=(),
        details=tuple((name, details[name]) for name in DETAILS),
    )


ENDPOINT = KeyManagerEndpoint(
    kind="barbican",
    path=PATH,
    fields=fields_query,
    fallback_fields=FIELDS_QUERY,
    introduced=(9, 17),
    service_field="barbican_reachability",
    parse=parse_record,
    get_errors=GET_ERRORS,
)
WORDS = KeyManagerWords(
    name="Barbican KMS",
    title="OpenStack Barbican",
    short="Barbican",
    json_key="barbican_kms",
    target="key_id",
    details=DETAILS,
)
PROVIDER = KeyManagerProvider(
    kind="barbican",
    endpoint=ENDPOINT,
    words=WORDS,
    metrics=cloud_metrics("ontap_barbican_kms_", WORDS, ENDPOINT, enabled=True, ekmip=False),
    # NetApp's EMS reference has no Barbican events, and documents no volume-offline rule for
    # it: none is claimed.
)
