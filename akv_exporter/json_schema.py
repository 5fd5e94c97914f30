"""Python types -> JSON Schema (draft 2020-12): the schema of a document is derived from its model.

A model is TypedDicts (every key required, nothing else allowed) and dataclasses, built from
``str``, ``int``, ``float``, ``bool``, ``None``, ``Literal``, ``list``, ``dict[str, ...]`` and
unions with ``None``. ``Annotated[T, Doc(...)]`` adds what the type cannot say: a description,
a minimum, the values a string may take. Each TypedDict and dataclass becomes one entry of
``$defs``, its docstring its description. docs/generate.py writes docs/status.schema.json with
it; tests/test_generated_docs.py fails while that file is stale.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union, get_args, get_origin, get_type_hints

_SIMPLE = {str: "string", int: "integer", float: "number", bool: "boolean", type(None): "null"}


@dataclass(frozen=True, slots=True)
class Doc:
    """What a field's type cannot say, for its JSON Schema (``Annotated[int, Doc(...)]``)."""

    description: str = ""
    minimum: int | None = None
    values: tuple[Any, ...] = ()  # the only values it takes (an enum; one value: a const)
    keys: tuple[str, ...] = ()  # for a dict: the only keys it has


def document_schema(model: Any, *, title: str, description: str) -> dict[str, Any]:
    """Return the JSON Schema of documents of type ``model``, its parts under ``$defs``."""
    defs: dict[str, Any] = {}
    top = _object(model, defs)
    defs.pop(model.__name__, None)
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": title,
        "description": description,
    }
    return {**schema, **top, "$defs": dict(sorted(defs.items()))}


def _is_model(tp: Any) -> bool:
    return typing.is_typeddict(tp) or dataclasses.is_dataclass(tp)


def _fields(model: Any) -> Iterable[tuple[str, Any]]:
    hints = get_type_hints(model, include_extras=True)
    if dataclasses.is_dataclass(model):
        return ((f.name, hints[f.name]) for f in dataclasses.fields(model))
    return hints.items()


def _object(model: Any, defs: dict[str, Any]) -> dict[str, Any]:
    properties = {name: _schema(tp, defs) for name, tp in _fields(model)}
    out: dict[str, Any] = {"type": "object", "additionalProperties": False}
    doc = " ".join((model.__doc__ or "").split())
    if doc and not doc.startswith(f"{model.__name__}("):  # not a dataclass's generated one
        out["description"] = doc
    return {**out, "required": list(properties), "properties": properties}


def _schema(tp: Any, defs: dict[str, Any]) -> dict[str, Any]:
    origin, args = get_origin(tp), get_args(tp)
    if origin is Annotated:
        return _annotated(_schema(args[0], defs), args[1:])
    if tp in _SIMPLE:
        return {"type": _SIMPLE[tp]}
    if _is_model(tp):
        if tp.__name__ not in defs:
            defs[tp.__name__] = {}  # taken, so that a model that contains itself ends
            defs[tp.__name__] = _object(tp, defs)
        return {"$ref": f"#/$defs/{tp.__name__}"}
    if origin is Literal:
        return {"const": args[0]} if len(args) == 1 else {"enum": list(args)}
    if origin in (list, tuple):
        return {"type": "array", "items": _schema(args[0], defs)}
    if origin is dict:
        return {"type": "object", "additionalProperties": _schema(args[1], defs)}
    if origin in (Union, types.UnionType) and type(None) in args:
        (inner,) = [arg for arg in args if arg is not type(None)]
        return _nullable(_schema(inner, defs))
    raise TypeError(f"no JSON Schema for {tp!r}")


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    if isinstance(schema.get("type"), str):
        return {**schema, "type": [schema["type"], "null"]}
    if "enum" in schema:
        return {**schema, "enum": [*schema["enum"], None]}
    return {"oneOf": [{"type": "null"}, schema]}


def _annotated(schema: dict[str, Any], metadata: tuple[Any, ...]) -> dict[str, Any]:
    for doc in metadata:
        if not isinstance(doc, Doc):
            continue
        if doc.values:
            kind = schema.pop("type", None)
            values = [*doc.values, *([None] if isinstance(kind, list) and "null" in kind else [])]
            schema.update({"const": values[0]} if len(values) == 1 else {"enum": values})
        if doc.keys:
            schema["propertyNames"] = {"enum": list(doc.keys)}
        if doc.minimum is not None:
            # On a dict, the minimum is its values'.
            target = schema.get("additionalProperties")
            (target if isinstance(target, dict) else schema)["minimum"] = doc.minimum
        if doc.description:
            schema["description"] = doc.description
    return schema
