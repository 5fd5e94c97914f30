"""Polls every configured cluster on its own schedule and publishes an immutable snapshot per poll.

Each cluster runs in its own task: a slow, hung or broken cluster only ever waits on itself. A
global semaphore caps how many clusters are polled at once, a per-cluster timeout bounds each
poll, and consecutive failures back off exponentially (with jitter) up to ``poll.max_backoff``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace

from akv_exporter.blast_radius import BlastRadiusPoller
from akv_exporter.config import ClusterConfig, Config, PollConfig
from akv_exporter.ontap.answers import OntapError
from akv_exporter.ontap.client import USER_AGENT, OntapClient
from akv_exporter.ontap.key_manager_endpoint import KeyManagerStatus, ParsedRecords
from akv_exporter.ontap.key_manager_reader import KeyManagerReader
from akv_exporter.ontap.key_manager_registry import BY_KIND
from akv_exporter.ontap.key_servers import streak_key
from akv_exporter.snapshot import ClusterSnapshot, PollOutcome
from akv_exporter.state_changes import log_changes
from akv_exporter.unreachable_streaks import UnreachableSince

log = logging.getLogger(__name__)
_NAMED_IN_WARNING = 5  # clusters named in a warning about many

Publish = Callable[[str, ClusterSnapshot], None]
Retire = Callable[[str], None]


@dataclass(eq=False)
class _Cluster:
    """The poller's private, mutable state for one configured cluster."""

    config: ClusterConfig
    client: OntapClient
    snapshot: ClusterSnapshot
    radius: BlastRadiusPoller
    reader: KeyManagerReader  # reads through ``client``; keeps the identity and last parses
    errors: Counter[str] = field(default_factory=Counter)
    failures: int = 0
    skipped: int = 0  # malformed records skipped, cumulative
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    task: asyncio.Task | None = None
    # The poll that /probe and the schedule share; when the last one ended (monotonic loop time).
    shared: asyncio.Task | None = None
    completed_at: float | None = None
    not_before: float = 0.0  # loop time before which ONTAP asked not to be asked (Retry-After)


@dataclass(frozen=True, slots=True)
class Refreshed:
    """A cluster's snapshot for /probe or the schedule, and whether it is an earlier poll's."""

    snapshot: ClusterSnapshot
    cached: bool


def _forget(entry: _Cluster, task: asyncio.Task) -> None:
    if entry.shared is task:
        entry.shared = None
    if not task.cancelled():
        task.exception()  # retrieved, so a poll that failed unawaited is not logged as lost


def _warn_insecure(clusters: Iterable[ClusterConfig]) -> None:
    """Log one line per kind of insecure transport, naming how many clusters use it.

    One line, not one per cluster: `defaults.tls.verify: false` at 1,000 clusters would
    otherwise bury the log under 1,000 identical warnings.
    """
    plain = [c.key for c in clusters if c.url.startswith("http://")]
    unverified = [c.key for c in clusters if c.url.startswith("https://") and not c.tls.verify]
    for keys, what in (
        (plain, "plain http:// (for simulators and tests only)"),
        (unverified, "TLS certificate verification is disabled"),
    ):
        if keys:
            shown = ", ".join(keys[:_NAMED_IN_WARNING])
            more = (
                f" and {len(keys) - _NAMED_IN_WARNING} more"
                if len(keys) > _NAMED_IN_WARNING
                else ""
            )
            log.warning("%s for %d cluster(s): %s%s", what, len(keys), shown, more)


def _client_for(
    cluster: ClusterConfig, poll: PollConfig, requests: Counter[str], user_agent: str
) -> OntapClient:
    return OntapClient(
        cluster,
        connections=poll.connections_per_cluster,
        max_response_bytes=poll.max_response_bytes,
        max_records=poll.max_records,
        requests=requests,
        user_agent=user_agent,
    )


def _client_settings(poll: PollConfig) -> tuple:
    """Return the poll settings an OntapClient is built with; others need no new client."""
    return (poll.connections_per_cluster, poll.max_response_bytes, poll.max_records)


def backoff_delay(poll: PollConfig, failures: int) -> float:
    """Return the wait before the next poll: the interval, doubled per consecutive failure."""
    if failures <= 1:
        return poll.interval
    return max(poll.interval, min(poll.interval * 2 ** (failures - 1), poll.max_backoff))


def streaks(
    statuses: Iterable[KeyManagerStatus], earlier: Mapping[str, float], now: float
) -> dict[str, dict[str, float]]:
    """Return the current unreachable streaks by provider field: a key service unreachable (by
    the configuration's uuid), a KMIP key server down (streak_key); each from its first poll."""
    by_field: dict[str, dict[str, float]] = {}
    for status in statuses:
        field = BY_KIND[status.kind].streak_field
        keys = [status.uuid] if status.service_unreachable else []
        keys += (streak_key(status.uuid, server.server) for server in status.servers_down)
        for key in keys:
            by_field.setdefault(field, {})[key] = earlier.get(key, now)
    return by_field


class Poller:
    """Owns the per-cluster tasks; ``publish(key, snapshot)`` is called after every poll."""

    def __init__(
        self,
        config: Config,
        *,
        state: UnreachableSince,
        publish: Publish,
        retire: Retire,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        user_agent: str = USER_AGENT,
    ):
        self.config = config
        self._user_agent = user_agent
        self._state = state
        self._publish = publish
        self._retire = retire
        self._clock = clock
        self._rng = rng or random.Random()
        self._clusters: dict[str, _Cluster] = {}
        self._names: dict[str, str] | None = None  # label in use -> key; None: rebuild
        self._semaphore = asyncio.Semaphore(config.poll.concurrency)
        self._pending_first: set[str] = set()
        self._callers: set[asyncio.Task] = set()  # tasks that called poll(), /probe's included
        self.ready = asyncio.Event()
        # Called with how late (seconds) each scheduled round began, the concurrency cap's
        # queue included; `make soak` watches the schedule through it.
        self.on_lateness: Callable[[float], None] | None = None
        self._running = False
        for cluster in config.clusters:
            self._add(cluster)
        _warn_insecure(config.clusters)

    # --- reading ---------------------------------------------------------------------------

    def snapshots(self) -> dict[str, ClusterSnapshot]:
        """Return the latest snapshot of every configured cluster, in configuration order."""
        return {key: c.snapshot for key, c in self._clusters.items()}

    def keys(self) -> list[str]:
        return list(self._clusters)

    def find(self, name: str) -> str | None:
        """Return the key of the cluster called ``name`` (configured, ONTAP's, or address)."""
        if name in self._clusters:
            return name
        for key, c in self._clusters.items():
            if name in (c.snapshot.name, c.config.address):
                return key
        return None

    # --- lifecycle -------------------------------------------------------------------------

    def _add(self, cluster: ClusterConfig, previous: _Cluster | None = None) -> None:
        """Start tracking ``cluster``; a reloaded one keeps its state, counters and history."""
        requests: Counter[str] = Counter(previous.client.requests) if previous else Counter()
        client = _client_for(cluster, self.config.poll, requests, self._user_agent)
        entry = _Cluster(
            config=cluster,
            client=client,
            reader=KeyManagerReader(client),
            snapshot=ClusterSnapshot(
                name=cluster.name or cluster.address, address=cluster.address, labels=cluster.labels
            ),
            radius=BlastRadiusPoller(lambda: self._clock()),  # the clock tests may swap
        )
        if previous is not None:
            # Same cluster, new settings: a reload must not flip it to "down" or restart the
            # `for` timers of its alerts, so it keeps what was known until its next poll.
            entry.errors = previous.errors
            entry.skipped = previous.skipped
            entry.failures = previous.failures
            if previous.config.url == cluster.url:
                entry.reader.keep_identity(previous.reader)
                entry.radius = previous.radius  # same cluster: its event cursor and counters
                entry.completed_at = previous.completed_at  # a reload is no licence to poll
            entry.snapshot = replace(
                previous.snapshot, address=cluster.address, labels=cluster.labels
            )
        self._clusters[cluster.key] = entry
        self._names = None
        entry.snapshot = replace(entry.snapshot, name=self._display_name(entry))
        if previous is None:
            self._pending_first.add(cluster.key)
        self._publish(cluster.key, entry.snapshot)
        if self._running:
            entry.task = asyncio.create_task(self._run(entry), name=f"poll {cluster.key}")

    async def _remove(self, key: str, *, retire: bool = True) -> None:
        entry = self._clusters.pop(key)
        self._names = None
        # Cancel both before awaiting either: a shared poll not yet started must never start
        # on a cluster that is gone.
        tasks = [task for task in (entry.task, entry.shared) if task is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await entry.client.close()
        self._pending_first.discard(key)
        if retire:
            self._retire(key)
        self._check_ready()

    async def start(self) -> None:
        self._running = True
        self._state.keep_only(self._clusters)
        for entry in self._clusters.values():
            entry.task = asyncio.create_task(self._run(entry), name=f"poll {entry.config.key}")
        self._check_ready()

    async def stop(self) -> None:
        """Stop every schedule and cancel every poll in flight (a /probe's too), then close."""
        self._running = False
        for caller in list(self._callers):
            if caller is not asyncio.current_task():
                caller.cancel()
        tasks = [
            task
            for entry in self._clusters.values()
            for task in (entry.task, entry.shared)
            if task is not None
        ]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for entry in self._clusters.values():
            await entry.client.close()

    async def reconfigure(self, config: Config) -> int:
        """Apply a new configuration: unchanged clusters keep polling, others restart or go.

        Return how many clusters were dropped or restarted (their clients closed).
        """
        wanted = {cluster.key: cluster for cluster in config.clusters}
        old_poll = self.config.poll
        self.config = config
        if config.poll.concurrency != old_poll.concurrency:
            self._semaphore = asyncio.Semaphore(config.poll.concurrency)
        gone = [k for k in self._clusters if k not in wanted]
        for key in gone:
            await self._remove(key)
        closed = len(gone)
        fresh: list[ClusterConfig] = []  # new or changed: warned about (again) if insecure
        for key, cluster in wanted.items():
            current = self._clusters.get(key)
            unchanged = current is not None and current.config == cluster
            if not unchanged:
                fresh.append(cluster)
            if unchanged and _client_settings(config.poll) == _client_settings(old_poll):
                continue  # interval, timeout and the rest are read afresh by the running task
            if current is not None:
                await self._remove(key, retire=False)
                closed += 1
            self._add(cluster, current)
        # Keep the configuration's order for every output.
        self._clusters = {key: self._clusters[key] for key in wanted}
        self._state.keep_only(self._clusters)
        _warn_insecure(fresh)
        return closed

    def _check_ready(self) -> None:
        if self._running and not self._pending_first:
            self.ready.set()

    # --- polling ---------------------------------------------------------------------------

    async def _run(self, entry: _Cluster) -> None:
        poll = self.config.poll
        await asyncio.sleep(self._rng.uniform(0, min(poll.interval * 0.1, 2.0)))
        loop = asyncio.get_running_loop()
        due: float | None = None  # when this round should begin
        while True:
            since = 0.0  # how long ago the poll this round relied on ended
            try:
                async with self._semaphore:
                    if due is not None and self.on_lateness is not None:
                        self.on_lateness(loop.time() - due)
                    refreshed = await self.refresh(entry.config.key)
                # The first slow polls wait for the fleet's first round to be over: a cluster
                # whose jittered start came late would otherwise queue behind them.
                if entry.radius.due():
                    await self.ready.wait()
                await self._slow_polls(entry.config.key, entry.snapshot)
                if refreshed.cached and entry.completed_at is not None:
                    since = loop.time() - entry.completed_at
            except Exception:  # the schedule must outlive any bug; the next poll tries again
                log.exception("cluster %s: poll round failed", entry.config.key)
            delay = backoff_delay(self.config.poll, entry.failures)
            delay = delay * self._rng.uniform(0.95, 1.05) - since
            if since:
                # A probe polled moments ago: count the interval from its poll, and never
                # come back before min_interval has passed (no tight loop on a cached answer).
                delay = max(delay, self.config.poll.poll_floor - since)
            # ONTAP's Retry-After outlasted the poll: honour it, even past the interval.
            delay = max(delay, entry.not_before - loop.time())
            due = loop.time() + max(0.0, delay)
            await self._wait(entry, delay)

    async def _wait(self, entry: _Cluster, delay: float) -> None:
        """Sleep ``delay``, waking to drop a failing cluster's series once they go stale."""
        snapshot = entry.snapshot
        if not snapshot.up and snapshot.key_managers and snapshot.key_managers_as_of is not None:
            stale_in = snapshot.key_managers_as_of + self.config.poll.stale_after - self._clock()
            if 0 <= stale_in < delay:
                await asyncio.sleep(stale_in)
                delay -= stale_in
                self._set(entry, self._without_stale(entry.snapshot))
        await asyncio.sleep(max(0.0, delay))

    async def _scheduled_poll(self, key: str) -> ClusterSnapshot:
        """Poll one cluster within the global concurrency cap, then its due slow polls."""
        async with self._semaphore:
            snapshot = await self.poll(key)
        return await self._slow_polls(key, snapshot)

    async def _slow_polls(self, key: str, snapshot: ClusterSnapshot) -> ClusterSnapshot:
        """Run the cluster's due slow polls (policy, volumes, events) within the cap, queued
        again for it after the AKV poll: behind every cluster still waiting for its poll.

        Held across both, the cap let each cluster's first slow polls (three more answers)
        delay a fleet's first full view four times over.
        """
        entry = self._clusters.get(key)
        if entry is None or not entry.radius.due():
            return snapshot
        async with self._semaphore:
            return await self.poll_blast_radius(key)

    async def refresh(self, key: str, timeout: float | None = None) -> Refreshed:
        """Return a snapshot no older than poll.min_interval, polling only when there is none.

        /probe and the schedule come here: concurrent callers share one in-flight poll, and a
        poll that ended less than poll.min_interval ago is returned as it is (``cached``), so
        ONTAP sees at most one poll per min_interval whatever the number of scrapers. The shared
        poll outlives a caller that gives up (a probe whose scrape timed out).
        """
        entry = self._clusters[key]
        self._track_caller()  # a /probe waiting on a shared poll is cancelled by stop() too
        if entry.shared is None:
            now = asyncio.get_running_loop().time()
            recent = (
                entry.completed_at is not None
                and now - entry.completed_at < self.config.poll.poll_floor
            )
            if recent or now < entry.not_before:
                return Refreshed(entry.snapshot, cached=True)
            entry.shared = asyncio.create_task(self.poll(key, timeout), name=f"poll {key} now")
            entry.shared.add_done_callback(lambda task: _forget(entry, task))
        shared = entry.shared
        try:
            return Refreshed(await asyncio.shield(shared), cached=False)
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if not shared.cancelled() or (current is not None and current.cancelling()):
                raise  # this caller was cancelled, not the poll it waited for
            # A reload restarted the cluster under this caller: what was known stays valid.
            return Refreshed(entry.snapshot, cached=True)

    def _track_caller(self) -> None:
        caller = asyncio.current_task()
        if caller is not None and caller not in self._callers:
            self._callers.add(caller)  # so that stop() can cancel it: a hung cluster's poll
            caller.add_done_callback(self._callers.discard)  # must not hold up a shutdown

    async def poll(self, key: str, timeout: float | None = None) -> ClusterSnapshot:
        """Poll one cluster now, publish the snapshot and return it (one poll at a time)."""
        entry = self._clusters[key]
        timeout = min(timeout or self.config.poll.timeout, self.config.poll.timeout)
        self._track_caller()
        async with entry.lock:
            started = self._clock()
            loop = asyncio.get_running_loop()
            began = loop.time()
            client = entry.client
            client.unanswered()  # forget what an earlier, cancelled poll left unanswered
            try:
                async with asyncio.timeout(timeout):
                    parsed = await entry.reader.read(
                        began + timeout,
                        self._clock(),
                        lambda: entry.snapshot.key_managers,
                        self.config.poll.inventory_interval,
                    )
                    for reason in parsed.skipped:
                        log.warning(
                            "cluster %s: skipped a malformed record: %s", entry.config.key, reason
                        )
            except TimeoutError:
                where = client.unanswered() or "poll"
                outcome = PollOutcome(
                    started,
                    loop.time() - began,
                    "timeout",
                    f"{where}: no answer within {timeout:g}s",
                )
                snapshot = self._failed(entry, outcome)
            except OntapError as error:
                outcome = PollOutcome(started, loop.time() - began, error.reason, str(error))
                snapshot = self._failed(entry, outcome)
                if error.retry_after is not None:
                    # Capped: a hostile header must not silence a cluster for days.
                    wait = min(error.retry_after, self.config.poll.max_backoff)
                    entry.not_before = loop.time() + wait
            except Exception as error:  # a bug must cost one cluster one poll, never the exporter
                log.exception("cluster %s: unexpected error while polling", entry.config.key)
                outcome = PollOutcome(
                    started, loop.time() - began, "invalid_response", f"poll: {error!r}"[:300]
                )
                snapshot = self._failed(entry, outcome)
            else:
                outcome = PollOutcome(
                    started, loop.time() - began, skipped_records=len(parsed.skipped)
                )
                snapshot = self._succeeded(entry, parsed, outcome)
                log.debug(
                    "polled: cluster=%s duration=%.3fs configurations=%d refused=%s",
                    snapshot.name,
                    outcome.duration,
                    len(parsed.key_managers),
                    ",".join(f"{k}:{e.code}" for k, e in parsed.refused.items()) or "none",
                    extra={"cluster": snapshot.name},
                )
            entry.completed_at = loop.time()
            # A poll (a /probe's, typically) can outlive a reload that retired or replaced its
            # cluster: publishing it would bring back series that no poll ever refreshes again.
            if self._current(entry):
                self._set(entry, snapshot)
                self._pending_first.discard(key)
                self._check_ready()
            return snapshot

    async def poll_blast_radius(self, key: str) -> ClusterSnapshot:
        """Run the cluster's due slow polls (policy, volumes, events) and return its snapshot.

        Only after a good AKV poll of a cluster with an AKV configuration: what is at stake
        matters only there, and a failing cluster is not asked for more. Failures here are the
        slow polls' own (blast_radius.py) and never mark the cluster down.
        """
        entry = self._clusters[key]
        snapshot = entry.snapshot
        if not (
            snapshot.up and snapshot.key_managers and entry.reader.identity and entry.radius.due()
        ):
            return snapshot
        try:
            blast = await entry.radius.poll(
                entry.client, entry.reader.identity, self.config.poll, snapshot.name
            )
        except Exception:  # a bug must cost one cluster its slow polls, never the exporter
            log.exception("cluster %s: unexpected error in the slow polls", key)
            return entry.snapshot
        if self._clusters.get(key) is entry:  # not removed or replaced meanwhile
            self._set(
                entry, replace(entry.snapshot, blast=blast, requests=dict(entry.client.requests))
            )
        return entry.snapshot

    def _display_name(self, entry: _Cluster) -> str:
        """Return the cluster label: configured name, else ONTAP's (if unique), else address."""
        if entry.config.name:
            return entry.config.name
        if entry.reader.identity is not None:
            holder = self._names_in_use().get(entry.reader.identity.name)
            if holder in (None, entry.config.key):
                return entry.reader.identity.name
            log.warning(
                "cluster %s calls itself %s, a name already in use; labelling it by its address",
                entry.config.address,
                entry.reader.identity.name,
            )
        return entry.config.address

    def _names_in_use(self) -> dict[str, str]:
        """Return the cluster label in use -> the key of the cluster using it."""
        if self._names is None:
            self._names = {}
            for key, c in self._clusters.items():
                self._names.setdefault(c.config.name or c.snapshot.name, key)
        return self._names

    def _history(self, entry: _Cluster, outcome: PollOutcome) -> tuple[PollOutcome, ...]:
        return (*entry.snapshot.history, outcome)[-self.config.poll.history :]

    def _succeeded(
        self, entry: _Cluster, parsed: ParsedRecords, outcome: PollOutcome
    ) -> ClusterSnapshot:
        key = entry.config.key
        if entry.failures:
            log.info("cluster %s: answering again after %d failed polls", key, entry.failures)
        entry.failures = 0
        # An AKV query error is logged when it starts and ends (state_changes), not every poll.
        if parsed.refused:
            # No records: what was known of each configuration stays, as of when it was known.
            since = dict(entry.snapshot.unreachable_since)
            as_of = entry.snapshot.key_managers_as_of
        else:
            earlier = {**self._state.of(key), **entry.snapshot.unreachable_since}
            by_field = streaks(parsed.key_managers, earlier, outcome.started)
            since = {k: ts for table in by_field.values() for k, ts in table.items()}
            if self._current(entry):  # a retired cluster's streaks were forgotten on purpose
                self._state.update(key, by_field)
            as_of = outcome.started
        entry.skipped += len(parsed.skipped)
        return replace(
            entry.snapshot,
            name=self._display_name(entry),
            up=True,
            identity=entry.reader.identity,
            key_managers=parsed.key_managers,
            key_managers_as_of=as_of,
            key_stores=entry.reader.key_stores,
            refused=parsed.refused,
            last_success=outcome.started + outcome.duration,
            last=outcome,
            history=self._history(entry, outcome),
            poll_errors=dict(entry.errors),
            requests=dict(entry.client.requests),
            unreachable_since=since,
            skipped_records=entry.skipped,
        )

    def _failed(self, entry: _Cluster, outcome: PollOutcome) -> ClusterSnapshot:
        entry.failures += 1
        entry.errors[outcome.reason or "invalid_response"] += 1
        # Once when the failure starts (or its reason changes); its end is logged by _succeeded.
        previous = entry.snapshot.last
        repeated = entry.failures > 1 and previous is not None and previous.reason == outcome.reason
        log.log(
            logging.DEBUG if repeated else logging.WARNING,
            "poll failed: cluster=%s reason=%s error=%s",
            entry.snapshot.name,
            outcome.reason,
            outcome.error,
            extra={"cluster": entry.snapshot.name, "reason": outcome.reason},
        )
        snapshot = replace(
            entry.snapshot,
            up=False,
            refused={},  # what it answered before is not what it says now
            last=outcome,
            history=self._history(entry, outcome),
            poll_errors=dict(entry.errors),
            requests=dict(entry.client.requests),
        )
        return self._without_stale(snapshot)

    def _without_stale(self, snapshot: ClusterSnapshot) -> ClusterSnapshot:
        """Return ``snapshot`` without its key managers (and key stores) once they are older
        than stale_after."""
        if snapshot.up or snapshot.key_managers_as_of is None:
            return snapshot
        if self._clock() - snapshot.key_managers_as_of < self.config.poll.stale_after:
            return snapshot
        blast = snapshot.blast.without_inventory()
        return replace(
            snapshot, key_managers=(), unreachable_since={}, blast=blast, key_stores=None
        )

    def _current(self, entry: _Cluster) -> bool:
        """Return whether ``entry`` is still the configured one (not retired or replaced)."""
        return self._clusters.get(entry.config.key) is entry

    def _set(self, entry: _Cluster, snapshot: ClusterSnapshot) -> None:
        log_changes(entry.snapshot, snapshot)
        if snapshot.name != entry.snapshot.name:
            self._names = None  # a cluster's label changed: rebuild the index when next asked
        entry.snapshot = snapshot
        self._publish(entry.config.key, snapshot)

    async def poll_all(self, keys: Iterable[str] | None = None) -> dict[str, ClusterSnapshot]:
        """Poll these clusters (default: all) once now, through the same capped poll as run's."""
        chosen = list(self._clusters) if keys is None else list(keys)
        await asyncio.gather(*(self._scheduled_poll(key) for key in chosen))
        return self.snapshots()
