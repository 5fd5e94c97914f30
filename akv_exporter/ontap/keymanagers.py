"""The key-manager endpoints the poller asks every cluster, one module each (ontap/keymanager.py).

Adding one (GCP KMS, AWS KMS, ...) is a module beside ``ontap/akv.py`` and a line here, plus its
rendering (metrics.KEY_MANAGER_FAMILIES, status.KEY_MANAGER_WORDS): docs/architecture.md.
"""

from __future__ import annotations

from akv_exporter.ontap import akv
from akv_exporter.ontap.keymanager import KeyManagerEndpoint

ENDPOINTS: tuple[KeyManagerEndpoint, ...] = (akv.ENDPOINT,)
BY_KIND = {endpoint.kind: endpoint for endpoint in ENDPOINTS}
