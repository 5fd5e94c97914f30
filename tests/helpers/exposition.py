"""Reading what the exporter serves: exposition samples, the status document's schema, a
check's performance data."""

from __future__ import annotations

import json
import re

import jsonschema
from prometheus_client.parser import text_string_to_metric_families as parse_text

from tests.helpers.repository import REPO


def samples(body: bytes) -> dict[tuple[str, tuple], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in parse_text(body.decode())
        for s in family.samples
    }


def find(body: bytes, name: str, **labels) -> list[float]:
    return [
        value
        for (sample, pairs), value in samples(body).items()
        if sample == name and all(dict(pairs).get(k) == v for k, v in labels.items())
    ]


SCHEMA = json.loads((REPO / "docs" / "status.schema.json").read_text(encoding="utf-8"))


def validate(document: dict) -> None:
    jsonschema.Draft202012Validator(SCHEMA).validate(document)


# 'label'=value[UOM];[warn];[crit];[min];[max], as the Nagios plugin guidelines define it.
PERFDATA = re.compile(r"^'?[^'=]+'?=-?[0-9.]+[a-zA-Z%]*(;[0-9.:~@-]*){0,4}$")


def perfdata(first_line: str) -> dict[str, str]:
    """Return a check's performance data by label, checking the plugin format on the way."""
    text, bar, data = first_line.partition(" | ")
    assert bar and "|" not in text and "|" not in data
    items = data.split()
    assert all(PERFDATA.match(item) for item in items), items
    return {item.split("=")[0]: item.split("=")[1].split(";")[0] for item in items}
