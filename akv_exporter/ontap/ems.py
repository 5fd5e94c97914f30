"""GET /api/support/ems/events (key-manager events only) -> typed EMS events.

ONTAP's events carry ``index`` (increasing per node), ``time`` (ISO 8601 with an offset),
``message.name`` and ``message.severity``, ``node.name``, ``log_message`` and ``parameters`` (name
and value pairs; NetApp's EMS reference names the SVM ``svm`` in the ``ekmip.akv.*`` events and
``vserver`` in the other key-manager events). The exporter asks for the key managers' events by
name (each provider's ``ems_events``, as ``|`` alternatives:
``message.name=ekmip.akv.*|ekmip.gckms.*``) and a time range, as NetApp's query syntax allows
(``time=>2026-11-29T00:00:00Z``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from akv_exporter.ontap.key_manager_endpoint import fold_message, name_of, text
from akv_exporter.ontap.key_manager_registry import PROVIDERS

PATH = "/api/support/ems/events"
# Every provider's key-manager events, as ONTAP's `|` alternatives: "ekmip.akv.*|ekmip.gckms.*|...".
NAMES = "|".join(name for provider in PROVIDERS for name in provider.ems_events)
FIELDS = "index,time,node.name,message.name,message.severity,log_message,parameters"
# The parameters that name the SVM an event is about, as NetApp's EMS reference spells them.
SVM_PARAMETERS = ("svm", "vserver")
LOG_MESSAGE_LIMIT = 512


@dataclass(frozen=True, slots=True)
class EmsEvent:
    """One EMS event as ONTAP logged it."""

    node: str
    index: int
    time: float  # Unix time
    name: str  # message.name, e.g. "ekmip.akv.volOffline"
    severity: str
    log_message: str
    svm: str = ""  # the SVM the event names (parameter svm or vserver); "" when none


def query(since: float) -> dict[str, str]:
    """Return the query parameters for the key managers' events logged at or after ``since``."""
    moment = datetime.fromtimestamp(since, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"message.name": NAMES, "time": f">={moment}", "fields": FIELDS}


def parse_time(value: Any) -> float | None:
    """Return ONTAP's ISO 8601 ``time`` as Unix time; None when unreadable or without offset."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None  # ONTAP always sends an offset; a naive time would be a guess
    return moment.timestamp()


def svm_of(parameters: Any) -> str:
    """Return the SVM an event's ``parameters`` name, or "" when they name none."""
    if not isinstance(parameters, list):
        return ""
    for parameter in parameters:
        if isinstance(parameter, Mapping) and parameter.get("name") in SVM_PARAMETERS:
            return text(parameter.get("value"))
    return ""


def parse_event(record: Any) -> EmsEvent | None:
    """Return the event in ``record``; None when it lacks node, index, time or name."""
    if not isinstance(record, Mapping):
        return None
    index, moment = record.get("index"), parse_time(record.get("time"))
    node, name = name_of(record.get("node")), name_of(record.get("message"))
    if isinstance(index, bool) or not isinstance(index, int) or moment is None:
        return None
    if not node or not name:
        return None
    message = record.get("message")
    severity = text(message.get("severity")) if isinstance(message, Mapping) else ""
    return EmsEvent(
        node=node,
        index=index,
        time=moment,
        name=name,
        severity=severity,
        log_message=fold_message(record.get("log_message"))[:LOG_MESSAGE_LIMIT],
        svm=svm_of(record.get("parameters")),
    )


def parse_events(records: Iterable[Any]) -> tuple[tuple[EmsEvent, ...], int]:
    """Return the usable events of ``records`` in (time, node, index) order, and how many not."""
    events, skipped = [], 0
    for record in records:
        event = parse_event(record)
        if event is None:
            skipped += 1
        else:
            events.append(event)
    events.sort(key=lambda e: (e.time, e.node, e.index))
    return tuple(events), skipped
