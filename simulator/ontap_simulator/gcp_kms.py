"""The simulated gcp-kms endpoint: Google Cloud KMS configurations, by release.

From NetApp's REST reference (GET /security/gcp-kms): the endpoint is "Introduced In: 9.9"
(9.9.1 offers it to Cloud Volumes Service only; ONTAP uses it from 9.10.1); `port`,
`verify_ip`, `verify_host`, `cloudkms_host`, `oauth_host`, `oauth_url`, `privileged_account`,
`caller_account` from 9.14; `authentication_method`, `gce_metadata_server` from 9.17. The codes
are typed integer in the 9.9.1 and 9.11.1 references and string from 9.15.1 (the release between
is not documented): the simulator sends integers before 9.12. The failing `state` (65537708,
its message) is NetApp's example; the unreachable message is the simulator's wording.
"""

from __future__ import annotations

import random
from typing import Any

from ontap_simulator.cloud_kms import Provider, endpoint, merge
from ontap_simulator.model import PATCH_EXTENSIONS, CloudKms, ClusterState

LOCATIONS = ("global", "europe-west1", "us-east1", "asia-southeast1")


def _generate(rng: random.Random, prefix: str, word: str) -> tuple[tuple[str, Any], ...]:
    project = f"ontap-{prefix}-{rng.getrandbits(16):04x}"
    return (
        ("project_id", project),
        ("key_ring_name", f"ontap-{word}"),
        ("key_ring_location", rng.choice(LOCATIONS)),
        ("key_name", f"{word}-kek"),
        ("authentication_method", "application_credentials_key"),
        ("cloudkms_host", "cloudkms.googleapis.com"),
        ("oauth_host", "oauth2.googleapis.com"),
        ("oauth_url", "https://oauth2.googleapis.com/token"),
        ("port", 443),
        ("verify_host", True),
        ("verify_ip", False),
    )


def _unreachable(config: CloudKms, reason: str) -> str:
    return f"Google Cloud KMS is not reachable from all nodes - reason: {reason}"


def _kek(nodes: Any) -> str:
    return (
        "The Google Cloud Key Management Service key protection is unavailable on the "
        f"following nodes: {', '.join(nodes)}."
    )


_FIELDS = [
    "project_id",
    "key_ring_name",
    "key_ring_location",
    "key_name",
    "authentication_method",
    "caller_account",
    "privileged_account",
    "gce_metadata_server",
    "cloudkms_host",
    "oauth_host",
    "oauth_url",
    "port",
    "proxy_type",
    "proxy_host",
    "proxy_port",
    "proxy_username",
    "verify_host",
    "verify_ip",
]

PROVIDER = Provider(
    keystore_type="gcp",
    title="Google Cloud KMS",
    patch_key="gcp_kms",
    path="/api/security/gcp-kms",
    since=(9, 9, 0),
    service_field="google_reachability",
    service_code="65537730",
    kek_code="65537708",
    service_message=_unreachable,
    kek_message=_kek,
    fields=dict.fromkeys(_FIELDS),
    introduced={
        **dict.fromkeys(
            (
                "port",
                "verify_ip",
                "verify_host",
                "cloudkms_host",
                "oauth_host",
                "oauth_url",
                "privileged_account",
                "caller_account",
            ),
            (9, 14, 0),
        ),
        "authentication_method": (9, 17, 0),
        "gce_metadata_server": (9, 17, 0),
    },
    integer_codes_before=(9, 12, 0),
    generate=_generate,
    ems="ekmip.gckms",
)
ENDPOINT = endpoint(PROVIDER)


def _merge(state: ClusterState, patch: Any) -> ClusterState:
    return merge(PROVIDER, state, patch)


PATCH_EXTENSIONS[PROVIDER.patch_key] = _merge
