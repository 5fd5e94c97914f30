"""The pre-rendered /metrics body, kept per cluster and family: the exposition's cache.

Each cluster's samples are rendered once, when its snapshot changes, into one byte string per
metric family. A scrape sends every cluster's samples of a family, joined (cached until one of
them changes), under the family's HELP/TYPE lines, family after family, so serving ``/metrics``
never waits on ONTAP and costs little more than sending bytes. A cluster that leaves the
configuration leaves the output with it.
"""

from __future__ import annotations

import functools
import platform
import zlib

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client import generate_latest as generate_text
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

from akv_exporter import __version__
from akv_exporter.metrics.catalogue import (
    BUILD_INFO,
    CLUSTER_FAMILIES,
    GLOBAL_FAMILIES,
    RELOAD_OK,
    RELOAD_TIME,
    SHARD_ORDINAL,
    STATE_WRITE_ERRORS,
    TOTAL_SHARDS,
    Family,
)
from akv_exporter.metrics.render import (
    Labels,
    Samples,
    assemble,
    cluster_labels,
    render_key_managers,
    render_poll,
    render_settled,
    settled_source,
)
from akv_exporter.snapshot import ClusterSnapshot


def _process_registry() -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


@functools.cache
def _header(family: Family, openmetrics: bool) -> bytes:
    return family.header(openmetrics)


def _gzip_member(*chunks: bytes) -> bytes:
    """Return ``chunks`` as one gzip member (header and trailer included), compressed quickly.

    Fed to zlib in turn, not joined first: a family's samples run to megabytes at 5,000
    clusters.
    """
    compressor = zlib.compressobj(1, zlib.DEFLATED, 31)  # 31: gzip framing, mtime 0
    return b"".join([*(compressor.compress(chunk) for chunk in chunks), compressor.flush()])


class Exposition:
    """The pre-rendered /metrics body, updated one cluster at a time.

    At fleet scale a scrape must not cost what the fleet's size costs. Each family keeps every
    cluster's samples of it (in the order clusters were first published) and their join, made
    again only after a cluster's samples of that family changed; gzip-compressed, each family is
    a gzip member of its own, compressed again on the same condition. Between two polls of a
    cluster only its poll time, duration and request counters change, so a scrape re-joins and
    re-compresses those few families and reuses the rest, most of the bytes. The body goes out
    as those parts (``parts``), never copied into one string first.
    """

    def __init__(self, *, process_metrics: bool = True):
        # cluster key -> family -> its samples; in the order clusters were first published.
        self._fragments: dict[str, dict[str, bytes]] = {}
        # family -> cluster key -> samples: what a family's join is made of.
        self._families: dict[str, dict[str, bytes]] = {f.name: {} for f in CLUSTER_FAMILIES}
        self._position: dict[str, int] = {}  # cluster key -> its place in _fragments
        self._published = 0
        self._unordered: set[str] = set()  # families whose clusters are out of that order
        self._joined: dict[str, bytes] = {}  # family -> every cluster's samples, in order
        self._members: dict[tuple[str, bool], tuple[bytes, bytes]] = {}  # -> (join, member)
        # A cluster's rendered key-manager samples and what they were rendered from: polls that
        # bring the same records (most polls) do not render them again.
        self._key_manager_samples: dict[str, tuple[tuple, dict[str, bytes]]] = {}
        # The same for the cluster's own samples most polls leave as they were (render_settled).
        self._settled_samples: dict[str, tuple[tuple, dict[str, bytes]]] = {}
        # A cluster's series names from earlier polls, while its own labels stay the same.
        self._prefixes: dict[str, tuple[Labels, dict[tuple[str, Labels], str]]] = {}
        self._generation = 0
        self._cache: dict[bool, tuple[int, bytes]] = {}  # openmetrics -> (generation, body())
        self._process = _process_registry() if process_metrics else None
        self._global_lines: dict[str, bytes] = {}
        self._global_members: dict[bool, tuple[bytes, bytes]] = {}
        self._last_reload_success: float | None = None
        self._shard = (0, 1)
        self._state_write_errors = 0
        self.set_reload(successful=True, timestamp=None)

    def update(self, key: str, snapshot: ClusterSnapshot) -> None:
        """Re-render one cluster's samples from its new snapshot."""
        fragment = self._render(key, snapshot)
        previous = self._fragments.get(key)
        if previous is None:
            previous = {}
            self._position[key] = self._published
            self._published += 1
        self._fragments[key] = fragment
        changed = False
        for name, samples in fragment.items():
            old = previous.get(name)
            if old is not None and old == samples:
                continue
            family = self._families.setdefault(name, {})
            if old is None and family:
                last = next(reversed(family))
                if self._position[last] > self._position[key]:
                    self._unordered.add(name)  # joined in publishing order again when next asked
            family[key] = samples
            self._joined.pop(name, None)
            changed = True
        for name in previous.keys() - fragment.keys():
            del self._families[name][key]
            self._joined.pop(name, None)
            changed = True
        if changed:
            self._generation += 1

    def _render(self, key: str, snapshot: ClusterSnapshot) -> dict[str, bytes]:
        if snapshot.last is None:
            self._forget(key)
            return {}
        base = cluster_labels(snapshot)
        known = self._prefixes.get(key)
        if known is None or known[0] != base:
            known = self._prefixes[key] = (base, {})
            self._key_manager_samples.pop(key, None)  # rendered with other cluster labels
            self._settled_samples.pop(key, None)
        prefixes = known[1]
        source = (snapshot.key_managers, snapshot.unreachable_since)
        settled = settled_source(snapshot)
        # Tuples compare their items by identity first: the same records cost next to nothing.
        # Equal records parsed anew (a first poll's fields=**, then the release's) are kept as
        # the source, so that from the next poll on they compare by identity too.
        cached = self._key_manager_samples.get(key)
        samples = cached[1] if cached is not None and cached[0] == source else None
        if samples is None:
            samples = render_key_managers(snapshot)
        self._key_manager_samples[key] = (source, samples)
        cached = self._settled_samples.get(key)
        state = cached[1] if cached is not None and cached[0] == settled else None
        if state is None:
            state = render_settled(snapshot, prefixes)
        self._settled_samples[key] = (settled, state)
        return {**samples, **state, **render_poll(snapshot, prefixes)}

    def _forget(self, key: str) -> None:
        """Forget what a cluster's samples were rendered from."""
        self._key_manager_samples.pop(key, None)
        self._settled_samples.pop(key, None)
        self._prefixes.pop(key, None)

    def remove(self, key: str) -> None:
        """Drop a cluster that is no longer configured."""
        self._forget(key)
        self._position.pop(key, None)
        previous = self._fragments.pop(key, None)
        if previous is not None:
            for name in previous:
                del self._families[name][key]
                self._joined.pop(name, None)
            self._generation += 1

    def set_shard(self, ordinal: int, total: int) -> None:
        """Record the shard this process polls (akv_exporter_shard_ordinal, _total_shards)."""
        self._shard = (ordinal, total)
        self.set_reload(successful=self._reload_ok, timestamp=None)

    def set_reload(self, *, successful: bool, timestamp: float | None) -> None:
        """Record the outcome of the last configuration (re)load; a failure keeps the old time."""
        if timestamp is not None:
            self._last_reload_success = timestamp
        self._reload_ok = successful
        self._render_globals()

    def set_state_write_errors(self, count: int) -> None:
        """Record how many writes of the state file have failed since start."""
        self._state_write_errors = count
        self._render_globals()

    def _render_globals(self) -> None:
        samples = Samples(())
        samples.add(RELOAD_OK, (), self._reload_ok)
        if self._last_reload_success is not None:
            samples.add(RELOAD_TIME, (), self._last_reload_success)
        samples.add(
            BUILD_INFO,
            (("version", __version__), ("python_version", platform.python_version())),
            1,
        )
        samples.add(SHARD_ORDINAL, (), self._shard[0])
        samples.add(TOTAL_SHARDS, (), self._shard[1])
        samples.add(STATE_WRITE_ERRORS, (), self._state_write_errors)
        self._global_lines = samples.encoded()
        self._global_members.clear()
        self._generation += 1

    def _samples_of(self, name: str) -> bytes:
        """Return every cluster's samples of one family, joined again only after a change."""
        joined = self._joined.get(name)
        if joined is None:
            family = self._families[name]
            if name in self._unordered:
                self._unordered.discard(name)
                family = self._families[name] = {
                    k: family[k] for k in self._fragments if k in family
                }
            joined = self._joined[name] = b"".join(family.values())
        return joined

    def _member(self, family: Family, samples: bytes, openmetrics: bool) -> bytes:
        """Return the family's header and samples as a gzip member, compressed once per join."""
        known = self._members.get((family.name, openmetrics))
        if known is None or known[0] is not samples:
            member = _gzip_member(_header(family, openmetrics), samples)
            known = self._members[(family.name, openmetrics)] = (samples, member)
        return known[1]

    def _parts(self, openmetrics: bool, gzipped: bool) -> list[bytes]:
        """Return the cluster and exporter samples as parts of a body (gzip members if asked)."""
        parts: list[bytes] = []
        for family in CLUSTER_FAMILIES:
            samples = self._samples_of(family.name)
            if not samples:
                continue
            if gzipped:
                parts.append(self._member(family, samples, openmetrics))
            else:
                parts += (_header(family, openmetrics), samples)
        exporter = b"".join(assemble(GLOBAL_FAMILIES, [self._global_lines], openmetrics))
        if gzipped:
            known = self._global_members.get(openmetrics)
            if known is None:
                known = self._global_members[openmetrics] = (exporter, _gzip_member(exporter))
            exporter = known[1]
        parts.append(exporter)
        return parts

    def body(self, *, openmetrics: bool = False, gzipped: bool = False) -> bytes:
        """Return the pre-rendered cluster and exporter samples as one string (until a change).

        Gzipped, it is a concatenation of gzip members (one valid gzip stream), one per family.
        """
        if gzipped:
            return b"".join(self._parts(openmetrics, gzipped=True))
        cached = self._cache.get(openmetrics)
        if cached is None or cached[0] != self._generation:
            cached = self._cache[openmetrics] = (
                self._generation,
                b"".join(self._parts(openmetrics, gzipped=False)),
            )
        return cached[1]

    def parts(self, *, openmetrics: bool = False, gzipped: bool = False) -> list[bytes]:
        """Return a whole /metrics body in parts: the cached samples, then the live process
        metrics. Sent one after the other, they are the body; nothing is copied to join them.

        Gzipped, every part is a gzip member: a concatenation of members is one valid gzip
        stream (RFC 1952), which Prometheus, curl and browsers read whole.
        """
        if self._process is None:
            tail = b"# EOF\n" if openmetrics else b""
        elif openmetrics:
            tail = generate_openmetrics(self._process)
        else:
            tail = generate_text(self._process)
        parts = self._parts(openmetrics, gzipped)
        if tail:
            parts.append(_gzip_member(tail) if gzipped else tail)
        return parts

    def scrape(self, *, openmetrics: bool = False, gzipped: bool = False) -> bytes:
        """Return a whole /metrics body as one string (``parts`` joined)."""
        return b"".join(self.parts(openmetrics=openmetrics, gzipped=gzipped))
