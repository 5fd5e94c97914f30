"""The PromQL of a rendered dashboard, and Grafana's variables replaced by concrete values.

For tests that run every panel's query through a real Prometheus (`/api/v1/query`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

# Values that make every query of the three dashboards select everything.
DEFAULT_VARIABLES: dict[str, str] = {
    "cluster": ".*",
    "svm": ".*",
    "datacenter": ".*",
    "__rate_interval": "5m",
    "__interval": "1m",
    "__range": "1h",
}

_LABEL_VALUES = re.compile(r"^label_values\((?P<selector>.+),\s*(?P<label>\w+)\)$")
# $name, ${name} and ${name:format}; Grafana's deprecated [[name]] is not used here.
_VARIABLE = re.compile(r"\$\{(?P<braced>\w+)(?::\w+)?\}|\$(?P<bare>\w+)")


def iter_panels(dashboard: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel of the dashboard, including those inside collapsed rows."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def iter_queries(dashboard: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """(panel title, PromQL) for every target, then ("variable $name", selector) per variable.

    A query variable's `label_values(selector, label)` is Grafana's, not PromQL; its selector
    alone is a PromQL expression, so it can be checked the same way.
    """
    for panel in iter_panels(dashboard):
        for target in panel.get("targets", []):
            yield panel["title"], target["expr"]
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") == "query":
            match = _LABEL_VALUES.match(variable["query"])
            if match is None:
                raise ValueError(f"variable {variable['name']}: not label_values(...)")
            yield f"variable ${variable['name']}", match["selector"]


def substitute_variables(expr: str, values: Mapping[str, str]) -> str:
    """`expr` with every $name, ${name} and ${name:format} replaced by values[name].

    A variable missing from `values` raises KeyError naming it, so a query that gained a new
    variable cannot slip through a test unreplaced.
    """

    def replace(match: re.Match[str]) -> str:
        name = match["braced"] or match["bare"]
        if name not in values:
            raise KeyError(f"no value for ${name} in {expr!r}")
        return values[name]

    return _VARIABLE.sub(replace, expr)
