"""The simulated aws-kms endpoint: AWS KMS configurations, by release.

From NetApp's REST reference (GET /security/aws-kms): the endpoint is new in 9.12 (the 9.12.1
page already has `amazon_reachability`, `ekmip_reachability` and `state`); no field carries a
later "Introduced in"; codes are strings. The failure messages follow NetApp's descriptions
("Amazon KMS is not reachable from all nodes - <reason>.", "AWS KMS key protection is
unavailable on the following nodes: node1, node2."); the unreachable code is the GET error
65537915, the unavailable KEK's the GET error 65537551 (NetApp gives no example code for it).
"""

from __future__ import annotations

import random
from typing import Any

from ontap_simulator.cloud_kms import Provider, endpoint, merge
from ontap_simulator.model import PATCH_EXTENSIONS, CloudKms, ClusterState

REGIONS = ("eu-west-1", "eu-central-1", "us-east-1", "us-west-2", "ap-southeast-1")
_ALPHANUMERIC = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"


def _generate(rng: random.Random, prefix: str, word: str) -> tuple[tuple[str, Any], ...]:
    region = rng.choice(REGIONS)
    account = rng.randrange(10**11, 10**12)
    key = "-".join(f"{rng.getrandbits(bits):0{bits // 4}x}" for bits in (32, 16, 16, 16, 48))
    return (
        ("region", region),
        ("key_id", f"arn:aws:kms:{region}:{account}:key/{key}"),
        ("access_key_id", "AKIA" + "".join(rng.choice(_ALPHANUMERIC) for _ in range(16))),
        ("service", "kms"),
        ("default_domain", "amazonaws.com"),
        ("host", f"kms.{region}.amazonaws.com"),
        ("port", 443),
        ("polling_period", 60),
        ("timeout", 10),
        ("verify", True),
        ("verify_host", True),
        ("verify_ip", False),
        ("skip_verify", False),
    )


def _unreachable(config: CloudKms, reason: str) -> str:
    return f"Amazon KMS is not reachable from all nodes - {reason}."


def _kek(nodes: Any) -> str:
    return f"AWS KMS key protection is unavailable on the following nodes: {', '.join(nodes)}."


_FIELDS = [
    "region",
    "key_id",
    "access_key_id",
    "encryption_context",
    "service",
    "default_domain",
    "host",
    "port",
    "polling_period",
    "timeout",
    "proxy_type",
    "proxy_host",
    "proxy_port",
    "proxy_username",
    "skip_verify",
    "verify",
    "verify_host",
    "verify_ip",
]

PROVIDER = Provider(
    keystore_type="aws",
    title="AWS KMS",
    patch_key="aws_kms",
    path="/api/security/aws-kms",
    since=(9, 12, 0),
    service_field="amazon_reachability",
    service_code="65537915",
    kek_code="65537551",
    service_message=_unreachable,
    kek_message=_kek,
    fields=dict.fromkeys(_FIELDS),
    generate=_generate,
    ems="ekmip.awskms",
)
ENDPOINT = endpoint(PROVIDER)


def _merge(state: ClusterState, patch: Any) -> ClusterState:
    return merge(PROVIDER, state, patch)


PATCH_EXTENSIONS[PROVIDER.patch_key] = _merge
