"""The blast radius of a key-manager outage, polled on slow schedules beside the AKV poll.

Three ONTAP endpoints say what is at stake and what ONTAP itself did:

- ``/api/security/key-manager-configs``: whether ONTAP takes encrypted volumes offline when AKV
  stays unreachable (``health_monitor_policy.akv.manage_volume_offline``) and how often its
  health monitor checks (every ``poll.inventory_interval``, default 5 minutes);
- ``/api/storage/volumes``: the encrypted volumes per SVM and state (same schedule);
- ``/api/support/ems/events``: ONTAP's AKV events (every ``poll.events_interval``, default 60 s).

These polls run only after a good AKV poll of a cluster that has an AKV configuration. Their
failures never mark the cluster down: they are counted per endpoint and reason on their own, and
the last known answer stays until it is three inventory intervals old. A release without an
endpoint gives no series and is remembered until the release changes, so it is asked once.

Events seen in the first poll after start (the last 24 hours) are history: they give the
last-timestamp gauge and the recent list, and their counters start at zero. Later polls ask from
ONTAP's latest event time (less an overlap for nodes whose clocks differ) and count an event as
new only when its index is above the node's highest seen.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from akv_exporter.config import PollConfig
from akv_exporter.ontap import ems, key_manager_policy, volumes
from akv_exporter.ontap.answers import INVALID_FIELD, OntapError
from akv_exporter.ontap.client import OntapClient
from akv_exporter.ontap.cluster import ClusterIdentity
from akv_exporter.ontap.ems import EmsEvent
from akv_exporter.ontap.key_manager_policy import KeyManagerConfig
from akv_exporter.ontap.volumes import EncryptedVolumes
from akv_exporter.snapshot import BlastRadius, EventCount

log = logging.getLogger(__name__)

POLICY = key_manager_policy.PATH
VOLUMES = volumes.PATH
EVENTS = ems.PATH
ENDPOINTS = (POLICY, VOLUMES, EVENTS)
HISTORY = 24 * 3600.0  # events this old at start are read as history, never counted as new
EVENT_OVERLAP = 600.0  # re-ask this far back: nodes' clocks and ONTAP's logging may lag
RECENT_EVENTS = 20  # kept for the status page
STALE_INVENTORY_INTERVALS = 3
_NO_ENDPOINT = object()  # the answer of a release without key-manager-configs


class BlastRadiusPoller:
    """One cluster's slow polls: their schedule, event cursor and counters (poller-private)."""

    def __init__(self, clock: Callable[[], float]):
        self._clock = clock
        self.state = BlastRadius()
        self._next_inventory = 0.0
        self._next_events = 0.0
        self._history_from: float | None = None  # start of the history read at the first poll
        self._primed = False  # the first events poll (history) has been read
        self._highest: dict[str, int] = {}  # node -> highest event index seen
        self._latest: float | None = None  # ONTAP's latest event time seen
        # (node, event name, SVM the event names) -> count / ONTAP's latest time
        self._counts: Counter[tuple[str, str, str]] = Counter()
        self._last_time: dict[tuple[str, str, str], float] = {}
        self._errors: Counter[tuple[str, str]] = Counter()
        self._without_policy: str | None = None  # a release that refused the policy field
        self._deadline = 0.0  # loop time: the end of the current round's shared timeout

    def due(self) -> bool:
        """Return whether any slow poll is due now."""
        now = self._clock()
        return now >= self._next_inventory or now >= self._next_events

    def drop_stale(self, poll: PollConfig) -> BlastRadius:
        """Return the state without policy and volumes once they are too old to show."""
        as_of = self.state.volumes_as_of
        limit = poll.inventory_interval * STALE_INVENTORY_INTERVALS
        if as_of is not None and self._clock() - as_of > limit:
            self.state = self.state.without_inventory()
        return self.state

    async def poll(
        self, client: OntapClient, identity: ClusterIdentity, poll: PollConfig, cluster: str
    ) -> BlastRadius:
        """Run whichever slow polls are due and return the new state; never raises OntapError.

        They share one poll.timeout between them (``check --timeout`` too), so a cluster that
        hangs on them costs one more timeout, not one per endpoint.
        """
        now = self._clock()
        self._deadline = asyncio.get_running_loop().time() + poll.timeout
        if now >= self._next_inventory:
            self._next_inventory = now + poll.inventory_interval
            await self._policy(client, identity, poll, cluster)
            await self._volumes(client, poll, cluster)
        if now >= self._next_events:
            self._next_events = now + poll.events_interval
            await self._events(client, poll, cluster)
        return self.drop_stale(poll)

    async def _ask(self, endpoint: str, cluster: str, poll: PollConfig, call: Any) -> Any:
        """Return ``await call(deadline)``, or None after counting and logging the failure."""
        try:
            async with asyncio.timeout_at(self._deadline):
                answer = await call(self._deadline)
        except TimeoutError:
            detail = f"no answer within the slow polls' {poll.timeout:g}s"
            self._failed(endpoint, cluster, "timeout", detail)
        except OntapError as error:
            self._failed(endpoint, cluster, error.reason, str(error).removeprefix(f"{endpoint}: "))
        except ValueError as error:
            self._failed(endpoint, cluster, "invalid_response", str(error))
        else:
            if endpoint in self.state.last_error:
                log.info(
                    "slow poll answers again: cluster=%s endpoint=%s",
                    cluster,
                    endpoint,
                    extra={"cluster": cluster, "endpoint": endpoint},
                )
            self.state = replace(
                self.state,
                last_success={**self.state.last_success, endpoint: self._clock()},
                last_error={k: v for k, v in self.state.last_error.items() if k != endpoint},
            )
            return answer
        return None

    def _failed(self, endpoint: str, cluster: str, reason: str, detail: str) -> None:
        self._errors[(endpoint, reason)] += 1
        line = f"{endpoint}: {detail}"
        # Once when the failure starts; again only at debug (its end is logged by _ask).
        log.log(
            logging.DEBUG if endpoint in self.state.last_error else logging.WARNING,
            "slow poll failed: cluster=%s endpoint=%s reason=%s error=%s",
            cluster,
            endpoint,
            reason,
            detail,
            extra={"cluster": cluster, "endpoint": endpoint, "reason": reason},
        )
        self.state = replace(
            self.state,
            errors=dict(self._errors),
            last_error={**self.state.last_error, endpoint: line},
        )

    async def _policy(
        self, client: OntapClient, identity: ClusterIdentity, poll: PollConfig, cluster: str
    ) -> None:
        release = identity.version
        if self.state.policy_unsupported is not None:
            if self.state.policy_unsupported == release:
                return  # asked once for this release; an upgrade asks again
            self.state = replace(self.state, policy_unsupported=None)
        if not key_manager_policy.release_has_endpoint(release):
            self.state = replace(self.state, policy=None, policy_unsupported=release)
            return

        async def get(deadline: float) -> object:
            query = key_manager_policy.query_for(release)
            if self._without_policy == release:
                query = key_manager_policy.QUERY_WITHOUT_POLICY
            try:
                body = await client.get(query, deadline)
            except OntapError as error:
                if error.status == 404:
                    return _NO_ENDPOINT
                if error.ontap_code != INVALID_FIELD or query != key_manager_policy.QUERY:
                    raise
                # A release that does not know health_monitor_policy: ask for the interval
                # alone, now and until the release changes.
                self._without_policy = release
                body = await client.get(key_manager_policy.QUERY_WITHOUT_POLICY, deadline)
            return key_manager_policy.parse_key_manager_config(body)

        answer = await self._ask(POLICY, cluster, poll, get)
        if answer is _NO_ENDPOINT:
            # A release without the endpoint: unknown, and not asked again until it changes.
            log.info(
                "cluster %s: ONTAP %s has no %s; its policy is unknown", cluster, release, POLICY
            )
            self.state = replace(self.state, policy=None, policy_unsupported=release)
        elif isinstance(answer, KeyManagerConfig):
            self.state = replace(self.state, policy=answer)

    async def _volumes(self, client: OntapClient, poll: PollConfig, cluster: str) -> None:
        async def get(deadline: float) -> EncryptedVolumes:
            return volumes.parse_volumes(
                await client.get_collection(volumes.PATH, volumes.PARAMS, deadline)
            )

        started = self._clock()
        answer = await self._ask(VOLUMES, cluster, poll, get)
        if answer is not None:
            if answer.skipped:
                log.warning(
                    "cluster %s: %d volume records without an SVM name skipped",
                    cluster,
                    answer.skipped,
                )
            self.state = replace(self.state, volumes=answer, volumes_as_of=started)

    async def _events(self, client: OntapClient, poll: PollConfig, cluster: str) -> None:
        if self._history_from is None:
            self._history_from = self._clock() - HISTORY
        since = self._history_from if self._latest is None else self._latest - EVENT_OVERLAP

        async def get(deadline: float) -> tuple[tuple[EmsEvent, ...], int]:
            return ems.parse_events(
                await client.get_collection(ems.PATH, ems.query(since), deadline)
            )

        answer = await self._ask(EVENTS, cluster, poll, get)
        if answer is None:
            return
        events, skipped = answer
        if skipped:
            log.warning(
                "cluster %s: %d EMS event records skipped (no node, index, time or name)",
                cluster,
                skipped,
            )
        self._take(events)

    def _take(self, events: tuple[EmsEvent, ...]) -> None:
        """Count the events not seen before (none in the first poll: that is history)."""
        fresh = [e for e in events if e.index > self._highest.get(e.node, -1)]
        for event in fresh:
            key = (event.node, event.name, event.svm)
            if self._primed:
                self._counts[key] += 1
            else:
                self._counts.setdefault(key, 0)  # history: the series exists, at zero
            self._last_time[key] = max(self._last_time.get(key, event.time), event.time)
            self._highest[event.node] = max(self._highest.get(event.node, -1), event.index)
            self._latest = event.time if self._latest is None else max(self._latest, event.time)
        self._primed = True
        recent = sorted(
            (*fresh, *self.state.recent_events), key=lambda e: (e.time, e.index), reverse=True
        )
        self.state = replace(
            self.state,
            events=tuple(
                EventCount(node, name, self._counts[key], self._last_time[key], svm)
                for key in sorted(self._counts)
                for node, name, svm in [key]
            ),
            recent_events=tuple(recent[:RECENT_EVENTS]),
        )
