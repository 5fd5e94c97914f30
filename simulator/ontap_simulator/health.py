"""ONTAP's key-manager health monitor, per simulated cluster, on the simulator's clock.

Every ``health_monitor_polling_interval`` simulated minutes (phase from the cluster's name) a
cluster checks each active AKV, Google Cloud KMS, AWS KMS and Barbican configuration, and each
KMIP key server:
- failing (the service unreachable or the KEK unavailable: every node; EKMIP down: that node;
  a key server ``not_responding``: that node): each affected node logs the key manager's
  ``notAvailable`` event once (``ekmip.akv``, ``ekmip.gckms``, ``ekmip.awskms``;
  ``km.keyserver.notavailable``; Barbican: none, NetApp documents no Barbican events);
- a cloud configuration unavailable cluster-wide at a check ``OFFLINE_AFTER_S`` or more after
  the first such check, where the policy lets the monitor manage volumes
  (health_monitor_policy.<type> ``enabled`` and ``manage_volume_offline``; 9.10.1 to 9.14.1
  have no policy and always do): the encrypted volumes of the SVMs the configuration covers go
  offline, its key store's ``state`` becomes ``blocked`` and each SVM logs ``volOffline`` once.
  Key servers have no such rule (NetApp documents none);
- healthy again: ``available`` on each node that logged notAvailable; the volumes it took
  offline come back online, with ``volOnline`` on releases that have it.
Before 9.10 there is no monitor (its settings are documented from 9.10; the 9.8 and 9.9.1
command references offer AKV to Azure NetApp Files only). The 60 minutes are NetApp's EMS text
of ekmip.akv.volOffline, ekmip.gckms.volOffline and ekmip.awskms.volOffline ("if, for 60
minutes" no poll succeeds); that Barbican follows the same rule is the simulator's reading of
its ``health_monitor_policy.barbican.manage_volume_offline`` (NetApp has no Barbican EMS text).
Counting from the first failed check is the simulator's choice, so ONTAP acts 60 to 60 +
interval minutes after an outage begins.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import heapq
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ontap_simulator import ems, key_managers, key_stores
from ontap_simulator.clock import SimClock
from ontap_simulator.key_manager_configs import akv_monitor, monitor_policy, polling_interval_s
from ontap_simulator.keymanagers import CLOUD_PROVIDERS
from ontap_simulator.volumes import covered_svms, encrypted_in, with_offline

if TYPE_CHECKING:
    from ontap_simulator.model import Akv, ClusterState, Status
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
    blocked: bool = False  # the monitor set the key store's state to blocked
    target: Target | None = None  # what it watches, as last seen (to heal one that went away)

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


def failing_nodes(
    state: ClusterState, reachable: bool, kek: Status, ekmip: Mapping[str, Status]
) -> tuple[set[str], bool]:
    """Return (nodes that cannot use a configuration, whether that is every node)."""
    if not reachable or not kek.ok:
        return {node.name for node in state.nodes}, True
    return {name for name, status in ekmip.items() if not status.ok}, False


Facts = Callable[["ClusterState", str, str, int], dict[str, str]]


@dataclass(frozen=True, slots=True)
class Target:
    """One thing the monitor checks: a configuration, or one key server of a key manager."""

    uuid: str  # its watch's key: the configuration's uuid, "<uuid>/<server>" for a key server
    keystore_type: str  # the policy's key
    store: str  # its key store's uuid
    svm: str  # "" = cluster scope
    failing: frozenset[str]
    everywhere: bool
    # EMS names: (notAvailable, available, volOffline, volOnline); "" where there is none
    events: tuple[str, str, str, str]
    # (state, node, SVM the event names, volumes) -> the event's facts
    facts: Facts
    offline: bool  # the 60-minute volume-offline rule applies


_NO_EVENTS = ("", "", "", "")


def _events(group: str) -> tuple[str, str, str, str]:
    if not group:
        return _NO_EVENTS
    return (
        f"{group}.notAvailable",
        f"{group}.available",
        f"{group}.volOffline",
        f"{group}.volOnline",
    )


def _akv_target(state: ClusterState, akv: Akv) -> Target:
    nodes, everywhere = failing_nodes(state, akv.azure.ok, akv.kek, akv.ekmip)

    def facts(st: ClusterState, node: str, svm: str, volumes: int) -> dict[str, str]:
        # The volumes' SVM may be covered by the cluster-scoped configuration: name its vault.
        return {**ems.akv_facts(st, akv.svm_name, node, volumes), "svm": svm or st.name}

    return Target(
        akv.uuid,
        "akv",
        akv.uuid,
        akv.svm_name,
        frozenset(nodes),
        everywhere,
        _events("ekmip.akv"),
        facts,
        offline=True,
    )


def targets(state: ClusterState) -> list[Target]:
    """Return what the monitor checks on the cluster: every active configuration, every key
    server of an active external key manager."""
    found = [_akv_target(state, akv) for akv in state.akvs if state.active(akv)]
    providers = {provider.keystore_type: provider for provider in CLOUD_PROVIDERS}
    for config in state.cloud_kms:
        if not state.active(config):
            continue
        provider = providers[config.provider]
        nodes, everywhere = failing_nodes(state, config.service.ok, config.kek, config.ekmip)

        def facts(st: ClusterState, node: str, svm: str, volumes: int, c: Any = config) -> Any:
            return ems.cloud_facts(st, c, node, volumes, svm)

        found.append(
            Target(
                config.uuid,
                config.provider,
                config.uuid,
                config.svm_name,
                frozenset(nodes),
                everywhere,
                _events(provider.ems),
                facts,
                offline=True,
            )
        )
    all_nodes = {node.name for node in state.nodes}
    for manager in state.key_managers:
        if manager.kind != "kmip" or not key_managers.active(state, manager):
            continue
        for server in manager.servers:
            down = {n for n in all_nodes if server.state_of(n) == "not_responding"}

            def kmip(
                st: ClusterState,
                node: str,
                svm: str,
                volumes: int,
                m: Any = manager,
                address: str = server.server,
            ) -> dict[str, str]:
                return ems.kmip_facts(st, m, address, node)

            events = ("km.keyserver.notavailable", "km.keyserver.available", "", "")
            found.append(
                Target(
                    f"{manager.uuid}/{server.server}",
                    "kmip",
                    manager.uuid,
                    manager.svm_name,
                    frozenset(down),
                    down == all_nodes,
                    events,
                    kmip,
                    offline=False,
                )
            )
    return found


def _exists(state: ClusterState, target: Target) -> bool:
    """Return whether the watched configuration (or key server) is still there, active or not."""
    return any(store.uuid == target.store for store in key_stores.key_stores(state))


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
        if akv_monitor(cluster.state) is None:  # before 9.10: no monitor at all
            return
        watches = self.watches.setdefault(cluster.name, {})
        present = targets(cluster.state)
        for target in present:
            policy = monitor_policy(cluster.state, target.keystore_type)
            if policy is None or not policy.enabled:
                continue
            watch = watches.get(target.uuid)
            if target.failing:
                if watch is None:
                    watch = watches[target.uuid] = Watch(first_failed=now)
                watch.target = target
                self._fail(cluster, target, watch, now)
                if (
                    target.everywhere
                    and target.offline
                    and not watch.acted
                    and watch.unavailable_since is not None
                    and now - watch.unavailable_since >= OFFLINE_AFTER_S
                ):
                    watch.acted = True
                    if policy.manage_volume_offline:
                        self._take_offline(cluster, target, watch)
            elif watch is not None:
                self._heal(cluster, target, watch)
                del watches[target.uuid]
        # What was failing and is gone or inactive now: nothing to wait for.
        uuids = {target.uuid for target in present}
        for uuid in [uuid for uuid in watches if uuid not in uuids]:
            watch = watches.pop(uuid)
            if watch.target is not None and _exists(cluster.state, watch.target):
                self._heal(cluster, watch.target, watch)

    def _fail(self, cluster: SimulatedCluster, target: Target, watch: Watch, now: float) -> None:
        if target.everywhere and watch.unavailable_since is None:
            watch.unavailable_since = now
        elif not target.everywhere:
            watch.unavailable_since = None  # only some nodes: the countdown starts over
        for node in cluster.state.nodes:
            if node.name in target.failing and node.name not in watch.notified:
                watch.notified.add(node.name)
                self._log(cluster, node.name, target, target.events[0], target.svm)
            elif node.name in watch.notified and node.name not in target.failing:
                # This node is fine again while another one is not.
                watch.notified.discard(node.name)
                self._log(cluster, node.name, target, target.events[1], target.svm)

    def _take_offline(self, cluster: SimulatedCluster, target: Target, watch: Watch) -> None:
        state = cluster.state
        # The SVM is blocked (NetApp's volOffline text): so is its key store, from 9.16.1 on.
        state = key_stores.with_state(state, target.store, "blocked")
        watch.blocked = True
        counts = {
            svm: n for svm in covered_svms(state, target.svm) if (n := encrypted_in(state, [svm]))
        }
        if counts:
            state = with_offline(state, tuple(counts), offline=True)
            watch.offline_svms = tuple(counts)
        cluster.set_state(state)
        for svm, volumes in counts.items():
            self._log(cluster, _acting_node(state), target, target.events[2], svm, volumes)

    def _heal(self, cluster: SimulatedCluster, target: Target, watch: Watch) -> None:
        for node in cluster.state.nodes:
            if node.name in watch.notified:
                self._log(cluster, node.name, target, target.events[1], target.svm)
        state = cluster.state
        if watch.blocked:
            cluster.set_state(key_stores.with_state(state, target.store, None))
        if watch.offline_svms:
            counts = {svm: encrypted_in(state, [svm]) for svm in watch.offline_svms}
            cluster.set_state(with_offline(cluster.state, watch.offline_svms, offline=False))
            for svm in watch.offline_svms:
                node = _acting_node(state)
                self._log(cluster, node, target, target.events[3], svm, counts[svm])

    def _log(
        self,
        cluster: SimulatedCluster,
        node_name: str,
        target: Target,
        name: str,
        svm: str,
        volumes: int = 0,
    ) -> None:
        state = cluster.state
        if not name or not ems.available_in(name, state.version):
            return
        node = next(n for n in state.nodes if n.name == node_name)
        parameters, text = ems.akv_event(name, target.facts(state, node.name, svm, volumes))
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
