"""The registry of key-manager endpoints the poller asks every cluster, one module each.

Each module declares a ``KeyManagerEndpoint`` (ontap/key_manager_endpoint.py). Adding one (GCP
KMS, AWS KMS, ...) is a module beside ``ontap/akv.py`` and a line here, plus its rendering
(``KEY_MANAGER_FAMILIES`` in metrics/catalogue.py, ``KEY_MANAGER_WORDS`` in assessment.py):
docs/architecture.md.
"""

from __future__ import annotations

from akv_exporter.ontap import akv
from akv_exporter.ontap.key_manager_endpoint import KeyManagerEndpoint

ENDPOINTS: tuple[KeyManagerEndpoint, ...] = (akv.ENDPOINT,)
BY_KIND = {endpoint.kind: endpoint for endpoint in ENDPOINTS}
