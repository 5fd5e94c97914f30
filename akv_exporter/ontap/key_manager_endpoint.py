"""The key-manager seam: what every ONTAP external key-manager endpoint declares and parses into.

ONTAP's cloud key managers answer in one shape (NetApp's REST reference: azure-key-vaults,
gcp-kms, aws-kms, barbican-kms): a configuration per SVM or for the cluster, the reachability
of the external key service from every node (``<service>_reachability``), the state of the
wrapped KEK (``state``) and, per node, the reachability of the embedded KMIP server
(``ekmip_reachability``; Barbican has none). External KMIP key managers and the Onboard Key
Manager (key-managers) have a setup ``status`` and, per key server, its connectivity
(``servers``). Each endpoint is one module declaring a ``KeyManagerEndpoint``: its path, the
fields it asks for and a parser into the one status type below, which the poller, snapshots,
metrics, the status page, the JSON and ``check`` read. What each kind is called and exposed as
is its ``KeyManagerProvider`` (ontap/key_manager_provider.py); ``ontap/key_manager_registry.py``
lists the providers.

Parsing is tolerant of release differences: ``code`` is a string ("0" when healthy) or, on 9.8,
an integer; any field may be null or missing, which means unknown, and unknown is never healthy;
fields a parser does not know are ignored. A record that is not an object or has no uuid is
skipped and counted, never fatal to the poll.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from akv_exporter.ontap.cluster import Release
from akv_exporter.ontap.key_servers import KeyServer

_WHITESPACE = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class Check:
    """One cluster-wide check ONTAP reports: the key service's reachability, or the KEK's state."""

    ok: bool
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class NodeCheck:
    """One node's reachability of the embedded KMIP server (an ``ekmip_reachability`` entry)."""

    node: str
    node_uuid: str
    ok: bool
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class KeyManagerStatus:
    """One key-manager configuration as ONTAP reported it; ``None`` / empty: ONTAP did not say."""

    kind: str  # ONTAP's key-manager key (the policy's): akv, gcp, aws, barbican, kmip, okm
    uuid: str
    svm: str  # "" for a cluster-scoped configuration
    svm_uuid: str
    scope: str
    enabled: bool | None
    service: Check | None  # the external key service, reachable from all nodes
    kek: Check | None  # the wrapped KEK, available on all nodes
    ekmip: tuple[NodeCheck, ...]
    # What this kind of configuration points at, by ONTAP's field names where ONTAP has one
    # (for AKV: vault, key_id, client_id, ...): info labels, the page and the JSON show them.
    details: tuple[tuple[str, str], ...] = ()
    # External KMIP key servers and ONTAP's word on their connectivity (kmip only).
    servers: tuple[KeyServer, ...] = ()
    # The key manager's setup (key-managers' status: 0 or 65537200 is ok): kmip and okm only.
    setup: Check | None = None

    @property
    def service_unreachable(self) -> bool:
        """Return whether ONTAP said the key service cannot be reached (not: did not say)."""
        return self.service is not None and not self.service.ok

    @property
    def kek_unavailable(self) -> bool:
        """Return whether ONTAP said the wrapped KEK is unavailable (not: did not say)."""
        return self.kek is not None and not self.kek.ok

    @property
    def ekmip_unreachable(self) -> tuple[NodeCheck, ...]:
        return tuple(n for n in self.ekmip if not n.ok)

    def detail(self, name: str) -> str:
        """Return the detail called ``name``; "" when this configuration has none."""
        return next((value for key, value in self.details if key == name), "")

    @property
    def servers_down(self) -> tuple[KeyServer, ...]:
        """Return the key servers ONTAP said are not available from every node."""
        return tuple(server for server in self.servers if server.down)

    @property
    def nodes_without_server(self) -> tuple[str, ...]:
        """Return the nodes that reach none of their key servers (each said not_responding)."""
        nodes = {n.node for server in self.servers for n in server.nodes}
        return tuple(
            sorted(
                node
                for node in nodes
                if all(node in server.not_responding for server in self.servers)
            )
        )


class MalformedRecord(ValueError):
    """A record a parser cannot use at all (not an object, no uuid)."""


@dataclass(frozen=True, slots=True)
class KeyManagerEndpoint:
    """One ONTAP key-manager endpoint: where it is, what to ask for, how to read a record."""

    kind: str  # the KeyManagerStatus.kind its records parse into
    path: str  # the collection, e.g. "/api/security/azure-key-vaults"
    # The `fields` query for a release (None: not known yet): only the fields it has, since
    # ONTAP refuses an unknown one; the advanced fields are sent only when named.
    fields: Callable[[Release | None], str]
    # Fields every release of the endpoint knows: asked instead when a cluster answers ONTAP
    # error 262197 (an unknown field name) to ``fields`` anyway.
    fallback_fields: str
    introduced: Release  # the first ONTAP release with this endpoint
    service_field: str  # ONTAP's field for the key service's reachability, "azure_reachability"
    # A record and the cluster's release -> its status; MalformedRecord if unusable.
    parse: Callable[[Any, Release | None], KeyManagerStatus]
    # The error codes NetApp documents for this GET itself -> the state each speaks of: such an
    # answer is about the key manager (its configurations stay as last known), not a failed poll.
    get_errors: Mapping[str, str] = field(default_factory=dict)
    # ONTAP's key-store types (GET /api/security/key-stores) whose configurations this endpoint
    # lists; empty: just ``kind``. key-managers lists both kmip and okm.
    kinds: frozenset[str] = frozenset()
    # Whether a first poll, before the release is known, may ask fields=** (every field the
    # release has): not where that returns what must never be asked (key-managers' key backup).
    every_field_allowed: bool = True

    @property
    def key_store_types(self) -> frozenset[str]:
        """Return the key-store types that mean this endpoint has configurations to list."""
        return self.kinds or frozenset({self.kind})

    @property
    def service(self) -> str:
        """Return the key service's word (``azure``): labels, JSON keys and state names use it."""
        return self.service_field.removesuffix("_reachability")


@dataclass(frozen=True, slots=True)
class ParsedRecords:
    """The configurations parsed from a collection, and why any record was skipped.

    ``refused``: the endpoints (by kind) that answered the GET itself with one of the errors
    NetApp documents for it (KeyManagerEndpoint.get_errors), with that error.
    """

    key_managers: tuple[KeyManagerStatus, ...]
    skipped: tuple[str, ...]
    refused: Mapping[str, Check] = field(default_factory=dict)


# --- the parsing every endpoint shares (ems.py and volumes.py read names with it too) ---------


def fold_message(value: Any) -> str:
    """Return ONTAP's message with whitespace runs folded to one space, "" for null."""
    if not isinstance(value, str):
        return ""
    return _WHITESPACE.sub(" ", value).strip()


def normalize_code(value: Any) -> str:
    """Return ONTAP's code as a decimal string: "0" and 0 are the same; null is ""."""
    if isinstance(value, bool):  # bool is an int subclass; never a code
        return ""
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        text = value.strip()
        if text.lstrip("-").isdigit():
            return str(int(text))
        return text
    return ""


def boolean(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return None


def text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def name_of(value: Any) -> str:
    return text(value.get("name")) if isinstance(value, Mapping) else ""


def uuid_of(value: Any) -> str:
    return text(value.get("uuid")) if isinstance(value, Mapping) else ""


def parse_check(value: Any, *flags: str) -> Check | None:
    """Return the check in ``value`` using the first boolean among ``flags``; None when unknown."""
    if not isinstance(value, Mapping):
        return None
    for flag in flags:
        ok = boolean(value.get(flag))
        if ok is not None:
            return Check(ok, normalize_code(value.get("code")), fold_message(value.get("message")))
    return None


def parse_ekmip(value: Any) -> tuple[NodeCheck, ...]:
    """Return one NodeCheck per entry that names a node and says reachable or not."""
    if not isinstance(value, list):
        return ()
    checks = []
    for entry in value:
        if not isinstance(entry, Mapping):
            continue
        ok = boolean(entry.get("reachable"))
        node = name_of(entry.get("node")) or uuid_of(entry.get("node"))
        if ok is None or not node:
            continue
        checks.append(
            NodeCheck(
                node=node,
                node_uuid=uuid_of(entry.get("node")),
                ok=ok,
                code=normalize_code(entry.get("code")),
                message=fold_message(entry.get("message")),
            )
        )
    return tuple(sorted(checks, key=lambda c: c.node))


def cloud_parser(
    kind: str, service_field: str, details: tuple[str, ...]
) -> Callable[[Any, Release | None], KeyManagerStatus]:
    """Return the parser of a cloud key manager without ``enabled`` (GCP KMS, AWS KMS).

    NetApp's gcp-kms and aws-kms have no ``enabled``: a scope's one configuration is the one in
    use. The KEK's flag is ``state.cluster_state``; ``available`` is read too, as AKV's is.
    """

    def parse(record: Any, release: Release | None = None) -> KeyManagerStatus:
        record, uuid, svm, svm_uuid, scope = identify(record)
        return KeyManagerStatus(
            kind=kind,
            uuid=uuid,
            svm=svm,
            svm_uuid=svm_uuid,
            scope=scope,
            enabled=True,
            service=parse_check(record.get(service_field), "reachable"),
            kek=parse_check(record.get("state"), "cluster_state", "available"),
            ekmip=parse_ekmip(record.get("ekmip_reachability")),
            details=tuple((name, text(record.get(name))) for name in details),
        )

    return parse


def identify(record: Any) -> tuple[Mapping[str, Any], str, str, str, str]:
    """Return (record, uuid, svm, svm_uuid, scope) of a configuration record; MalformedRecord."""
    if not isinstance(record, Mapping):
        raise MalformedRecord(f"record is a {type(record).__name__}, not an object")
    uuid = record.get("uuid")
    if not isinstance(uuid, str) or not uuid:
        raise MalformedRecord("record has no uuid")
    svm = record.get("svm")
    scope = text(record.get("scope")) or ("svm" if name_of(svm) else "cluster")
    if scope == "cluster":
        return record, uuid, "", "", scope
    return record, uuid, name_of(svm), uuid_of(svm), scope


def parse_records(
    endpoint: KeyManagerEndpoint, records: Iterable[Any], release: Release | None = None
) -> ParsedRecords:
    """Return every usable configuration in ``records``; the unusable ones are listed as skipped."""
    found: dict[str, KeyManagerStatus] = {}
    skipped: list[str] = []
    for index, record in enumerate(records):
        try:
            status = endpoint.parse(record, release)
        except MalformedRecord as error:
            skipped.append(f"record {index}: {error}")
            continue
        if status.uuid in found:
            skipped.append(f"record {index}: duplicate uuid {status.uuid}")
            continue
        found[status.uuid] = status
    ordered = sorted(found.values(), key=lambda s: (s.svm, s.uuid))
    return ParsedRecords(tuple(ordered), tuple(skipped))
