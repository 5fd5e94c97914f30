"""Typed models -> JSON Schema (akv_exporter/json_schema.py), which docs/status.schema.json is."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal, TypedDict

import jsonschema
import pytest

from akv_exporter.json_schema import Doc, document_schema


class Part(TypedDict):
    """One part."""

    name: Annotated[str, Doc("its name")]
    state: Annotated[str | None, Doc(values=("on", "off"))]
    counts: Annotated[dict[str, int], Doc(minimum=0, keys=("a", "b"))]


@dataclass(frozen=True)
class Totals:
    parts: Annotated[int, Doc(minimum=0)]


class Document(TypedDict):
    """A document."""

    kind: Literal["example"]
    when: float | None
    part: Part | None
    parts: list[Part]
    totals: Totals


SCHEMA = document_schema(Document, title="t", description="d")
GOOD = {
    "kind": "example",
    "when": None,
    "part": None,
    "parts": [{"name": "x", "state": None, "counts": {"a": 1}}],
    "totals": {"parts": 1},
}


def test_a_document_that_matches_its_model_is_valid():
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    jsonschema.validate(GOOD, SCHEMA)
    assert SCHEMA["$defs"]["Part"]["description"] == "One part."
    assert SCHEMA["$defs"]["Part"]["properties"]["name"]["description"] == "its name"


@pytest.mark.parametrize(
    "change",
    [
        {"kind": "other"},  # a Literal is a const
        {"when": "soon"},  # float | None
        {"extra": 1},  # a TypedDict allows no other key
        {"part": {"name": "x", "state": "on"}},  # every key is required
        {"parts": [{"name": "x", "state": "dim", "counts": {}}]},  # Doc(values=...)
        {"parts": [{"name": "x", "state": "on", "counts": {"c": 1}}]},  # Doc(keys=...)
        {"parts": [{"name": "x", "state": "on", "counts": {"a": -1}}]},  # a dict's minimum
        {"totals": {"parts": -1}},  # a dataclass field's minimum
    ],
)
def test_a_document_that_breaks_its_model_is_refused(change):
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**GOOD, **change}, SCHEMA)


def test_a_type_without_a_json_form_is_refused_at_once():
    class Odd(TypedDict):
        value: set[str]

    with pytest.raises(TypeError, match="no JSON Schema"):
        document_schema(Odd, title="t", description="d")
