"""GET /api/storage/volumes: each SVM's volumes, how many are encrypted, which are offline.

A cluster holds, per SVM, only three numbers (``SvmVolumes``): volumes, encrypted ones, offline
encrypted ones. The records are derived from them on request (names, uuids from hashes), so a
thousand clusters with thousands of volumes cost nothing until a client asks; a small cache
keeps the last few clusters' records. Fields follow NetApp's ``Volume`` schema: ``state``
(online, offline, ...), ``encryption.enabled``, ``encryption.type`` (``volume`` = NVE, ``none``),
``encryption.state`` (``encrypted``, ``unencrypted``).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import random
from collections.abc import Iterable, Mapping
from typing import Any

from ontap_simulator.ems import EventLog
from ontap_simulator.model import (
    PATCH_EXTENSIONS,
    ClusterState,
    StateError,
    check_keys,
    parse_int,
)
from ontap_simulator.query import Kind, answer_collection, answer_instance
from ontap_simulator.records import LINKS, REF, Tree, links
from ontap_simulator.verdict import SvmVolumes

PATH = "/api/storage/volumes"
PATCH_KEY = "volumes"
TREE: Tree = {
    "_links": LINKS,
    "uuid": None,
    "name": None,
    "svm": REF,
    "state": None,
    "style": None,
    "type": None,
    "encryption": {"enabled": None, "type": None, "state": None},
}
KIND = Kind(TREE, default_fields=("uuid", "name"))

# SVMs without a key manager of their own; a cluster-scoped AKV configuration covers them.
OTHER_SVMS = ("svm_web", "svm_home", "svm_archive", "svm_scratch")
# One cluster in this many has an SVM with hundreds to thousands of volumes.
LARGE_ONE_IN = 25
# The simulator's own bound, so that one patch cannot make a cluster's answers huge.
MAX_PER_SVM = 50_000


def hashed_uuid(text: str) -> str:
    """Return a stable uuid shaped like ONTAP's, derived from ``text``."""
    digest = hashlib.sha256(text.encode()).hexdigest()
    return (
        f"{digest[:8]}-{digest[8:12]}-11{'abcdef'[int(digest[12], 16) % 6]}"
        f"{int(digest[13], 16) % 10}-{0x8000 | int(digest[14:18], 16) & 0x3FFF:04x}"
        f"-00a098{digest[18:24]}"
    )


def volume_name(svm: str, index: int) -> str:
    """Return the name of volume ``index`` (from 0) of an SVM: ``nfs_vol0001``..."""
    return f"{svm.removeprefix('svm_') or svm}_vol{index + 1:04d}"


@functools.lru_cache(maxsize=64)
def _svm_records(cluster_uuid: str, volumes: SvmVolumes) -> tuple[dict[str, Any], ...]:
    svm = {
        "name": volumes.svm,
        "uuid": volumes.svm_uuid,
        "_links": links(f"/api/svm/svms/{volumes.svm_uuid}"),
    }
    records = []
    for index in range(volumes.count):
        uuid = hashed_uuid(f"{cluster_uuid}/{volumes.svm_uuid}/{index}")
        encrypted = index < volumes.encrypted
        records.append(
            {
                "uuid": uuid,
                "name": volume_name(volumes.svm, index),
                "svm": svm,
                "state": "offline" if index < volumes.offline else "online",
                "style": "flexvol",
                "type": "rw",
                "encryption": {
                    "enabled": encrypted,
                    "type": "volume" if encrypted else "none",
                    "state": "encrypted" if encrypted else "unencrypted",
                },
                "_links": links(f"{PATH}/{uuid}"),
            }
        )
    return tuple(records)


@functools.lru_cache(maxsize=16)
def _records(
    cluster_uuid: str, volumes: tuple[SvmVolumes, ...]
) -> tuple[tuple[dict[str, Any], ...], dict[str, dict[str, Any]]]:
    # Collections come in uuid order, which `start.uuid` paging relies on.
    records = sorted(
        (record for svm in volumes for record in _svm_records(cluster_uuid, svm)),
        key=lambda record: record["uuid"],
    )
    return tuple(records), {record["uuid"]: record for record in records}


def records_of(state: ClusterState) -> tuple[dict[str, Any], ...]:
    """Return every volume record of the cluster, in uuid order."""
    return _records(state.uuid, state.volumes)[0]


def answer(
    state: ClusterState, events: EventLog, path: str, params: list[tuple[str, str]]
) -> dict[str, Any]:
    """Return the collection GET answer."""
    return answer_collection(
        records_of(state), KIND, path, params, empty_first_page=state.faults.empty_pages
    )


def answer_one(
    state: ClusterState, events: EventLog, path: str, params: list[tuple[str, str]]
) -> dict[str, Any]:
    """Return the instance GET answer for ``/api/storage/volumes/{uuid}``."""
    record = _records(state.uuid, state.volumes)[1].get(path.rsplit("/", 1)[-1])
    return answer_instance(record, KIND, params)


ENDPOINTS = ((PATH, answer), (PATH + "/{uuid}", answer_one))


def describe(state: ClusterState) -> dict[str, Any]:
    """Return the volumes per SVM as the control API shows them."""
    return {
        v.svm: {"count": v.count, "encrypted": v.encrypted, "offline": v.offline}
        for v in state.volumes
    }


# --- what the health monitor changes ---------------------------------------------------------


def covered_svms(state: ClusterState, svm: str) -> tuple[str, ...]:
    """Return the SVMs whose volume keys a configuration of ``svm`` ("" = cluster scope) holds.

    An SVM-scoped configuration: its SVM. The cluster-scoped one: every SVM without an active
    configuration of its own (of any key manager).
    """
    if svm:
        return (svm,)
    own = state.svms_with_own_key_manager()
    return tuple(v.svm for v in state.volumes if v.svm not in own)


def with_offline(state: ClusterState, svms: Iterable[str], offline: bool) -> ClusterState:
    """Return the cluster with the encrypted volumes of ``svms`` all offline, or all online."""
    names = set(svms)
    volumes = tuple(
        dataclasses.replace(v, offline=v.encrypted if offline else 0) if v.svm in names else v
        for v in state.volumes
    )
    return dataclasses.replace(state, volumes=volumes)


def encrypted_in(state: ClusterState, svms: Iterable[str]) -> int:
    """Return how many encrypted volumes ``svms`` hold."""
    names = set(svms)
    return sum(v.encrypted for v in state.volumes if v.svm in names)


# --- control API and scenario files ----------------------------------------------------------


def _count(value: Any, key: str) -> int:
    return parse_int(value, 0, MAX_PER_SVM, key)


def _merge_one(current: SvmVolumes, patch: Any, key: str) -> SvmVolumes:
    if not isinstance(patch, Mapping):
        raise StateError(key, "expected a mapping with count, encrypted, offline")
    check_keys(patch, ("count", "encrypted", "offline"), key)
    count = _count(patch["count"], f"{key}.count") if "count" in patch else current.count
    if "encrypted" in patch:
        encrypted = _count(patch["encrypted"], f"{key}.encrypted")
        if encrypted > count:
            raise StateError(f"{key}.encrypted", f"{encrypted} is more than count ({count})")
    else:  # fewer volumes: the encrypted ones shrink with them
        encrypted = min(current.encrypted, count)
    offline_value = patch.get("offline", current.offline)
    if isinstance(offline_value, bool):
        offline = encrypted if offline_value else 0
    elif "offline" in patch:
        offline = _count(offline_value, f"{key}.offline")
        if offline > encrypted:
            raise StateError(
                f"{key}.offline", f"{offline} is more than the encrypted volumes ({encrypted})"
            )
    else:
        offline = min(current.offline, encrypted)
    return dataclasses.replace(current, count=count, encrypted=encrypted, offline=offline)


def merge(state: ClusterState, patch: Any) -> ClusterState:
    """Return the cluster with a ``volumes`` patch (``{"<svm>" or "*": {...}}``) merged."""
    if not isinstance(patch, Mapping):
        raise StateError(PATCH_KEY, "expected a mapping of SVM name to volumes")
    volumes = {v.svm: v for v in state.volumes}
    for name in sorted(patch, key=lambda n: n != "*"):
        key = f"{PATCH_KEY}.{name}"
        if name == "*":
            for svm in volumes:
                volumes[svm] = _merge_one(volumes[svm], patch[name], key)
            continue
        if not isinstance(name, str) or not name:
            raise StateError(key, "expected an SVM name")
        current = volumes.get(name) or SvmVolumes(
            name, _svm_uuid(state, name), count=0, encrypted=0
        )
        volumes[name] = _merge_one(current, patch[name], key)
    return dataclasses.replace(state, volumes=tuple(volumes.values()))


PATCH_EXTENSIONS[PATCH_KEY] = merge


def _svm_uuid(state: ClusterState, svm: str) -> str:
    # An SVM with an AKV configuration keeps that configuration's SVM uuid.
    known = next((a.svm_uuid for a in state.akvs if a.svm_name == svm and a.svm_uuid), None)
    return known or hashed_uuid(f"{state.uuid}/svm/{svm}")


def generate(seed_text: str, state: ClusterState) -> tuple[SvmVolumes, ...]:
    """Return plausible volumes for the cluster's SVMs, the same for the same ``seed_text``.

    Every SVM with an AKV configuration has a handful to 40 volumes, mostly encrypted; one
    cluster in 25 has one such SVM with 500 to 3000. Some SVMs without a key manager of their
    own are added: encrypted (by the cluster-scoped configuration) only where there is one.
    """
    rng = random.Random(f"akv-sim:volumes:{seed_text}")
    svms = list(dict.fromkeys(a.svm_name for a in state.akvs if a.svm_name))
    cluster_scoped = any(not a.svm_name for a in state.akvs)
    large = rng.randrange(len(svms)) if svms and rng.randrange(LARGE_ONE_IN) == 0 else -1
    volumes = []
    for index, svm in enumerate(svms):
        count = rng.randint(500, 3000) if index == large else rng.randint(3, 40)
        encrypted = count - rng.randint(0, count // 5)
        volumes.append(SvmVolumes(svm, _svm_uuid(state, svm), count, encrypted))
    for svm in rng.sample(OTHER_SVMS, rng.randint(0, 2)):
        count = rng.randint(2, 20)
        encrypted = count - rng.randint(0, count // 4) if cluster_scoped else 0
        volumes.append(SvmVolumes(svm, _svm_uuid(state, svm), count, encrypted))
    return tuple(volumes)


def with_other_key_managers(seed_text: str, state: ClusterState) -> ClusterState:
    """Return the cluster with volumes for each SVM of a GCP, AWS, Barbican or KMIP
    configuration that has none yet: 3 to 40, most encrypted (as ``generate`` does for AKV).

    A generator of its own, so that the volumes of AKV-only clusters stay as they were.
    """
    rng = random.Random(f"akv-sim:volumes:others:{seed_text}")
    have = {v.svm for v in state.volumes}
    svms = [(c.svm_name, c.svm_uuid) for c in state.cloud_kms if c.svm_name]
    svms += [(m.svm_name, m.svm_uuid) for m in state.key_managers if m.svm_name]
    added = []
    for svm, svm_uuid in dict(svms).items():
        if svm in have:
            continue
        count = rng.randint(3, 40)
        encrypted = count - rng.randint(0, count // 5)
        added.append(SvmVolumes(svm, svm_uuid or _svm_uuid(state, svm), count, encrypted))
    if not added:
        return state
    return dataclasses.replace(state, volumes=(*state.volumes, *added))
