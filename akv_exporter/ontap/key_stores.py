"""ONTAP's key-stores endpoint: every key store of the cluster, its type and (9.16.1+) state.

NetApp's REST reference (``/api/security/key-stores``, 9.10 on;
``netapp_ontap/resources/security_keystore.py``): one record per key store of an SVM or the
cluster, with its ``type`` (``okm``, ``kmip``, ``akv``, ``gcp``, ``aws``, ``ikp``, ``barbican``)
and ``location`` (``onboard`` or ``external``); ``scope``, ``configuration`` and ``enabled`` from
9.14 and ``state`` (``active``, ``mixed``, ``svm_kek_rekey``, ``blocked``, ``switching``,
``initializing``, ``disabling``) from 9.16. The types tell the poller which key-manager
endpoints a cluster has something behind (``kinds``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from akv_exporter.ontap.cluster import Release
from akv_exporter.ontap.key_manager_endpoint import boolean, name_of, text, uuid_of

PATH = "/api/security/key-stores"
INTRODUCED: Release = (9, 10)
FIELDS_BY_RELEASE: tuple[tuple[str, Release], ...] = (
    ("uuid", (9, 10)),
    ("svm", (9, 10)),
    ("type", (9, 10)),
    ("location", (9, 10)),
    ("scope", (9, 14)),
    ("configuration", (9, 14)),
    ("enabled", (9, 14)),
    ("state", (9, 16)),
)
# ONTAP's `state` that means the key store cannot be used: NetApp's 9.16.1+ enum.
BLOCKED = "blocked"


@dataclass(frozen=True, slots=True)
class KeyStore:
    """One key store as ONTAP listed it; "" / None: ONTAP did not say (an older release)."""

    uuid: str
    svm: str  # "" for the cluster's
    type: str  # ONTAP's key-manager key: akv, gcp, aws, barbican, kmip, okm, ikp
    location: str
    configuration: str
    enabled: bool | None
    state: str  # "" before 9.16


def fields_query(release: Release | None) -> str:
    """Return the fields the release has, by name; an unknown release: those of 9.10."""
    known = release if release is not None else INTRODUCED
    return ",".join(name for name, since in FIELDS_BY_RELEASE if since <= known)


def parse_key_stores(records: Iterable[Any]) -> tuple[KeyStore, ...]:
    """Return every record with a uuid and a type, sorted by SVM, type and uuid."""
    found = []
    for record in records:
        if not isinstance(record, Mapping):
            continue
        uuid, kind = text(record.get("uuid")), text(record.get("type"))
        if not uuid or not kind:
            continue
        svm = record.get("svm")
        scope = text(record.get("scope"))
        found.append(
            KeyStore(
                uuid=uuid,
                svm="" if scope == "cluster" else name_of(svm) or uuid_of(svm),
                type=kind,
                location=text(record.get("location")),
                configuration=name_of(record.get("configuration")),
                enabled=boolean(record.get("enabled")),
                state=text(record.get("state")),
            )
        )
    return tuple(sorted(found, key=lambda k: (k.svm, k.type, k.uuid)))


def kinds(stores: Iterable[KeyStore]) -> frozenset[str]:
    """Return the key-manager types the key stores name (enabled or not)."""
    return frozenset(store.type for store in stores)
