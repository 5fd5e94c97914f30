"""``python -m ontap_simulator``: the simulator alone, the same entry as `simulate`."""

from __future__ import annotations

import sys

try:
    from ontap_simulator.cli import main
except ModuleNotFoundError as error:
    # Copied or installed without its dependencies (pip install --no-deps, a bare PYTHONPATH):
    # one line and exit 2, as `akv-exporter simulate` does, never a traceback.
    if error.name is None or error.name.startswith("ontap_simulator"):
        raise
    print(
        f"python -m ontap_simulator needs {error.name.split('.')[0]}, which is not installed:"
        " pip install ./simulator (from akv-exporter's source tree) installs the simulator"
        " with its dependencies",
        file=sys.stderr,
    )
    sys.exit(2)

if __name__ == "__main__":
    sys.exit(main())
