"""Incidents that come and go on random clusters, so a demo shows changing state.

An incident changes one cluster through the same patch path as the control API, prints one
timestamped line when it starts and one when it heals, and heals by putting back what the
scenario had for exactly the fields it touched (a reset by hand in between does no harm).
Which cluster, which kind, and when are drawn from a generator seeded with the simulator's
seed; the wall clock only decides when the draws happen.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

from ontap_simulator import ems
from ontap_simulator.keymanagers import CLOUD_PROVIDERS
from ontap_simulator.model import (
    HEALTHY,
    Akv,
    ClusterState,
    azure_unreachable,
    ekmip_unavailable,
    kek_unavailable,
)
from ontap_simulator.server import Fleet, SimulatedCluster

KINDS = ("vault_outage", "ekmip_down", "kek_unavailable", "http_503", "slow", "key_expired")
AKV_KINDS = frozenset({"vault_outage", "ekmip_down", "kek_unavailable", "key_expired"})
# An expired key version is logged (EMS) from 9.10.1 and changes nothing else: NetApp's text
# for ekmip.akv.keyExpired says there is no interruption to data availability.
LOGGED_KINDS = {"key_expired": "ekmip.akv.keyExpired"}
KEK_REASONS = (
    "Unable to unwrap the top-level KEK using the Azure Key Vault key.",
    "The Azure Key Vault key used to wrap the KEK is disabled.",
)
AZURE_REASONS = ("Connection timed out", "Could not resolve host", "HTTP 403 Forbidden")
# The other key managers' incidents: a provider's service unreachable, one KMIP key server not
# responding from one node. Only on clusters that have them, and weighted so that a demo shows
# them on the few clusters that do.
CLOUD_OUTAGES = {f"{p.keystore_type}_outage": p for p in CLOUD_PROVIDERS}
OTHER_KINDS = (*CLOUD_OUTAGES, "kmip_server_down")
OTHER_WEIGHT = 3


@dataclass(frozen=True, slots=True)
class IncidentTiming:
    """When incidents start and how long they last, in seconds."""

    first_after_s: float = 15.0
    gap_s: tuple[float, float] = (20.0, 75.0)  # between one start and the next
    duration_s: tuple[float, float] = (120.0, 360.0)


@dataclass(frozen=True, slots=True)
class Incident:
    """One incident in progress: what, where, and when it heals (monotonic seconds)."""

    kind: str
    cluster: str
    description: str
    heals_at: float
    akv_uuid: str = ""
    node: str = ""
    config_uuid: str = ""  # the other key managers' incidents: the configuration
    server: str = ""  # and the KMIP key server


def _now_text() -> str:
    return datetime.datetime.now().astimezone().isoformat(timespec="seconds")


class IncidentScheduler:
    """Starts an incident every little while on a cluster that has none, and heals it later."""

    def __init__(
        self,
        fleet: Fleet,
        seed: int,
        out: TextIO,
        timing: IncidentTiming = IncidentTiming(),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.fleet = fleet
        self.rng = random.Random(f"akv-sim:{seed}:incidents")
        self.out = out
        self.timing = timing
        self.clock = clock
        self.active: dict[str, Incident] = {}  # cluster name -> its incident

    def _say(self, text: str) -> None:
        print(f"{_now_text()} {text}", file=self.out, flush=True)

    async def run(self) -> None:
        """Start and heal incidents until cancelled; heals whatever is active on the way out."""
        next_start = self.clock() + self.timing.first_after_s
        try:
            while True:
                now = self.clock()
                for incident in sorted(self.active.values(), key=lambda i: i.heals_at):
                    if incident.heals_at <= now:
                        self.heal(incident)
                if next_start <= now:
                    self.start_one()
                    next_start = now + self.rng.uniform(*self.timing.gap_s)
                wake = min([next_start, *(i.heals_at for i in self.active.values())])
                await asyncio.sleep(max(0.0, wake - self.clock()))
        finally:
            for incident in list(self.active.values()):
                self.heal(incident, quiet=True)

    def start_one(self) -> Incident | None:
        """Start one incident on a calm cluster; None when every cluster already has one."""
        calm = [cluster for cluster in self.fleet if cluster.name not in self.active]
        if not calm:
            return None
        cluster = self.rng.choice(calm)
        state = cluster.state
        candidates = [akv for akv in state.akvs if state.active(akv)]
        kinds = tuple(
            k
            for k in KINDS
            if (candidates or k not in AKV_KINDS)
            and ems.available_in(LOGGED_KINDS.get(k, ""), state.version)
        )
        others = tuple(k for k in OTHER_KINDS if _other_targets(state, k))
        kind = self.rng.choice(kinds + others * OTHER_WEIGHT)
        duration = self.rng.uniform(*self.timing.duration_s)
        heals_at = self.clock() + duration
        if kind in OTHER_KINDS:
            return self._start_other(cluster, kind, heals_at, duration)
        akv = self.rng.choice(candidates) if kind in AKV_KINDS else None
        node = (
            self.rng.choice(state.nodes).name
            if kind in ("ekmip_down", "kek_unavailable", "key_expired")
            else ""
        )
        new_state, description = self._inflict(state, kind, akv, node)
        cluster.set_state(new_state)
        if kind in LOGGED_KINDS and akv is not None:
            _log(cluster, LOGGED_KINDS[kind], akv, node)
        incident = Incident(
            kind, cluster.name, description, heals_at, akv.uuid if akv else "", node
        )
        self.active[cluster.name] = incident
        self._say(f"incident started: {description} (heals in {duration:.0f}s)")
        return incident

    def _start_other(
        self, cluster: SimulatedCluster, kind: str, heals_at: float, duration: float
    ) -> Incident:
        state = cluster.state
        config_uuid = self.rng.choice(_other_targets(state, kind))
        node = server = ""
        if kind == "kmip_server_down":
            manager = next(m for m in state.key_managers if m.uuid == config_uuid)
            server = self.rng.choice(manager.servers).server
            node = self.rng.choice(state.nodes).name
            states = {**_server(state, config_uuid, server).node_states, node: "not_responding"}
            state = _with_server(state, config_uuid, server, states)
            where = f" SVM {manager.svm_name}" if manager.svm_name else ""
            description = f"KMIP key server {server} not responding from {node} on {state.name}"
            description += where
        else:
            provider = CLOUD_OUTAGES[kind]
            config = next(c for c in state.cloud_kms if c.uuid == config_uuid)
            reason = self.rng.choice(AZURE_REASONS)
            state = _with_cloud(state, config_uuid, provider.unreachable(config, reason))
            where = f"SVM {config.svm_name}" if config.svm_name else "(cluster scope)"
            description = f"{provider.title} outage on {state.name} {where}: unreachable"
        cluster.set_state(state)
        incident = Incident(
            kind, cluster.name, description, heals_at, node=node, config_uuid=config_uuid,
            server=server,
        )  # fmt: skip
        self.active[cluster.name] = incident
        self._say(f"incident started: {description} (heals in {duration:.0f}s)")
        return incident

    def _inflict(
        self, state: ClusterState, kind: str, akv: Akv | None, node: str
    ) -> tuple[ClusterState, str]:
        where = f"{state.name}"
        if akv is not None:
            where += f" SVM {akv.svm_name}" if akv.svm_name else " (cluster scope)"
        if kind == "http_503":
            faults = dataclasses.replace(state.faults, http_status=503, retry_after_s=30.0)
            return dataclasses.replace(state, faults=faults), f"{where} answers 503 (overloaded)"
        if kind == "slow":
            latency = round(self.rng.uniform(3.0, 12.0), 1)
            faults = dataclasses.replace(state.faults, latency_s=latency)
            return dataclasses.replace(state, faults=faults), f"{where} answers after {latency}s"
        assert akv is not None
        if kind == "key_expired":
            return state, f"key version expired on {where}: {akv.key_id}"
        if kind == "vault_outage":
            changed = dataclasses.replace(
                akv, azure=azure_unreachable(akv.vault, self.rng.choice(AZURE_REASONS))
            )
            text = f"vault outage on {where}: {akv.vault} unreachable"
        elif kind == "ekmip_down":
            changed = dataclasses.replace(akv, ekmip={**akv.ekmip, node: ekmip_unavailable()})
            text = f"embedded KMIP server down on {where}, node {node}"
        else:
            changed = dataclasses.replace(
                akv, kek=kek_unavailable([node], self.rng.choice(KEK_REASONS))
            )
            text = f"KEK unavailable on {where}, node {node}"
        return _with_akv(state, changed), text

    def heal(self, incident: Incident, quiet: bool = False) -> None:
        """End an incident: the fields it touched go back to the scenario's values."""
        self.active.pop(incident.cluster, None)
        cluster = self.fleet.clusters[incident.cluster]
        cluster.set_state(_healed(cluster, incident))
        if not quiet:
            akv = cluster.state.akv(incident.akv_uuid)
            if incident.kind == "key_expired" and akv is not None:
                # Someone renewed the key: a new version, with which ONTAP re-wraps the KEK.
                state, replaced = ems.renew_key(cluster.state, akv.svm_name)
                cluster.set_state(state)
                _log(cluster, "ekmip.akv.keyVersionChanged", akv, incident.node, replaced)
            self._say(f"incident ended: {incident.description}")


def _log(
    cluster: SimulatedCluster, name: str, akv: Akv, node_name: str, old_key_id: str = ""
) -> None:
    state = cluster.state
    node = next((n for n in state.nodes if n.name == node_name), state.nodes[0])
    facts = ems.akv_facts(state, akv.svm_name, node.name, old_key_id=old_key_id)
    parameters, text = ems.akv_event(name, facts)
    cluster.events.append(node.name, node.uuid, name, parameters=parameters, log_message=text)


def _with_akv(state: ClusterState, changed: Akv) -> ClusterState:
    akvs = tuple(changed if akv.uuid == changed.uuid else akv for akv in state.akvs)
    return dataclasses.replace(state, akvs=akvs)


def _other_targets(state: ClusterState, kind: str) -> list[str]:
    """Return the uuids of what an incident of the other key managers can break here."""
    if kind == "kmip_server_down":
        return [m.uuid for m in state.key_managers if m.kind == "kmip" and m.servers]
    provider = CLOUD_OUTAGES[kind].keystore_type
    return [c.uuid for c in state.cloud(provider) if state.active(c)]


def _with_cloud(state: ClusterState, uuid: str, service: Any) -> ClusterState:
    cloud = tuple(
        dataclasses.replace(c, service=service) if c.uuid == uuid else c for c in state.cloud_kms
    )
    return dataclasses.replace(state, cloud_kms=cloud)


def _server(state: ClusterState, uuid: str, address: str) -> Any:
    manager = next((m for m in state.key_managers if m.uuid == uuid), None)
    return next((s for s in manager.servers if s.server == address), None) if manager else None


def _with_server(
    state: ClusterState, uuid: str, address: str, node_states: dict[str, str]
) -> ClusterState:
    managers = []
    for manager in state.key_managers:
        if manager.uuid == uuid:
            servers = tuple(
                dataclasses.replace(s, node_states=node_states) if s.server == address else s
                for s in manager.servers
            )
            manager = dataclasses.replace(manager, servers=servers)
        managers.append(manager)
    return dataclasses.replace(state, key_managers=tuple(managers))


def _healed_other(state: ClusterState, baseline: ClusterState, incident: Incident) -> ClusterState:
    if incident.kind == "kmip_server_down":
        current = _server(state, incident.config_uuid, incident.server)
        if current is None:
            return state
        before = _server(baseline, incident.config_uuid, incident.server)
        states = dict(current.node_states)
        original = before.node_states.get(incident.node) if before else None
        if original is None:
            states.pop(incident.node, None)
        else:
            states[incident.node] = original
        return _with_server(state, incident.config_uuid, incident.server, states)
    before = next((c for c in baseline.cloud_kms if c.uuid == incident.config_uuid), None)
    return _with_cloud(state, incident.config_uuid, before.service if before else HEALTHY)


def _healed(cluster: SimulatedCluster, incident: Incident) -> ClusterState:
    state, baseline = cluster.state, cluster.baseline
    if incident.kind in OTHER_KINDS:
        return _healed_other(state, baseline, incident)
    if incident.kind == "http_503":
        faults = dataclasses.replace(
            state.faults,
            http_status=baseline.faults.http_status,
            retry_after_s=baseline.faults.retry_after_s,
        )
        return dataclasses.replace(state, faults=faults)
    if incident.kind == "slow":
        faults = dataclasses.replace(state.faults, latency_s=baseline.faults.latency_s)
        return dataclasses.replace(state, faults=faults)
    akv = state.akv(incident.akv_uuid)
    if akv is None or incident.kind == "key_expired":  # only logged, nothing to put back
        return state
    before = baseline.akv(incident.akv_uuid)
    if incident.kind == "vault_outage":
        return _with_akv(state, dataclasses.replace(akv, azure=before.azure if before else HEALTHY))
    if incident.kind == "kek_unavailable":
        return _with_akv(state, dataclasses.replace(akv, kek=before.kek if before else HEALTHY))
    ekmip = dict(akv.ekmip)
    original = before.ekmip.get(incident.node) if before else None
    if original is None:
        ekmip.pop(incident.node, None)
    else:
        ekmip[incident.node] = original
    return _with_akv(state, dataclasses.replace(akv, ekmip=ekmip))
