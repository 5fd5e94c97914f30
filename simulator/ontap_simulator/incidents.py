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
from typing import TextIO

from ontap_simulator import ems
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
        kind = self.rng.choice(kinds)
        duration = self.rng.uniform(*self.timing.duration_s)
        heals_at = self.clock() + duration
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
                # Someone renewed the key: ONTAP re-wraps the KEK with the new version.
                _log(cluster, "ekmip.akv.keyVersionChanged", akv, incident.node)
            self._say(f"incident ended: {incident.description}")


def _log(cluster: SimulatedCluster, name: str, akv: Akv, node_name: str) -> None:
    state = cluster.state
    node = next((n for n in state.nodes if n.name == node_name), state.nodes[0])
    parameters, text = ems.akv_event(name, ems.akv_facts(state, akv.svm_name, node.name))
    cluster.events.append(node.name, node.uuid, name, parameters=parameters, log_message=text)


def _with_akv(state: ClusterState, changed: Akv) -> ClusterState:
    akvs = tuple(changed if akv.uuid == changed.uuid else akv for akv in state.akvs)
    return dataclasses.replace(state, akvs=akvs)


def _healed(cluster: SimulatedCluster, incident: Incident) -> ClusterState:
    state, baseline = cluster.state, cluster.baseline
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
