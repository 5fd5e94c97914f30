"""ONTAP's key-managers endpoint: external KMIP key servers and the Onboard Key Manager (OKM).

NetApp's REST reference (``/api/security/key-managers``, 9.6 on;
``netapp_ontap/resources/security_key_manager.py``): one record per key manager of an SVM or
the cluster. Its health is ``status`` (an integer ``code`` and a ``message``, 9.7+, expensive:
sent only when named; 65537200 "No action needed at this time." and 0 are healthy) and, per
external key server, ``connectivity`` (advanced): ``cluster_availability`` (9.7+) and, from 9.13,
``node_states[]`` with ``available``, ``not_responding`` or ``unknown`` per node.

The record also carries ``onboard.key_backup``: the Onboard Key Manager's backup, key material.
``fields=*`` and ``fields=**`` both return it, so this endpoint is asked for every field by
name, never ``*``, ``**`` or anything under ``onboard`` (not even ``onboard.enabled``): a record
with external key servers is KMIP, one without is the Onboard Key Manager (ONTAP's key stores,
9.10.1+, name the type too).

The 9.7 reference spells the per-node array ``connectivity.records``, the 9.9.1 and 9.11.1
references document no ``connectivity`` at all, and 9.13 documents ``node_states``: a 9.8-9.12
cluster is asked for ``cluster_availability`` only, and one that refuses it (error 262197) gets
the fields of the fallback set.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from akv_exporter.ontap.cluster import Release
from akv_exporter.ontap.key_manager_endpoint import (
    Check,
    KeyManagerEndpoint,
    KeyManagerStatus,
    boolean,
    fold_message,
    identify,
    name_of,
    normalize_code,
    text,
    uuid_of,
)
from akv_exporter.ontap.key_manager_provider import (
    CONFIGURATION,
    KeyManagerMetrics,
    KeyManagerProvider,
    KeyManagerWords,
    Metric,
)
from akv_exporter.ontap.key_servers import KeyServer, ServerNode

PATH = "/api/security/key-managers"
# ONTAP's "No action needed at this time." (NetApp's example of status.code): healthy, as 0 is.
NO_ACTION_NEEDED = "65537200"
HEALTHY_CODES = frozenset({"0", NO_ACTION_NEEDED})
# Every field by name, with the release it came in (NetApp's filter list of the GET); never
# `onboard`, never a wildcard.
FIELDS_BY_RELEASE: tuple[tuple[str, Release], ...] = (
    ("uuid", (9, 6)),
    ("scope", (9, 6)),
    ("svm", (9, 6)),
    ("external.servers.server", (9, 6)),
    ("status.code", (9, 7)),
    ("status.message", (9, 7)),
    ("external.servers.connectivity.cluster_availability", (9, 7)),
    ("external.servers.connectivity.node_states", (9, 13)),
    ("configuration", (9, 16)),
    ("enabled", (9, 16)),
)
NODE_STATES = ("available", "not_responding", "unknown")


def fields_query(release: Release | None) -> str:
    """Return the fields the release has, by name; an unknown release: those of 9.8."""
    known = release if release is not None else (9, 8)
    return ",".join(name for name, since in FIELDS_BY_RELEASE if since <= known)


# Asked when a cluster refuses a field of fields_query (262197): what every 9.8+ release knows,
# without the connectivity the 9.8-9.12 references leave out.
FALLBACK_FIELDS = "uuid,scope,svm,external.servers.server,status.code,status.message"


def _servers(external: Any) -> tuple[KeyServer, ...]:
    servers = external.get("servers") if isinstance(external, Mapping) else None
    if not isinstance(servers, list):
        return ()
    found = []
    for entry in servers:
        if not isinstance(entry, Mapping) or not text(entry.get("server")):
            continue
        connectivity = entry.get("connectivity")
        connectivity = connectivity if isinstance(connectivity, Mapping) else {}
        nodes = []
        states = connectivity.get("node_states")
        for state in states if isinstance(states, list) else ():
            if not isinstance(state, Mapping):
                continue
            node = name_of(state.get("node")) or uuid_of(state.get("node"))
            value = text(state.get("state"))
            if node and value:
                nodes.append(ServerNode(node, uuid_of(state.get("node")), value))
        found.append(
            KeyServer(
                server=text(entry.get("server")),
                cluster_available=boolean(connectivity.get("cluster_availability")),
                nodes=tuple(sorted(nodes, key=lambda n: n.node)),
            )
        )
    return tuple(sorted(found, key=lambda s: s.server))


def parse_record(record: Any, release: Release | None = None) -> KeyManagerStatus:
    """Return the status of one key-managers record (kind kmip or okm); MalformedRecord."""
    record, uuid, svm, svm_uuid, scope = identify(record)
    servers = _servers(record.get("external"))
    status = record.get("status")
    setup = None
    if isinstance(status, Mapping) and normalize_code(status.get("code")):
        code = normalize_code(status.get("code"))
        setup = Check(code in HEALTHY_CODES, code, fold_message(status.get("message")))
    enabled = boolean(record.get("enabled"))
    kind = "kmip" if isinstance(record.get("external"), Mapping) else "okm"
    return KeyManagerStatus(
        kind=kind,
        uuid=uuid,
        svm=svm,
        svm_uuid=svm_uuid,
        scope=scope,
        # `enabled` from 9.16; before it an SVM has one key manager, the one in use.
        enabled=True if enabled is None else enabled,
        service=None,
        kek=None,
        ekmip=(),
        details=(("type", kind), ("configuration", name_of(record.get("configuration")))),
        servers=servers,
        setup=setup,
    )


ENDPOINT = KeyManagerEndpoint(
    kind="kmip",
    path=PATH,
    fields=fields_query,
    fallback_fields=FALLBACK_FIELDS,
    introduced=(9, 6),
    service_field="status",
    parse=parse_record,
    kinds=frozenset({"kmip", "okm"}),
    every_field_allowed=False,  # fields=** returns onboard.key_backup: key material
)

# Spec section 8's families, shared by both kinds (the `type` label tells them apart).
METRICS = KeyManagerMetrics(
    info=Metric(
        "ontap_key_manager_info",
        "External KMIP or Onboard Key Manager of an ONTAP cluster or SVM (key-managers).",
        (*CONFIGURATION, "scope", "type", "configuration"),
        "`type` is `kmip` (a record with external key servers) or `okm`; `configuration` from "
        "9.16.1.",
    ),
    setup=Metric(
        "ontap_key_manager_setup_ok",
        "1 if ONTAP's status.code of the key manager is 0 or 65537200 (no action needed).",
        (*CONFIGURATION, "code"),
        "`code` is ONTAP's `status.code` (9.7 and later).",
    ),
    server_reachable=Metric(
        "ontap_kmip_server_reachable",
        "1 if the node reaches the KMIP key server (ONTAP connectivity.node_states: available), "
        "0 if not_responding.",
        (*CONFIGURATION, "server", "node"),
        "No series for `unknown`; ONTAP 9.13.1 and later (`node_states`).",
    ),
    server_cluster_reachable=Metric(
        "ontap_kmip_server_cluster_reachable",
        "1 if the KMIP key server is available on all nodes (connectivity.cluster_availability).",
        (*CONFIGURATION, "server"),
    ),
    server_unreachable_since=Metric(
        "ontap_kmip_server_unreachable_since_timestamp_seconds",
        "Unix time of the first poll of the current streak of the key server not available.",
        (*CONFIGURATION, "server"),
        "Not available: `cluster_availability` false or a node `not_responding`. Kept across "
        "restarts (`state_file`).",
    ),
)
PROVIDER = KeyManagerProvider(
    kind="kmip",
    endpoint=ENDPOINT,
    words=KeyManagerWords(
        name="KMIP",
        title="external KMIP key manager",
        short="KMIP",
        json_key="kmip",
        target="configuration",
        details=("type", "configuration"),
    ),
    metrics=METRICS,
    # NetApp's EMS reference: km.keyserver.notavailable / available (an external key server
    # not available for an SVM, and back); km.keyretrieve.failed (a node failed to retrieve its
    # complete key set at boot).
    ems_events=("km.keyserver.notavailable", "km.keyserver.available", "km.keyretrieve.failed"),
    ems_alerts=("km.keyserver.notavailable", "km.keyretrieve.failed"),
)
OKM_PROVIDER = KeyManagerProvider(
    kind="okm",
    endpoint=ENDPOINT,
    words=KeyManagerWords(
        name="OKM",
        title="Onboard Key Manager",
        short="Onboard",
        json_key="okm",
        target="configuration",
        details=("type", "configuration"),
    ),
    metrics=METRICS,
)
