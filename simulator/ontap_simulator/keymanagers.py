"""The key-manager endpoints every simulated cluster serves, one module each (records.py's
``SimulatedKeyManager``): the simulator's side of the exporter's seam (ontap/keymanagers.py).

Adding one is a module beside ``azure_key_vaults.py`` (a cloud key manager: a ``Provider`` of
cloud_kms.py, as ``gcp_kms.py`` declares), its state in the model and a line here:
docs/architecture.md.
"""

from __future__ import annotations

from ontap_simulator import (
    aws_kms,
    azure_key_vaults,
    barbican_kms,
    gcp_kms,
    key_managers,
    key_stores,
)
from ontap_simulator.cloud_kms import Provider
from ontap_simulator.records import SimulatedKeyManager

CLOUD_PROVIDERS: tuple[Provider, ...] = (gcp_kms.PROVIDER, aws_kms.PROVIDER, barbican_kms.PROVIDER)

KEY_MANAGERS: tuple[SimulatedKeyManager, ...] = (
    azure_key_vaults.ENDPOINT,
    gcp_kms.ENDPOINT,
    aws_kms.ENDPOINT,
    barbican_kms.ENDPOINT,
    key_managers.ENDPOINT,
    key_stores.ENDPOINT,
)
