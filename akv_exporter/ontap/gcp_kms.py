"""ONTAP's gcp-kms endpoint (Google Cloud KMS): its path, the fields asked for, records -> status.

NetApp's REST reference (``/api/security/gcp-kms``, ``netapp_ontap/resources/gcp_kms.py``): the
shape of azure-key-vaults with ``google_reachability`` for the service, ``state.cluster_state``
for the KEK and the same per-node ``ekmip_reachability``; these three are advanced fields, sent
only when named. There is no ``enabled`` or ``configuration``: an SVM (or the cluster) has one
Google Cloud KMS configuration, and it is the one in use. ``code`` is an integer in the 9.9.1 and
9.11.1 references and a string from (at the latest) 9.15.1: both are read
(``keymanager.normalize_code``).

The release: the endpoint is in the REST API from 9.9, but NetApp's 9.9.1 reference says it is
"only available to the NetApp Cloud Volume Services for GCP", and the ONTAP documentation
(encryption-at-rest, "Manage keys with Google Cloud KMS") says ONTAP can use Google Cloud KMS
"beginning in ONTAP 9.10.1". An ONTAP cluster the exporter polls is not Cloud Volumes Service,
so 9.10 is the first release asked: a 9.9 cluster is never asked for an endpoint it cannot use.
"""

from __future__ import annotations

from akv_exporter.ontap.cluster import Release
from akv_exporter.ontap.key_manager_endpoint import KeyManagerEndpoint, cloud_parser
from akv_exporter.ontap.key_manager_provider import (
    KeyManagerProvider,
    KeyManagerWords,
    cloud_metrics,
)

PATH = "/api/security/gcp-kms"
ADVANCED_FIELDS = ("state", "google_reachability", "ekmip_reachability")
# In NetApp's 9.9.1 reference already; none of them carries an "Introduced in" of its own.
ORDINARY_FIELDS = (
    "uuid",
    "svm",
    "scope",
    "project_id",
    "key_ring_location",
    "key_ring_name",
    "key_name",
)
FIELDS_QUERY = ",".join(ADVANCED_FIELDS + ORDINARY_FIELDS)
# ontap_gcp_kms_info's labels after `scope` (KeyManagerStatus.details), ONTAP's field names.
DETAILS = ("project_id", "key_ring_location", "key_ring_name", "key_name")

# The error codes NetApp documents for GET /api/security/gcp-kms (collection and instance).
GET_ERRORS = {
    "65537730": "google_unreachable",  # the Google Cloud KMS is unreachable from one or more
    # nodes
    "65537551": "kek_unavailable",  # top-level internal key protection key (KEK) unavailable
    # on one or more nodes
    "65537552": "ekmip_unreachable",  # embedded KMIP server status not available
}


def fields_query(release: Release | None) -> str:
    """Return the `fields` query: every release since 9.10 has the same fields asked for."""
    return FIELDS_QUERY


ENDPOINT = KeyManagerEndpoint(
    kind="gcp",
    path=PATH,
    fields=fields_query,
    fallback_fields=FIELDS_QUERY,
    introduced=(9, 10),
    service_field="google_reachability",
    parse=cloud_parser("gcp", "google_reachability", DETAILS),
    get_errors=GET_ERRORS,
)
WORDS = KeyManagerWords(
    name="Google Cloud KMS",
    title="Google Cloud KMS",
    short="Google",
    json_key="gcp_kms",
    target="key_name",
    details=DETAILS,
)
PROVIDER = KeyManagerProvider(
    kind="gcp",
    endpoint=ENDPOINT,
    words=WORDS,
    metrics=cloud_metrics("ontap_gcp_kms_", WORDS, ENDPOINT),
    ems_events=("ekmip.gckms.*",),
    ems_alerts=("ekmip.gckms.volOffline", "ekmip.gckms.notAvailable"),
    # NetApp's EMS reference, ekmip.gckms.volOffline: ONTAP polls Google Cloud KMS every 15
    # minutes; after 60 minutes without a successful poll the SVM is blocked and its encrypted
    # volumes go offline.
    volumes_offline_after=3600.0,
    volumes_offline_event="ekmip.gckms.volOffline",
)
