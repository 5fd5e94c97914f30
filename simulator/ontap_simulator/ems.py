"""GET /api/support/ems/events: each cluster's EMS event log, newest first.

The log is history, not state: it only grows (the oldest events drop out past ``LOG_SIZE``),
each node numbers its events with an increasing ``index``, and a reset of the cluster does not
erase it (ONTAP's indexes never go back). Events come from the health monitor (health.py), from
the control API, and from a short history made at start.

Which ``ekmip.akv.*`` events a release can log follows NetApp's EMS reference: the 9.10.1
reference lists ``available``, ``keyExpired``, ``keyVersionChanged``, ``notAvailable`` and
``volOffline``; ``volOnline`` appears in the 9.13.1 reference. Names, severities and parameter
names are NetApp's (its "ekmip.akv events" page); the log texts are the simulator's own wording.

The other key managers' events, names, severities and parameters from NetApp's EMS reference
(the "ekmip.gckms", "ekmip.awskms", "km.keyserver" and "km.keyretrieve" pages): ``ekmip.gckms.*``
from 9.10.1 (its 9.10.1 reference has the page), ``ekmip.awskms.*`` from 9.12.1 (absent from
the 9.10.1 and 9.11.1 references); their ``volOnline``, like AKV's, from 9.13.1 (the release
that added it is not stated: the simulator's reading). ``km.keyserver.*`` and
``km.keyretrieve.failed`` on every release simulated (NetApp names no release for them: the
simulator's reading). NetApp documents no Barbican events.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ontap_simulator.model import Akv, CloudKms, ClusterState, KeyManager
from ontap_simulator.query import Kind, answer_collection
from ontap_simulator.records import LINKS, NODES_PATH, REF, Tree, links
from ontap_simulator.verdict import PastEvent

PATH = "/api/support/ems/events"
LOG_SIZE = 5000
TREE: Tree = {
    "_links": LINKS,
    "index": None,
    "time": None,
    "message": {"name": None, "severity": None, "_links": LINKS},
    "node": REF,
    "log_message": None,
    "parameters": {"name": None, "value": None},
    "source": None,
}
# NetApp's example: fields=message.name still returns index, node and _links.
KIND = Kind(
    TREE,
    default_fields=("index", "time", "message", "node", "log_message"),
    always=("index", "node", "_links"),
    cursor=("node.name", "index"),
)

SEVERITIES = ("emergency", "alert", "error", "notice", "informational", "debug")
AKV_FROM = (9, 10, 0)


@dataclass(frozen=True, slots=True)
class Message:
    """One catalogue entry: the release that has it, severity, parameters, the text's wording."""

    since: tuple[int, int, int]
    severity: str
    parameters: tuple[str, ...]
    text: Callable[[Mapping[str, str]], str]


_CONFIG = ("svm", "configName", "name")
# The texts are the simulator's; ``f`` holds the facts of akv_facts().
CATALOGUE: dict[str, Message] = {
    "ekmip.akv.notAvailable": Message(
        AKV_FROM,
        "alert",
        _CONFIG,
        lambda f: (
            f'The Azure Key Vault "{f["name"]}" ({f["configName"]}) of SVM "{f["svm"]}" is not '
            f'available for key operations from node "{f["node"]}".'
        ),
    ),
    "ekmip.akv.available": Message(
        AKV_FROM,
        "notice",
        _CONFIG,
        lambda f: (
            f'The Azure Key Vault "{f["name"]}" ({f["configName"]}) of SVM "{f["svm"]}" is '
            f'available again from node "{f["node"]}".'
        ),
    ),
    "ekmip.akv.volOffline": Message(
        AKV_FROM,
        "alert",
        ("svm", "keyId", "name", "configName"),
        lambda f: (
            f'SVM "{f["svm"]}" is blocked and its {f["volumes"]} encrypted volumes are offline: '
            f'the key "{f["keyId"]}" of the Azure Key Vault "{f["name"]}" could not be accessed.'
        ),
    ),
    "ekmip.akv.volOnline": Message(
        (9, 13, 0),
        "notice",
        ("svm", "keyId", "name", "configName"),
        lambda f: (
            f'The {f["volumes"]} encrypted volumes of SVM "{f["svm"]}" are back online: the key '
            f'"{f["keyId"]}" of the Azure Key Vault "{f["name"]}" is accessible again.'
        ),
    ),
    "ekmip.akv.keyExpired": Message(
        AKV_FROM,
        "error",
        ("keyId", "svm", "configName", "name"),
        lambda f: (
            f'The current version of the key "{f["keyId"]}" of the Azure Key Vault '
            f'"{f["name"]}" ({f["configName"]}) of SVM "{f["svm"]}" has expired.'
        ),
    ),
    "ekmip.akv.keyVersionChanged": Message(
        AKV_FROM,
        "notice",
        ("svm", "configName", "name", "oldKeyVersion", "newKeyVersion"),
        lambda f: (
            f'The key version of the Azure Key Vault "{f["name"]}" ({f["configName"]}) of SVM '
            f'"{f["svm"]}" changed from {f["oldKeyVersion"]} to {f["newKeyVersion"]}.'
        ),
    ),
}


def _cloud(
    since: tuple[int, int, int], severity: str, parameters: tuple[str, ...], text: str
) -> Message:
    """Return a catalogue entry whose text is ``text`` formatted with the facts."""
    return Message(since, severity, parameters, lambda f: text.format_map(f))


_GCKMS = ("projectId", "keyringLocation", "keyringName", "keyName", "vserver")
_GCKMS_OFFLINE = ("vserver", "keyName", "projectId", "keyringLocation", "keyringName")
_GCKMS_KEY = '"{keyName}" of key ring "{keyringName}" ({keyringLocation}, project {projectId})'
_AWSKMS = ("region", "keyId", "vserver")
_AWSKMS_OFFLINE = ("vserver", "keyId", "region")
GCKMS_FROM = (9, 10, 0)
AWSKMS_FROM = (9, 12, 0)
VOL_ONLINE_FROM = (9, 13, 0)
CATALOGUE.update(
    {
        "ekmip.gckms.notAvailable": _cloud(
            GCKMS_FROM, "alert", _GCKMS,
            'The Google Cloud KMS key ' + _GCKMS_KEY + ' of SVM "{vserver}" is not available '
            'for key operations from node "{node}".',
        ),
        "ekmip.gckms.available": _cloud(
            GCKMS_FROM, "notice", _GCKMS,
            'The Google Cloud KMS key ' + _GCKMS_KEY + ' of SVM "{vserver}" is available '
            'again from node "{node}".',
        ),
        "ekmip.gckms.volOffline": _cloud(
            GCKMS_FROM, "alert", _GCKMS_OFFLINE,
            'SVM "{vserver}" is blocked and its {volumes} encrypted volumes are offline: the '
            'Google Cloud KMS key ' + _GCKMS_KEY + ' could not be accessed.',
        ),
        "ekmip.gckms.volOnline": _cloud(
            VOL_ONLINE_FROM, "notice", _GCKMS_OFFLINE,
            'The {volumes} encrypted volumes of SVM "{vserver}" are back online: the Google '
            'Cloud KMS key ' + _GCKMS_KEY + ' is accessible again.',
        ),
        "ekmip.gckms.keyVersionChg": _cloud(
            GCKMS_FROM, "notice", (*_GCKMS[:4], "vserver", "oldKeyVersion", "newKeyVersion"),
            'The version of the Google Cloud KMS key ' + _GCKMS_KEY + ' of SVM "{vserver}" '
            "changed from {oldKeyVersion} to {newKeyVersion}; the KEK is re-wrapped.",
        ),
        "ekmip.awskms.notAvailable": _cloud(
            AWSKMS_FROM, "alert", _AWSKMS,
            'The AWS KMS key "{keyId}" ({region}) of SVM "{vserver}" is not available for key '
            'operations from node "{node}".',
        ),
        "ekmip.awskms.available": _cloud(
            AWSKMS_FROM, "notice", _AWSKMS,
            'The AWS KMS key "{keyId}" ({region}) of SVM "{vserver}" is available again from '
            'node "{node}".',
        ),
        "ekmip.awskms.volOffline": _cloud(
            AWSKMS_FROM, "alert", _AWSKMS_OFFLINE,
            'SVM "{vserver}" is blocked and its {volumes} encrypted volumes are offline: the AWS '
            'KMS key "{keyId}" ({region}) could not be accessed.',
        ),
        "ekmip.awskms.volOnline": _cloud(
            max(AWSKMS_FROM, VOL_ONLINE_FROM), "notice", _AWSKMS_OFFLINE,
            'The {volumes} encrypted volumes of SVM "{vserver}" are back online: the AWS KMS key '
            '"{keyId}" ({region}) is accessible again.',
        ),
        "ekmip.awskms.keyChg": _cloud(
            AWSKMS_FROM, "notice", ("keyId", "region", "vserver"),
            'The key material of the AWS KMS key "{keyId}" ({region}) of SVM "{vserver}" '
            "changed.",
        ),
        "ekmip.awskms.keyVersionChg": _cloud(
            AWSKMS_FROM, "notice", (*_AWSKMS, "oldKeyVersion", "newKeyVersion"),
            'The version of the AWS KMS key "{keyId}" ({region}) of SVM "{vserver}" changed '
            "from {oldKeyVersion} to {newKeyVersion}.",
        ),
        "km.keyserver.notavailable": _cloud(
            (9, 8, 0), "alert", ("address", "vserver", "keyserver_status"),
            'The external key server {address} of SVM "{vserver}" is not available from node '
            '"{node}": {keyserver_status}.',
        ),
        "km.keyserver.available": _cloud(
            (9, 8, 0), "notice", ("address", "vserver"),
            'The external key server {address} of SVM "{vserver}" is available again from node '
            '"{node}".',
        ),
        "km.keyretrieve.failed": _cloud(
            (9, 8, 0), "alert", ("node", "vserver", "vserverId", "vserverUuid"),
            'Node "{node}" could not retrieve the complete set of keys of SVM "{vserver}" from '
            "its key servers at boot.",
        ),
    }
)  # fmt: skip
# The EMS groups the catalogue covers whole: a name of theirs it lacks is no NetApp event.
CATALOGUED_GROUPS = (
    "ekmip.akv.",
    "ekmip.gckms.",
    "ekmip.awskms.",
    "km.keyserver.",
    "km.keyretrieve.",
)

# Events of other subsystems (names from NetApp's examples) so that a log is not all AKV.
BACKGROUND = ("raid.aggr.log.CP.count", "callhome.spares.low", "raid.autoPart.disabled")


@dataclass(frozen=True, slots=True)
class EmsEvent:
    """One logged event; ``time`` is wall-clock seconds since the epoch."""

    node: str
    node_uuid: str
    index: int
    time: float
    name: str
    severity: str
    log_message: str
    parameters: tuple[tuple[str, str], ...] = ()
    source: str = ""


def available_in(name: str, version: tuple[int, int, int]) -> bool:
    """Return whether the release's EMS catalogue has the event (others are not restricted)."""
    message = CATALOGUE.get(name)
    if message is None:
        return not name.startswith(CATALOGUED_GROUPS)
    return version >= message.since


def key_version(key_id: str) -> str:
    """Return the version part of an AKV key id (".../keys/<name>/<version>")."""
    return key_id.rstrip("/").rsplit("/", 1)[-1] if key_id else ""


def previous_key_id(key_id: str) -> str:
    """Return ``key_id`` with the version it had before the current one (a stable made-up one)."""
    previous = hashlib.sha256(f"{key_id}/previous".encode()).hexdigest()[:32]
    return key_id.rstrip("/").rsplit("/", 1)[0] + "/" + previous if key_id else ""


def renewed(akv: Akv) -> Akv:
    """Return ``akv`` after its key got a new version (auto-rotated or renewed at the vault):
    the configuration's key id names the new, current version from then on."""
    fresh = hashlib.sha256(f"{akv.key_id}/next".encode()).hexdigest()[:32]
    return dataclasses.replace(akv, key_id=akv.key_id.rstrip("/").rsplit("/", 1)[0] + "/" + fresh)


def renew_key(state: ClusterState, svm: str) -> tuple[ClusterState, str]:
    """Return the cluster after the key of ``svm``'s AKV configuration got a new version, and
    the key id it replaced ("" and the cluster unchanged when the SVM has none)."""
    akv = next(
        (a for a in state.akvs if a.svm_name == svm and state.active(a)),
        next((a for a in state.akvs if a.svm_name == svm), None),
    )
    if akv is None:
        return state, ""
    fresh = renewed(akv)
    akvs = tuple(fresh if a.uuid == akv.uuid else a for a in state.akvs)
    return dataclasses.replace(state, akvs=akvs), akv.key_id


def akv_facts(
    state: ClusterState, svm: str, node: str, volumes: int = 0, old_key_id: str = ""
) -> dict[str, str]:
    """Return what an ekmip.akv event can say about ``svm``'s configuration ("" = cluster scope)
    on ``node``: NetApp's parameter names, plus ``node`` and ``volumes`` for the text.

    keyVersionChanged names the configuration's current key version as the new one (NetApp:
    "newKeyVersion: Current key version") and ``old_key_id``'s version, or else a made-up
    previous one, as the old one: a change just made passes the key id it replaced.
    """
    akv = next(
        (a for a in state.akvs if a.svm_name == svm and state.active(a)),
        next((a for a in state.akvs if a.svm_name == svm), None),
    )
    key_id = akv.key_id if akv else ""
    return {
        "svm": svm or state.name,  # the cluster-scoped configuration belongs to the admin SVM
        "configName": akv.configuration_name if akv else "",
        "name": akv.vault if akv else "",
        "keyId": key_id,
        "oldKeyVersion": key_version(old_key_id or previous_key_id(key_id)),
        "newKeyVersion": key_version(key_id),
        "node": node,
        "volumes": str(volumes),
    }


def cloud_facts(
    state: ClusterState, config: CloudKms | None, node: str, volumes: int = 0, svm: str = ""
) -> dict[str, str]:
    """Return what an ekmip.gckms or ekmip.awskms event can say about a configuration on
    ``node`` (``svm``: the SVM the event names, default the configuration's)."""
    value = config.attribute if config is not None else (lambda _name, default="": default)
    key = str(value("key_name") or value("key_id"))
    return {
        "vserver": svm or (config.svm_name if config else "") or state.name,
        "projectId": str(value("project_id")),
        "keyringLocation": str(value("key_ring_location")),
        "keyringName": str(value("key_ring_name")),
        "keyName": str(value("key_name")),
        "region": str(value("region")),
        "keyId": str(value("key_id")),
        "oldKeyVersion": hashlib.sha256(f"{key}/previous".encode()).hexdigest()[:8],
        "newKeyVersion": hashlib.sha256(f"{key}/current".encode()).hexdigest()[:8],
        "node": node,
        "volumes": str(volumes),
    }


def kmip_facts(
    state: ClusterState, manager: KeyManager | None, address: str, node: str, status: str = ""
) -> dict[str, str]:
    """Return what a km.keyserver or km.keyretrieve event can say about a key manager's server
    (or the key manager: ``address`` empty) on ``node``."""
    svm = (manager.svm_name if manager else "") or state.name
    svm_uuid = (manager.svm_uuid if manager else "") or state.uuid
    return {
        "address": address,
        "vserver": svm,
        "keyserver_status": status or "not_responding",
        "node": node,
        "vserverId": str(int(hashlib.sha256(svm_uuid.encode()).hexdigest()[:4], 16) % 1000 + 2),
        "vserverUuid": svm_uuid,
    }


def facts_for(state: ClusterState, name: str, svm: str, node: str) -> dict[str, str]:
    """Return the facts of a catalogued event about ``svm``'s configuration of the event's key
    manager ("" = the cluster-scoped one), for the control API."""
    if name.startswith("ekmip.akv."):
        return akv_facts(state, svm, node)
    if name.startswith("ekmip."):
        provider = "gcp" if name.startswith("ekmip.gckms.") else "aws"
        configs = state.cloud(provider)
        config = next((c for c in configs if c.svm_name == svm), configs[0] if configs else None)
        return cloud_facts(state, config, node, svm=svm)
    managers = [m for m in state.key_managers if m.kind == "kmip"]
    manager = next((m for m in managers if m.svm_name == svm), managers[0] if managers else None)
    address = manager.servers[0].server if manager and manager.servers else ""
    facts = kmip_facts(state, manager, address, node)
    facts["vserver"] = svm or facts["vserver"]
    return facts


def akv_event(name: str, facts: Mapping[str, str]) -> tuple[dict[str, str], str]:
    """Return (parameters, log_message) of a catalogued ekmip.akv event from its facts."""
    message = CATALOGUE[name]
    parameters = {key: facts[key] for key in message.parameters}
    return parameters, f"{name}: {message.text(facts)}"


def _iso(moment: float) -> str:
    return datetime.datetime.fromtimestamp(moment, datetime.UTC).isoformat(timespec="seconds")


class EventLog:
    """One cluster's EMS log: append-only, numbered per node, rendered newest first."""

    def __init__(self, state: ClusterState, now: Callable[[], float] = time.time) -> None:
        self._now = now
        self._events: list[EmsEvent] = []
        self._next_index: dict[str, int] = {}
        self._rendered: tuple[dict[str, Any], ...] | None = None
        self._cluster = state.name
        # The history is written on first use: a thousand clusters start without the cost.
        self._history: tuple[ClusterState, float] | None = (state, now())

    def _write_history(self) -> None:
        if self._history is None:
            return
        state, started = self._history
        self._history = None
        for past in sorted(state.ems_history, key=lambda p: -p.seconds_ago):
            node = next((n for n in state.nodes if n.name == past.node), None)
            if node is None:
                continue
            if past.name in CATALOGUE:
                facts = facts_for(state, past.name, past.svm, node.name)
                if past.name == "ekmip.akv.keyExpired" and _renewed_later(state, past):
                    # The version that expired is the one the later change replaced.
                    facts["keyId"] = previous_key_id(facts["keyId"])
                parameters, text = akv_event(past.name, facts)
                self.append(
                    node.name, node.uuid, past.name, parameters=parameters, log_message=text,
                    when=started - past.seconds_ago,
                )  # fmt: skip
            else:
                self.append(
                    node.name, node.uuid, past.name, severity="notice",
                    log_message=f"{past.name}: logged before the simulator started.",
                    when=started - past.seconds_ago,
                )  # fmt: skip

    def __len__(self) -> int:
        self._write_history()
        return len(self._events)

    def _first_index(self, node: str) -> int:
        # Each node's numbering starts somewhere of its own, as on a cluster that has run a while.
        digest = hashlib.sha256(f"{self._cluster}/{node}".encode()).digest()
        return 1000 + int.from_bytes(digest[:2], "big") % 9000

    def append(
        self,
        node: str,
        node_uuid: str,
        name: str,
        *,
        severity: str | None = None,
        log_message: str | None = None,
        parameters: Mapping[str, str] | None = None,
        when: float | None = None,
    ) -> EmsEvent:
        """Log one event on ``node``; the severity defaults to the catalogue's (else notice)."""
        self._write_history()
        parameters = dict(parameters or {})
        message = CATALOGUE.get(name)
        if severity is None:
            severity = message.severity if message else "notice"
        if log_message is None:
            log_message = f"{name}: (no text)"
        index = self._next_index.get(node) or self._first_index(node)
        self._next_index[node] = index + 1
        event = EmsEvent(
            node=node,
            node_uuid=node_uuid,
            index=index,
            time=self._now() if when is None else when,
            name=name,
            severity=severity,
            log_message=log_message,
            parameters=tuple((k, str(v)) for k, v in parameters.items()),
            source="simulator",
        )
        self._events.append(event)
        if len(self._events) > LOG_SIZE:
            del self._events[: len(self._events) - LOG_SIZE]
        self._rendered = None
        return event

    def events(self) -> tuple[EmsEvent, ...]:
        """Return every event, oldest first."""
        self._write_history()
        return tuple(self._events)

    def records(self) -> tuple[dict[str, Any], ...]:
        """Return the records, newest first (as ONTAP lists them), rendered once per change."""
        self._write_history()
        if self._rendered is None:
            ordered = sorted(self._events, key=lambda e: e.time, reverse=True)
            self._rendered = tuple(render(event) for event in ordered)
        return self._rendered


def _renewed_later(state: ClusterState, expired: PastEvent) -> bool:
    """Return whether the history has a keyVersionChanged of the same SVM after ``expired``."""
    return any(
        p.name == "ekmip.akv.keyVersionChanged"
        and p.svm == expired.svm
        and p.seconds_ago < expired.seconds_ago
        for p in state.ems_history
    )


def render(event: EmsEvent) -> dict[str, Any]:
    """Return one event's record."""
    return {
        "index": event.index,
        "time": _iso(event.time),
        "message": {
            "name": event.name,
            "severity": event.severity,
            "_links": links(f"/api/support/ems/messages/{event.name}"),
        },
        "node": {
            "name": event.node,
            "uuid": event.node_uuid,
            "_links": links(f"{NODES_PATH}/{event.node_uuid}"),
        },
        "log_message": event.log_message,
        "parameters": [{"name": name, "value": value} for name, value in event.parameters],
        "source": event.source,
        "_links": links(f"{PATH}/{event.node}/{event.index}"),
    }


def answer(
    state: ClusterState, events: EventLog, path: str, params: list[tuple[str, str]]
) -> dict[str, Any]:
    """Return the collection GET answer; without a severity query, no ``debug`` events.

    NetApp: "The default behavior is to filter 'DEBUG' severity events. If those events are
    required, a severity query must be provided."
    """
    records = events.records()
    if not any(name == "message.severity" for name, _ in params):
        records = tuple(r for r in records if r["message"]["severity"] != "debug")
    return answer_collection(records, KIND, path, params)


ENDPOINTS = ((PATH, answer),)


def generate_history(rng: random.Random, state: ClusterState) -> tuple[PastEvent, ...]:
    """Return a plausible past for a generated cluster's log: a few other events on each node
    and, on some clusters, an old healed AKV outage, a key version change or an expired key."""
    history = [
        PastEvent(rng.uniform(600, 48 * 3600), node.name, rng.choice(BACKGROUND))
        for node in state.nodes
        for _ in range(rng.randint(1, 3))
    ]
    svms = [a.svm_name for a in state.akvs if state.active(a)]
    if state.version < AKV_FROM or not svms:
        return tuple(history)
    svm = rng.choice(svms)
    if rng.random() < 0.3:  # an outage a day and a half ago, healed 20 minutes later
        began = rng.uniform(30 * 3600, 40 * 3600)
        for node in state.nodes:
            history.append(PastEvent(began, node.name, "ekmip.akv.notAvailable", svm))
            history.append(PastEvent(began - 1200, node.name, "ekmip.akv.available", svm))
    if rng.random() < 0.2:
        node = rng.choice(state.nodes).name
        history.append(
            PastEvent(rng.uniform(2, 20) * 86400, node, "ekmip.akv.keyVersionChanged", svm)
        )
    if rng.random() < 0.05:
        # A key version that expired a few hours ago and was renewed 10 to 50 minutes later:
        # ONTAP logged keyVersionChanged, so the cluster starts healthy, with the story in its
        # log. (An expiry nobody renewed is a current problem: the incidents and the control
        # API make those; a generated fleet's past does not.)
        node = rng.choice(state.nodes).name
        expired = rng.uniform(1, 12) * 3600
        history.append(PastEvent(expired, node, "ekmip.akv.keyExpired", svm))
        renewed_at = expired - rng.uniform(600, 3000)
        history.append(PastEvent(renewed_at, node, "ekmip.akv.keyVersionChanged", svm))
    return tuple(history)
