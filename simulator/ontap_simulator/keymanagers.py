"""The key-manager endpoints every simulated cluster serves, one module each (records.py's
``SimulatedKeyManager``): the simulator's side of the exporter's seam (ontap/keymanagers.py).

Adding one (GCP KMS, ...) is a module beside ``azure_key_vaults.py``, its state in the model and
the scenario, and a line here: docs/architecture.md.
"""

from __future__ import annotations

from ontap_simulator import azure_key_vaults
from ontap_simulator.records import SimulatedKeyManager

KEY_MANAGERS: tuple[SimulatedKeyManager, ...] = (azure_key_vaults.ENDPOINT,)
