"""GET /api/security/key-manager-configs -> ONTAP's key-manager health-monitor policy.

The answer is one object (not a collection), as in NetApp's ``KeyManagerConfig`` example::

    {"health_monitor_polling_interval": 15,
     "health_monitor_policy": {"akv": {"enabled": true, "manage_volume_offline": true}, ...}}

``health_monitor_polling_interval`` is in minutes (15 to 30); each policy says whether ONTAP's
health monitor runs for that key manager and whether it takes encrypted volumes offline when the
key manager stays unreachable. The endpoint exists from ONTAP 9.10.1 (NetApp's REST reference);
older releases answer 404, which means "unknown", never "off".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

PATH = "/api/security/key-manager-configs"
# NetApp asks for the policy by name: "Retrieves the key manager health monitor policy
# (fields=health_monitor_policy)" (GET /security/key-manager-configs, REST reference).
QUERY = f"{PATH}?fields=health_monitor_policy,health_monitor_polling_interval"
# Before the policy: the interval alone (the 9.10.1 CLI reference has
# `security key-manager config modify -health-monitor-polling-interval`). ONTAP refuses a
# `fields` entry it does not know (262197), so a release is asked only for what it has.
QUERY_WITHOUT_POLICY = f"{PATH}?fields=health_monitor_polling_interval"
# REST reference: GET /security/key-manager-configs "Introduced In: 9.10"
FIRST_RELEASE = (9, 10, 1)
# `security key-manager health policy show|modify` first appears in the 9.15.1 CLI reference, and
# NetApp's 9.12.1 and 9.13.1 REST examples carry no health_monitor_policy.
POLICY_RELEASE = (9, 15, 1)
# ONTAP's policy keys, in the order NetApp's schema lists them.
KEY_MANAGERS = ("akv", "aws", "barbican", "gcp", "ikp", "kmip", "okm")


@dataclass(frozen=True, slots=True)
class HealthMonitorPolicy:
    """One key manager's ``health_monitor_policy`` entry; None where ONTAP did not say."""

    key_manager: str
    enabled: bool | None
    manage_volume_offline: bool | None


@dataclass(frozen=True, slots=True)
class KeyManagerConfig:
    """What key-manager-configs says: the polling interval and one policy per key manager."""

    polling_interval_minutes: int | None
    policies: tuple[HealthMonitorPolicy, ...]

    def policy(self, key_manager: str) -> HealthMonitorPolicy | None:
        return next((p for p in self.policies if p.key_manager == key_manager), None)

    def takes_volumes_offline(self, key_manager: str) -> bool | None:
        """Return whether ONTAP takes encrypted volumes offline when ``key_manager`` stays
        unreachable (its manage_volume_offline); None when unknown."""
        policy = self.policy(key_manager)
        return None if policy is None else policy.manage_volume_offline

    @property
    def akv_takes_volumes_offline(self) -> bool | None:
        """Return whether ONTAP takes encrypted volumes offline for AKV; None when unknown."""
        return self.takes_volumes_offline("akv")


def _at_least(release: str, first: tuple[int, ...]) -> bool:
    """Return whether ``release`` ("9.9.1") is ``first`` or later; an unreadable one is."""
    numbers = []
    for part in release.split("."):
        if not part.isdigit():
            return True  # an unreadable release: ask, and let ONTAP's answer decide
        numbers.append(int(part))
    return tuple(numbers) >= first


def release_has_endpoint(release: str) -> bool:
    """Return whether ``release`` is one NetApp documents the endpoint for (9.10.1 on)."""
    return _at_least(release, FIRST_RELEASE)


def query_for(release: str) -> str:
    """Return the GET to send to ``release``: the policy from 9.15.1, the interval before."""
    return QUERY if _at_least(release, POLICY_RELEASE) else QUERY_WITHOUT_POLICY


def _flag(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


def parse_key_manager_config(body: Any) -> KeyManagerConfig:
    """Return the policy in ``body``; ValueError when the answer is not an object."""
    if not isinstance(body, Mapping):
        raise ValueError(f"answer is a {type(body).__name__}, not an object")
    interval = body.get("health_monitor_polling_interval")
    if isinstance(interval, bool) or not isinstance(interval, int) or interval <= 0:
        interval = None
    table = body.get("health_monitor_policy")
    table = table if isinstance(table, Mapping) else {}
    policies = []
    for key_manager in KEY_MANAGERS:
        entry = table.get(key_manager)
        if not isinstance(entry, Mapping):
            continue
        enabled, offline = _flag(entry.get("enabled")), _flag(entry.get("manage_volume_offline"))
        if enabled is None and offline is None:
            continue
        policies.append(HealthMonitorPolicy(key_manager, enabled, offline))
    return KeyManagerConfig(polling_interval_minutes=interval, policies=tuple(policies))
