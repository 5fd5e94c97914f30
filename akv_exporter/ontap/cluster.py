"""GET /api/cluster -> the cluster's identity: its name, uuid and release.

ONTAP's own types live on one floor: this module and ``ontap.akv`` turn ONTAP's answers into
typed values; ``snapshot`` and everything above only read them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

CLUSTER_PATH = "/api/cluster"
_RELEASE = re.compile(r"(\d+)\.(\d+)")
# An ONTAP release as (major, minor): what decides which endpoints and fields a cluster has.
Release = tuple[int, int]
CLUSTER_FIELDS = "name,uuid,version"


@dataclass(frozen=True, slots=True)
class ClusterIdentity:
    """What GET /api/cluster says about the cluster."""

    name: str
    uuid: str
    version: str  # "9.12.1"
    version_full: str  # "NetApp Release 9.12.1: ..."


def parse_identity(body: Any) -> ClusterIdentity | None:
    """Return the identity in a GET /api/cluster answer; None when it names no cluster."""
    if not isinstance(body, Mapping) or not isinstance(body.get("name"), str):
        return None
    version = body.get("version") if isinstance(body.get("version"), Mapping) else {}
    numbers = [version.get(k) for k in ("generation", "major", "minor")]
    release = ".".join(str(n) for n in numbers if isinstance(n, int))
    full = version.get("full") if isinstance(version.get("full"), str) else ""
    uuid = body.get("uuid") if isinstance(body.get("uuid"), str) else ""
    return ClusterIdentity(name=body["name"], uuid=uuid, version=release, version_full=full)


def release_of(version: str) -> Release | None:
    """Return (major, minor) of an ONTAP release such as "9.13.1", None when it says none."""
    match = _RELEASE.match(version.strip()) if isinstance(version, str) else None
    return (int(match[1]), int(match[2])) if match else None
