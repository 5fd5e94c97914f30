"""The simulated barbican-kms endpoint: OpenStack Barbican configurations (9.17.1 and later).

From NetApp's REST reference (GET /security/barbican-kms, "Introduced In: 9.17"): `enabled` and
`configuration` as AKV has them (several configurations per SVM, one active), the advanced
`barbican_reachability` and `state` (`cluster_state`: an SVM-KEK present on all nodes) and no
`ekmip_reachability` at all: ONTAP refuses that field with 262197. The one GET error NetApp
documents is 65539801 (unreachable), the simulator's code for it; the KEK message is NetApp's
example's wording, its code (65537551, AKV's KEK error) the simulator's choice: NetApp gives none.
NetApp's EMS reference has no Barbican events.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from ontap_simulator.cloud_kms import Provider, endpoint, merge
from ontap_simulator.model import PATCH_EXTENSIONS, CloudKms, ClusterState


def _generate(rng: random.Random, prefix: str, word: str) -> tuple[tuple[str, Any], ...]:
    site = prefix.split("-")[0]
    secret = "-".join(f"{rng.getrandbits(bits):0{bits // 4}x}" for bits in (32, 16, 16, 16, 48))
    return (
        ("key_id", f"https://barbican.{site}.openstack.example:9311/v1/secrets/{secret}/"),
        ("keystone_url", f"https://keystone.{site}.openstack.example:5000/v3/auth/tokens"),
        ("application_cred_id", f"ontap-{prefix}-{word}"),
        ("timeout", 10),
        ("verify", True),
        ("verify_host", True),
    )


def _unreachable(config: CloudKms, reason: str) -> str:
    return f"Barbican KMS is not reachable from all nodes - reason: {reason}"


def _kek(nodes: Sequence[str]) -> str:
    reason = "Unable to unwrap the SVM-KEK using the Barbican key."
    per_node = " ".join(f"Node: {node}. Reason: {reason}" for node in nodes)
    return (
        "Top-level internal key encryption key is unavailable on the following nodes with the "
        f"associated reasons: {per_node}"
    )


_FIELDS = [
    "key_id",
    "keystone_url",
    "application_cred_id",
    "timeout",
    "verify",
    "verify_host",
    "proxy_type",
    "proxy_host",
    "proxy_port",
    "proxy_username",
]

PROVIDER = Provider(
    keystore_type="barbican",
    title="Barbican KMS",
    patch_key="barbican_kms",
    path="/api/security/barbican-kms",
    since=(9, 17, 0),
    service_field="barbican_reachability",
    service_code="65539801",
    kek_code="65537551",
    service_message=_unreachable,
    kek_message=_kek,
    fields=dict.fromkeys(_FIELDS),
    ekmip=False,
    reports_enabled=True,
    generate=_generate,
)
ENDPOINT = endpoint(PROVIDER)


def _merge(state: ClusterState, patch: Any) -> ClusterState:
    return merge(PROVIDER, state, patch)


PATCH_EXTENSIONS[PROVIDER.patch_key] = _merge
