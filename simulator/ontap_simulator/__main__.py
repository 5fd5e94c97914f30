"""``python -m ontap_simulator``: the simulator alone, the same entry as `simulate`."""

from __future__ import annotations

import sys

from ontap_simulator.cli import main

if __name__ == "__main__":
    sys.exit(main())
