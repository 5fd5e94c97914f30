"""ONTAP's key-manager health monitor, per simulated cluster, on the simulator's clock.

Every ``health_monitor_polling_interval`` simulated minutes (phase from the cluster's name) a
cluster checks each active AKV configuration:
- failing (Azure unreachable or KEK unavailable: every node; EKMIP down: that node): each
  affected node logs ``ekmip.akv.notAvailable`` once;
- unavailable cluster-wide (Azure or KEK) at a check ``OFFLINE_AFTER_S`` or more after the first
  such check, where the policy lets the monitor manage volumes (health_monitor_policy.akv
  ``enabled`` and ``manage_volume_offline``; 9.10.1 to 9.14.1 have no policy and always do): the
  encrypted volumes of the SVMs the configuration covers go offline and each SVM logs
  ``ekmip.akv.volOffline`` once;
- healthy again: ``ekmip.akv.available`` on each node that logged notAvailable; the volumes it
  took offline come back online, with ``ekmip.akv.volOnline`` on releases that have it.
Before 9.10 there is no monitor (its settings are documented from 9.10; the 9.8 and 9.9.1
command references offer AKV to Azure NetApp Files only). The 60 minutes are NetApp's EMS text
of ekmip.akv.volOffline ("if, for 60 minutes" no poll succeeds); counting from the first failed
check is the simulator's choice, so ONTAP acts 60 to 60 + interval minutes after an outage begins.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import heapq
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ontap_simulator import ems
from ontap_simulator.clock import SimClock
from ontap_simulator.key_manager_configs import akv_monitor, polling_interval_s
from ontap_simulator.volumes import covered_svms, encrypted_in, with_offline

if TYPE_CHECKING:
    from ontap_simulator.model import Akv, ClusterState
    from ontap_simulator.server import Fleet, SimulatedCluster

OFFLINE_AFTER_S = 3600.0
# The longest real sleep, so that a changed clock factor takes effect soon enough.
_MAX_SLEEP_S = 1.0


@dataclass
class Watch:
    """What the monitor knows of one failing configuration (simulated seconds)."""

    first_failed: float  # first check that found it failing at all
    unavailable_since: float | None = None  # first check that found it failing cluster-wide
    notified: set[str] = field(default_factory=set)  # nodes that logged notAvailable
    offline_svms: tuple[str, ...] = ()  # SVMs whose volumes the monitor took offline
    acted: bool = False  # the deadline passed and the policy was applied

    def as_json(self, interval_s: float) -> dict[str, Any]:
        """Return the watch as the control API shows it."""
        offline_at = None
        if self.unavailable_since is not None and not self.acted:
            offline_at = self.unavailable_since + OFFLINE_AFTER_S
        return {
            "first_failed_s": self.first_failed,
            "unavailable_since_s": self.unavailable_since,
            "offline_due_s": offline_at,
            "notified_nodes": sorted(self.notified),
            "offline_svms": list(self.offline_svms),
            "interval_s": interval_s,
        }


def failing_nodes(state: ClusterState, akv: Akv) -> tuple[set[str], bool]:
    """Return (nodes that cannot use the configuration, whether that is every node)."""
    if not akv.azure.ok or not akv.kek.ok:
        return {node.name for node in state.nodes}, True
    return {name for name, status in akv.ekmip.items() if not status.ok}, False


def _phase(name: str, interval_s: float) -> float:
    digest = hashlib.sha256(name.encode()).digest()
    return int.from_bytes(digest[:4], "big") % max(1, int(interval_s))


class HealthMonitor:
    """Runs every cluster's checks when due; ``check`` runs one at once (tests, control API)."""

    def __init__(self, fleet: Fleet, clock: SimClock) -> None:
        self.fleet = fleet
        self.clock = clock
        self.watches: dict[str, dict[str, Watch]] = {}  # cluster -> AKV uuid -> watch
        self.wake = asyncio.Event()
        self._checked: dict[str, float] = {}

    def next_due(self, cluster: SimulatedCluster, now: float) -> float:
        """Return the simulated time of the cluster's next check after ``now``."""
        interval = polling_interval_s(cluster.state)
        phase = _phase(cluster.name, interval)
        return now - ((now - phase) % interval) + interval

    async def run(self) -> None:
        """Check every monitored cluster when due, until cancelled."""
        heap: list[tuple[float, str]] = []
        now = self.clock.now()
        for cluster in self.fleet:
            if akv_monitor(cluster.state) is not None:
                heap.append((self.next_due(cluster, now), cluster.name))
        heapq.heapify(heap)
        while True:
            now = self.clock.now()
            while heap and heap[0][0] <= now:
                _, name = heapq.heappop(heap)
                cluster = self.fleet.clusters[name]
                self.check(cluster, now)
                heapq.heappush(heap, (self.next_due(cluster, now), name))
            delay = self.clock.real_seconds(heap[0][0] - self.clock.now()) if heap else _MAX_SLEEP_S
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), timeout=min(max(delay, 0.0), _MAX_SLEEP_S))
            self.wake.clear()

    def check(self, cluster: SimulatedCluster, now: float | None = None) -> None:
        """Run one health check of the cluster at simulated time ``now`` (default: the clock's)."""
        now = self.clock.now() if now is None else now
        self._checked[cluster.name] = now
        policy = akv_monitor(cluster.state)
        if policy is None or not policy.enabled:
            return
        watches = self.watches.setdefault(cluster.name, {})
        for akv in cluster.state.akvs:
            state = cluster.state
            if not state.active(akv):
                continue
            nodes, everywhere = failing_nodes(state, akv)
            watch = watches.get(akv.uuid)
            if nodes:
                if watch is None:
                    watch = watches[akv.uuid] = Watch(first_failed=now)
                self._fail(cluster, akv, watch, nodes, everywhere, now)
                if (
                    everywhere
                    and not watch.acted
                    and watch.unavailable_since is not None
                    and now - watch.unavailable_since >= OFFLINE_AFTER_S
                ):
                    watch.acted = True
                    if policy.manage_volume_offline:
                        self._take_offline(cluster, akv, watch)
            elif watch is not None:
                self._heal(cluster, akv, watch)
                del watches[akv.uuid]
        # A configuration that was failing and is gone or inactive now: nothing to wait for.
        active = {akv.uuid: akv for akv in cluster.state.akvs if cluster.state.active(akv)}
        for uuid in [uuid for uuid in watches if uuid not in active]:
            watch = watches.pop(uuid)
            gone = next((a for a in cluster.state.akvs if a.uuid == uuid), None)
            if gone is not None:
                self._heal(cluster, gone, watch)

    def _fail(
        self,
        cluster: SimulatedCluster,
        akv: Akv,
        watch: Watch,
        nodes: set[str],
        everywhere: bool,
        now: float,
    ) -> None:
        if everywhere and watch.unavailable_since is None:
            watch.unavailable_since = now
        elif not everywhere:
            watch.unavailable_since = None  # only some nodes: the countdown starts over
        for node in cluster.state.nodes:
            if node.name in nodes and node.name not in watch.notified:
                watch.notified.add(node.name)
                self._log(cluster, node.name, "ekmip.akv.notAvailable", akv.svm_name)

    def _take_offline(self, cluster: SimulatedCluster, akv: Akv, watch: Watch) -> None:
        state = cluster.state
        counts = {svm: n for svm in covered_svms(state, akv) if (n := encrypted_in(state, [svm]))}
        if not counts:
            return
        svms = tuple(counts)
        cluster.set_state(with_offline(state, svms, offline=True))
        watch.offline_svms = svms
        for svm in svms:
            self._log(cluster, _acting_node(state), "ekmip.akv.volOffline", svm, counts[svm], akv)

    def _heal(self, cluster: SimulatedCluster, akv: Akv, watch: Watch) -> None:
        for node in cluster.state.nodes:
            if node.name in watch.notified:
                self._log(cluster, node.name, "ekmip.akv.available", akv.svm_name)
        if watch.offline_svms:
            state = cluster.state
            counts = {svm: encrypted_in(state, [svm]) for svm in watch.offline_svms}
            cluster.set_state(with_offline(state, watch.offline_svms, offline=False))
            for svm in watch.offline_svms:
                self._log(
                    cluster, _acting_node(state), "ekmip.akv.volOnline", svm, counts[svm], akv
                )

    def _log(
        self,
        cluster: SimulatedCluster,
        node_name: str,
        name: str,
        svm: str,
        volumes: int = 0,
        akv: Akv | None = None,
    ) -> None:
        state = cluster.state
        if not ems.available_in(name, state.version):
            return
        node = next(n for n in state.nodes if n.name == node_name)
        # The volumes' SVM may be covered by the cluster-scoped configuration: name its vault.
        facts = ems.akv_facts(state, akv.svm_name if akv else svm, node.name, volumes)
        facts["svm"] = svm or state.name
        parameters, text = ems.akv_event(name, facts)
        cluster.events.append(node.name, node.uuid, name, parameters=parameters, log_message=text)

    def describe(self, cluster: SimulatedCluster) -> dict[str, Any]:
        """Return the monitor's view of one cluster, for the control API."""
        state = cluster.state
        policy = akv_monitor(state)
        interval = polling_interval_s(state)
        return {
            "monitored": policy is not None and policy.enabled,
            "manage_volume_offline": bool(policy and policy.manage_volume_offline),
            "interval_s": interval,
            "last_check_s": self._checked.get(cluster.name),
            "failing": {
                uuid: watch.as_json(interval)
                for uuid, watch in self.watches.get(cluster.name, {}).items()
            },
        }


def _acting_node(state: ClusterState) -> str:
    return next((n.name for n in state.nodes if n.state == "up"), state.nodes[0].name)
