"""The value types of ONTAP's own verdict on key managers, as a simulated cluster holds them.

A leaf module: ``model.ClusterState`` holds these values, the endpoint modules
(key_manager_configs.py, volumes.py, ems.py) render and change them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class HealthPolicy:
    """One keystore type's health monitor policy; NetApp's example has both true."""

    enabled: bool = True
    manage_volume_offline: bool = True


DEFAULT_POLICY = HealthPolicy()


@dataclass(frozen=True, slots=True)
class KeyManagerConfig:
    """A cluster's key-manager options; a keystore type left out of the policy has the default."""

    health_monitor_polling_interval: int = 15  # minutes, 15-30
    cloud_kms_retry_count: int = 3
    cc_mode_enabled: bool = False
    health_monitor_policy: Mapping[str, HealthPolicy] = field(default_factory=dict)

    def policy(self, keystore_type: str) -> HealthPolicy:
        """Return the health monitor policy of one keystore type."""
        return self.health_monitor_policy.get(keystore_type, DEFAULT_POLICY)


@dataclass(frozen=True, slots=True)
class SvmVolumes:
    """One SVM's volumes: the first ``encrypted`` are encrypted, the first ``offline`` offline."""

    svm: str
    svm_uuid: str
    count: int
    encrypted: int
    offline: int = 0  # of the encrypted ones


@dataclass(frozen=True, slots=True)
class PastEvent:
    """An event a cluster's EMS log starts with: so long before the simulator started."""

    seconds_ago: float
    node: str
    name: str
    svm: str = ""  # for ekmip.akv events: whose AKV configuration ("" = cluster scope)
