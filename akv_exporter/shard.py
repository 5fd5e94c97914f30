"""Sharding: which configured clusters this process polls (the kube-state-metrics convention).

A cluster belongs to shard ``hashmod(key, total)``, where ``key`` is its configured name, else its
address (``ClusterConfig.key``). The hash is Prometheus' own ``hashmod`` relabelling action: the
last 8 bytes of the key's MD5, big-endian, modulo the number of shards. MD5 of UTF-8 bytes is
the same in every process and every Python release (unlike ``hash()``, salted per process), and
being Prometheus' hash it lets a ``/probe`` scrape job route each target to the shard that owns
it with one ``hashmod`` relabelling (docs/scaling.md).
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from dataclasses import dataclass

from akv_exporter.config import ClusterConfig, Config

_ORDINAL = re.compile(r"-(\d+)$")


def hashmod(key: str, modulus: int) -> int:
    """Return Prometheus' ``hashmod``: ``key``'s MD5, last 8 bytes big-endian, mod ``modulus``."""
    digest = hashlib.md5(key.encode("utf-8"), usedforsecurity=False).digest()
    return int.from_bytes(digest[8:], "big") % modulus


def ordinal_from_hostname(hostname: str) -> int:
    """Return the trailing ``-<ordinal>`` of a StatefulSet pod's host name (``akv-exporter-2``: 2).

    ValueError naming the host name when it has none.
    """
    # A pod's host name is its name; a fully qualified one carries the Service's domain after it.
    match = _ORDINAL.search(hostname.split(".", 1)[0])
    if match is None:
        raise ValueError(
            f"host name {hostname!r} does not end in -<ordinal> (a StatefulSet pod such as "
            "akv-exporter-2); give --shard instead"
        )
    return int(match.group(1))


@dataclass(frozen=True, slots=True)
class Shard:
    """The slice of the configured clusters one process polls: shard ``ordinal`` of ``total``."""

    ordinal: int = 0
    total: int = 1

    def __post_init__(self) -> None:
        if self.total < 1:
            raise ValueError(f"--total-shards must be at least 1, not {self.total}")
        if not 0 <= self.ordinal < self.total:
            raise ValueError(
                f"shard {self.ordinal} is outside 0..{self.total - 1} (--total-shards {self.total})"
            )

    @property
    def sharded(self) -> bool:
        return self.total > 1

    def __str__(self) -> str:
        return f"shard {self.ordinal} of {self.total}"

    def of(self, cluster: ClusterConfig) -> int:
        """Return the ordinal of the shard that polls ``cluster``."""
        return hashmod(cluster.key, self.total) if self.sharded else 0

    def owns(self, cluster: ClusterConfig) -> bool:
        return self.of(cluster) == self.ordinal

    def select(self, config: Config) -> Config:
        """Return ``config`` with only this shard's clusters (the file's order kept).

        The state file gets the shard in its name: shards started from one file on one host
        would otherwise overwrite each other's unreachable streaks.
        """
        if not self.sharded:
            return config
        mine = tuple(cluster for cluster in config.clusters if self.owns(cluster))
        path = config.state_file
        state_file = path.with_name(
            f"{path.stem}.shard-{self.ordinal}-of-{self.total}{path.suffix}"
        )
        return dataclasses.replace(config, clusters=mine, state_file=state_file)


UNSHARDED = Shard()
