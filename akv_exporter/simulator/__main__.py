"""``python -m akv_exporter.simulator``: the simulator alone, the same entry as `simulate`."""

from __future__ import annotations

import sys

from akv_exporter.simulator.cli import main

if __name__ == "__main__":
    sys.exit(main())
