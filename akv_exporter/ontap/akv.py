"""ONTAP azure-key-vaults records -> typed status, tolerant of release differences.

What differs between releases, and is accepted here:
- the KEK state is ``state.available`` (the schema) or ``state.cluster_state`` (NetApp's own
  example answer, which also carries 9.14's ``configuration``): both are read on any release;
- ``code`` is a string ("0" when healthy) in NetApp's definition; an integer is read too;
- any field may be null or missing: that means unknown, and unknown is never healthy;
- ``enabled`` (and ``configuration``) exist from ONTAP 9.14 only (``x-ntap-introduced: 9.14`` in
  NetApp's definition): before 9.14 an SVM or the cluster has exactly one AKV configuration, and
  it is the active one. Where ``enabled`` is missing, activity is inferred (see ``infer_enabled``);
- fields this module does not know are ignored.

A record that is not an object or has no uuid is skipped and counted, never fatal to the poll.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

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
# What every release since 9.8 knows: the fallback when a cluster rejects a field it should know.
_FIELDS_98 = tuple(name for name in ORDINARY_FIELDS if name not in INTRODUCED)
FIELDS_QUERY_98 = ",".join(ADVANCED_FIELDS + _FIELDS_98)

_WHITESPACE = re.compile(r"\s+")
_RELEASE = re.compile(r"(\d+)\.(\d+)")
# NetApp's definition introduces `enabled` and `configuration` in 9.14 (x-ntap-introduced).
ENABLED_INTRODUCED = (9, 14)


@dataclass(frozen=True, slots=True)
class Check:
    """One cluster-wide check ONTAP reports: Azure reachability or KEK availability."""

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
class AkvStatus:
    """One AKV configuration as ONTAP reported it; ``None`` / empty means ONTAP did not say."""

    uuid: str
    svm: str  # "" for a cluster-scoped configuration
    svm_uuid: str
    scope: str
    enabled: bool | None  # as ONTAP sent it, else inferred (infer_enabled); None: unknown
    configuration: str
    vault: str  # ONTAP's `name`: the vault URI
    key_id: str
    client_id: str
    tenant_id: str
    authentication_method: str
    azure: Check | None
    kek: Check | None
    ekmip: tuple[NodeCheck, ...]

    @property
    def ekmip_unreachable(self) -> tuple[NodeCheck, ...]:
        return tuple(n for n in self.ekmip if not n.ok)


@dataclass(frozen=True, slots=True)
class ParsedRecords:
    """The configurations parsed from a collection, and why any record was skipped.

    ``refused`` is set when ONTAP answered the GET itself with one of the AKV errors NetApp
    documents for it (GET_ERRORS): an answer about AKV, with no records.
    """

    akvs: tuple[AkvStatus, ...]
    skipped: tuple[str, ...]
    refused: Check | None = None


# The error codes NetApp documents for GET /api/security/azure-key-vaults itself, and the state
# each one speaks of (the words are NetApp's error descriptions).
GET_ERRORS = {
    "65537549": "azure_unreachable",  # the AKV Key Management Service is unreachable from one
    # or more nodes
    "65537551": "kek_unavailable",  # top-level internal key protection key (KEK) unavailable
    # on one or more nodes
    "65537552": "ekmip_unreachable",  # embedded KMIP server status not available
}


class MalformedRecord(ValueError):
    """A record this module cannot use at all (not an object, no uuid)."""


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


def _boolean(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return None


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _name_of(value: Any) -> str:
    return _text(value.get("name")) if isinstance(value, Mapping) else ""


def _uuid_of(value: Any) -> str:
    return _text(value.get("uuid")) if isinstance(value, Mapping) else ""


def parse_check(value: Any, *flags: str) -> Check | None:
    """Return the check in ``value`` using the first boolean among ``flags``; None when unknown."""
    if not isinstance(value, Mapping):
        return None
    for flag in flags:
        ok = _boolean(value.get(flag))
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
        ok = _boolean(entry.get("reachable"))
        node = _name_of(entry.get("node")) or _uuid_of(entry.get("node"))
        if ok is None or not node:
            continue
        checks.append(
            NodeCheck(
                node=node,
                node_uuid=_uuid_of(entry.get("node")),
                ok=ok,
                code=normalize_code(entry.get("code")),
                message=fold_message(entry.get("message")),
            )
        )
    return tuple(sorted(checks, key=lambda c: c.node))


def release_of(version: str) -> tuple[int, int] | None:
    """Return (major, minor) of an ONTAP release such as "9.13.1", None when it says none."""
    match = _RELEASE.match(version.strip()) if isinstance(version, str) else None
    return (int(match[1]), int(match[2])) if match else None


def fields_query(release: tuple[int, int] | None) -> str:
    """Return the `fields` query for a release: only the fields it has; all when it is unknown.

    ONTAP answers a `fields` entry it does not know with error 262197, so a 9.12 cluster asked
    for 9.14's `enabled` would refuse the whole request.
    """
    if release is None:
        return FIELDS_QUERY
    known = (f for f in ORDINARY_FIELDS if INTRODUCED.get(f, (9, 8)) <= release)
    return ",".join(ADVANCED_FIELDS + tuple(known))


def infer_enabled(record: Mapping, release: tuple[int, int] | None) -> bool | None:
    """Return whether a configuration is active, as ONTAP means it; None when nothing says.

    ``enabled`` when ONTAP sent it. Otherwise active when ONTAP returned any of the advanced
    fields (it computes them only for the active configuration), or when the release predates
    9.14, where a scope holds exactly one configuration and it is always in use.
    """
    sent = _boolean(record.get("enabled"))
    if sent is not None:
        return sent
    if any(isinstance(record.get(name), (Mapping, list)) for name in ADVANCED_FIELDS):
        return True
    if release is not None and release < ENABLED_INTRODUCED:
        return True
    return None


def parse_record(record: Any, release: tuple[int, int] | None = None) -> AkvStatus:
    """Return the status of one azure-key-vaults record; MalformedRecord if it has no identity.

    ``release`` is the cluster's (major, minor) from GET /api/cluster, used only where a record
    lacks ``enabled``.
    """
    if not isinstance(record, Mapping):
        raise MalformedRecord(f"record is a {type(record).__name__}, not an object")
    uuid = record.get("uuid")
    if not isinstance(uuid, str) or not uuid:
        raise MalformedRecord("record has no uuid")
    svm = record.get("svm")
    scope = _text(record.get("scope")) or ("svm" if _name_of(svm) else "cluster")
    return AkvStatus(
        uuid=uuid,
        svm=_name_of(svm) if scope != "cluster" else "",
        svm_uuid=_uuid_of(svm) if scope != "cluster" else "",
        scope=scope,
        enabled=infer_enabled(record, release),
        configuration=_name_of(record.get("configuration")),
        vault=_text(record.get("name")),
        key_id=_text(record.get("key_id")),
        client_id=_text(record.get("client_id")),
        tenant_id=_text(record.get("tenant_id")),
        authentication_method=_text(record.get("authentication_method")),
        azure=parse_check(record.get("azure_reachability"), "reachable"),
        kek=parse_check(record.get("state"), "available", "cluster_state"),
        ekmip=parse_ekmip(record.get("ekmip_reachability")),
    )


def parse_records(records: Iterable[Any], release: tuple[int, int] | None = None) -> ParsedRecords:
    """Return every usable configuration in ``records``; the unusable ones are listed as skipped."""
    akvs: dict[str, AkvStatus] = {}
    skipped: list[str] = []
    for index, record in enumerate(records):
        try:
            status = parse_record(record, release)
        except MalformedRecord as error:
            skipped.append(f"record {index}: {error}")
            continue
        if status.uuid in akvs:
            skipped.append(f"record {index}: duplicate uuid {status.uuid}")
            continue
        akvs[status.uuid] = status
    ordered = sorted(akvs.values(), key=lambda a: (a.svm, a.uuid))
    return ParsedRecords(tuple(ordered), tuple(skipped))
