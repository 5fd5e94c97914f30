"""ONTAP's azure-key-vaults endpoint: its path, the fields asked for, records -> the common status.

What differs between releases, and is accepted here:
- the KEK state is ``state.available`` (the schema) or ``state.cluster_state`` (NetApp's own
  example answer, which also carries 9.14's ``configuration``): both are read on any release;
- ``enabled`` (and ``configuration``) exist from ONTAP 9.14 only (``x-ntap-introduced: 9.14`` in
  NetApp's definition): before 9.14 an SVM or the cluster has exactly one AKV configuration, and
  it is the active one. Where ``enabled`` is missing, activity is inferred (see ``infer_enabled``);
- each release is asked only for the fields it has (``fields_query``); a cluster that refuses one
  anyway (ONTAP error 262197) is asked for the fields every release since 9.8 knows.
The rest (codes, nulls, unknown fields, malformed records) is the seam's:
ontap/key_manager_endpoint.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from akv_exporter.labels import AKV_INFO_LABELS
from akv_exporter.ontap.cluster import Release
from akv_exporter.ontap.key_manager_endpoint import (
    KeyManagerEndpoint,
    KeyManagerStatus,
    boolean,
    identify,
    name_of,
    parse_check,
    parse_ekmip,
    text,
)
from akv_exporter.ontap.key_manager_provider import (
    KeyManagerProvider,
    KeyManagerWords,
    cloud_metrics,
)

AKV_PATH = "/api/security/azure-key-vaults"
ADVANCED_FIELDS = ("state", "azure_reachability", "ekmip_reachability")
ORDINARY_FIELDS = (
    "uuid",
    "svm",
    "scope",
    "enabled",
    "configuration",
    "name",
    "key_id",
    "client_id",
    "tenant_id",
    "authentication_method",
)
# The fields newer than 9.8, with `x-ntap-introduced` from NetApp's definition of azure_key_vault.
INTRODUCED = {"authentication_method": (9, 10), "enabled": (9, 14), "configuration": (9, 14)}
# The `fields` query the exporter sends: the advanced three must be named explicitly.
FIELDS_QUERY = ",".join(ADVANCED_FIELDS + ORDINARY_FIELDS)
# Before `enabled`, a scope holds one configuration and it is the active one (infer_enabled).
ENABLED_INTRODUCED = INTRODUCED["enabled"]
# A configuration's details (KeyManagerStatus.details): ontap_akv_info's labels after `scope`.
# `vault` is ONTAP's `name` (the vault URI); `configuration` is its `configuration` object's name.
DETAILS = tuple(label for label in AKV_INFO_LABELS if label != "scope")

# The error codes NetApp documents for GET /api/security/azure-key-vaults itself, and the state
# each one speaks of (the words are NetApp's error descriptions).
GET_ERRORS = {
    "65537549": "azure_unreachable",  # the AKV Key Management Service is unreachable from one
    # or more nodes
    "65537551": "kek_unavailable",  # top-level internal key protection key (KEK) unavailable
    # on one or more nodes
    "65537552": "ekmip_unreachable",  # embedded KMIP server status not available
}


def fields_query(release: Release | None) -> str:
    """Return the `fields` query for a release: only the fields it has; all when it is unknown.

    ONTAP answers a `fields` entry it does not know with error 262197, so a 9.12 cluster asked
    for 9.14's `enabled` would refuse the whole request.
    """
    if release is None:
        return FIELDS_QUERY
    known = (f for f in ORDINARY_FIELDS if INTRODUCED.get(f, (9, 8)) <= release)
    return ",".join(ADVANCED_FIELDS + tuple(known))


# What every release since 9.8 knows: the fallback when a cluster rejects a field it should know.
FIELDS_QUERY_98 = fields_query((9, 8))


def infer_enabled(record: Mapping, release: Release | None) -> bool | None:
    """Return whether a configuration is active, as ONTAP means it; None when nothing says.

    ``enabled`` when ONTAP sent it. Otherwise active when ONTAP returned any of the advanced
    fields (it computes them only for the active configuration), or when the release predates
    9.14, where a scope holds exactly one configuration and it is always in use.
    """
    sent = boolean(record.get("enabled"))
    if sent is not None:
        return sent
    if any(isinstance(record.get(name), Mapping | list) for name in ADVANCED_FIELDS):
        return True
    if release is not None and release < ENABLED_INTRODUCED:
        return True
    return None


def parse_record(record: Any, release: Release | None = None) -> KeyManagerStatus:
    """Return the status of one azure-key-vaults record; MalformedRecord if it has no identity.

    ``release`` is the cluster's (major, minor) from GET /api/cluster, used only where a record
    lacks ``enabled``.
    """
    record, uuid, svm, svm_uuid, scope = identify(record)
    details = {
        "configuration": name_of(record.get("configuration")),
        "vault": text(record.get("name")),
        "key_id": text(record.get("key_id")),
        "authentication_method": text(record.get("authentication_method")),
        "client_id": text(record.get("client_id")),
        "tenant_id": text(record.get("tenant_id")),
    }
    return KeyManagerStatus(
        kind="akv",
        uuid=uuid,
        svm=svm,
        svm_uuid=svm_uuid,
        scope=scope,
        enabled=infer_enabled(record, release),
        service=parse_check(record.get("azure_reachability"), "reachable"),
        kek=parse_check(record.get("state"), "available", "cluster_state"),
        ekmip=parse_ekmip(record.get("ekmip_reachability")),
        details=tuple((name, details[name]) for name in DETAILS),
    )


ENDPOINT = KeyManagerEndpoint(
    kind="akv",
    path=AKV_PATH,
    fields=fields_query,
    fallback_fields=FIELDS_QUERY_98,
    introduced=(9, 8),
    service_field="azure_reachability",
    parse=parse_record,
    get_errors=GET_ERRORS,
)

WORDS = KeyManagerWords(
    name="AKV",
    title="Azure Key Vault",
    short="Azure",
    json_key="akvs",
    target="vault",
    details=DETAILS,
)
PROVIDER = KeyManagerProvider(
    kind="akv",
    endpoint=ENDPOINT,
    words=WORDS,
    metrics=cloud_metrics(
        "ontap_akv_",
        WORDS,
        ENDPOINT,
        kek_flag="available",
        unreachable_since="azure_unreachable_since_timestamp_seconds",
        enabled=True,
        docs={
            "enabled": "1 active, 0 inactive: ONTAP's `enabled` (9.14 and later), else inferred: "
            "1 when ONTAP returned the advanced fields or the release predates 9.14 (one "
            "configuration per scope, always in use); no series when nothing says "
            "([api.md](api.md#states)).",
            "kek": "From `state.available`, else `state.cluster_state`.",
        },
    ),
    ems_events=("ekmip.akv.*",),
    ems_alerts=("ekmip.akv.volOffline", "ekmip.akv.notAvailable"),
    # NetApp's EMS reference, ekmip.akv.volOffline: "ONTAP polls the AKV every 15 minutes ...
    # If, for 60 minutes, ONTAP does not receive a successful response to a poll, all encrypted
    # volumes are taken offline".
    volumes_offline_after=3600.0,
    volumes_offline_event="ekmip.akv.volOffline",
)
