"""The registry of key-manager providers: one line each; everything else follows from them.

Each provider module declares a ``KeyManagerEndpoint`` (ontap/key_manager_endpoint.py) and a
``KeyManagerProvider`` (ontap/key_manager_provider.py): what it asks ONTAP, and what its kind is
called and exposed as. Adding one is a module beside ``ontap/akv.py`` and a line here:
docs/architecture.md.
"""

from __future__ import annotations

from akv_exporter.ontap import akv, aws_kms, barbican_kms, gcp_kms, kmip
from akv_exporter.ontap.key_manager_endpoint import KeyManagerEndpoint
from akv_exporter.ontap.key_manager_provider import KeyManagerProvider

PROVIDERS: tuple[KeyManagerProvider, ...] = (
    akv.PROVIDER,
    gcp_kms.PROVIDER,
    aws_kms.PROVIDER,
    barbican_kms.PROVIDER,
    kmip.PROVIDER,
    kmip.OKM_PROVIDER,
)
BY_KIND: dict[str, KeyManagerProvider] = {provider.kind: provider for provider in PROVIDERS}
# The endpoints the poller asks, each once (key-managers lists kmip and okm), in that order.
ENDPOINTS: tuple[KeyManagerEndpoint, ...] = tuple(
    {provider.endpoint.path: provider.endpoint for provider in PROVIDERS}.values()
)
