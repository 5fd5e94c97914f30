"""GET /api/storage/volumes (encrypted ones only) -> encrypted volumes per SVM and state.

ONTAP filters on its side (``encryption.enabled=true``) and sends only the two fields counted,
so a cluster with thousands of volumes answers in a few pages. ``state`` is one of ONTAP's
volume states (online, offline, restricted, mixed, error); a volume ONTAP took offline for lack
of its key manager shows ``offline``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from akv_exporter.ontap.key_manager_endpoint import name_of

PATH = "/api/storage/volumes"
PARAMS = {"encryption.enabled": "true", "fields": "svm.name,state,encryption.enabled"}
UNKNOWN_STATE = "unknown"  # a volume whose state ONTAP did not send


@dataclass(frozen=True, slots=True)
class VolumeCount:
    """How many encrypted volumes one SVM has in one state."""

    svm: str
    state: str
    count: int


@dataclass(frozen=True, slots=True)
class EncryptedVolumes:
    """The encrypted volumes of one cluster, counted per SVM and state (sorted)."""

    counts: tuple[VolumeCount, ...]
    skipped: int = 0  # records without an SVM name

    def svms(self) -> tuple[str, ...]:
        return tuple(sorted({c.svm for c in self.counts}))

    def total(self, svm: str | None = None, state: str | None = None) -> int:
        """Return the count, optionally of one SVM and/or one state."""
        return sum(
            c.count
            for c in self.counts
            if (svm is None or c.svm == svm) and (state is None or c.state == state)
        )


def parse_volumes(records: Iterable[Any]) -> EncryptedVolumes:
    """Return the per-SVM, per-state counts of the encrypted volumes among ``records``."""
    counts: Counter[tuple[str, str]] = Counter()
    skipped = 0
    for record in records:
        if not isinstance(record, Mapping):
            skipped += 1
            continue
        encryption = record.get("encryption")
        if isinstance(encryption, Mapping) and encryption.get("enabled") is False:
            continue  # a server that ignored the filter: not ours to count
        name = name_of(record.get("svm"))
        if not name:
            skipped += 1
            continue
        state = record.get("state")
        counts[(name, state if isinstance(state, str) and state else UNKNOWN_STATE)] += 1
    return EncryptedVolumes(
        counts=tuple(VolumeCount(svm, state, n) for (svm, state), n in sorted(counts.items())),
        skipped=skipped,
    )
