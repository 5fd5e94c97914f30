"""A fleet of simulated ONTAP clusters speaking the REST dialect the exporter reads.

Standalone: the exporter's polling code never imports this package (only `demo` starts it).
``start_simulator`` and ``run_simulator`` (ontap_simulator.start) start every cluster's listener
on loopback, the optional control API and the optional incident scheduler. See docs/simulator.md.

This file imports nothing: ``python -m ontap_simulator`` imports the package before its
``__main__``, which must be able to say in one line which dependency is missing.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "RunningSimulator",
    "ScenarioError",
    "SimulatedClusterInfo",
    "SimulatorOptions",
    "run_simulator",
    "start_simulator",
]


def __getattr__(name: str) -> Any:
    """Return ``name`` from ontap_simulator.start, imported on first use."""
    if name not in __all__:
        raise AttributeError(f"module 'ontap_simulator' has no attribute {name!r}")
    from ontap_simulator import start

    return getattr(start, name)
