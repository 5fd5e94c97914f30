"""One line per problem: pydantic's errors in the file's words, each with its file, line and key.

``Problems`` validates a part of a file with its model and words each error as the user reads
it: `FILE:LINE: KEY: REASON`, with the nearest valid key for a typo and never a secret's value.
It remembers what it refused, so that the checks spanning keys skip what was already reported.
"""

from __future__ import annotations

import difflib
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from akv_exporter.config import model
from akv_exporter.config.values import Problem
from akv_exporter.config.yamlfile import Lines, lines_of

Loc = tuple[str | int, ...]
_MISSING_HINT = {"address": ": give a host, host:port or https:// URL"}
Loc = tuple[str | int, ...]


def inner_model(annotation: Any) -> type[BaseModel] | None:
    """Return the model inside an annotation (``X | None``, ``list[X]``), or None."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for argument in typing.get_args(annotation):
        if found := inner_model(argument):
            return found
    return None


def _model_at(root: type[BaseModel], loc: Loc) -> type[BaseModel] | None:
    """Return the model validating the mapping at ``loc`` below ``root``."""
    current: type[BaseModel] | None = root
    for part in loc:
        if current is not None and isinstance(part, str):
            field = current.model_fields.get(part)
            current = inner_model(field.annotation) if field else None
    return current


def kind_of(value: Any) -> str:
    if isinstance(value, Mapping):
        return "a mapping"
    return {list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), type(value).__name__
    )


def _key_path(loc: Loc) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else str(part)
    return text or "(top level)"


def line_of(data: Any, loc: Loc) -> int:
    """Return the line of the key at ``loc`` in ``data``, else of the nearest mapping holding it."""
    line, node = getattr(data, "line", 1) or 1, data
    for part in loc:
        if isinstance(node, Mapping) and part in node:
            line, node = getattr(node, "key_lines", {}).get(str(part), line), node[part]
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
            line = getattr(node, "line", line)
        else:
            break
    return line


def subset(data: Mapping, leave_out: set) -> Lines:
    """Return ``data`` without the keys ``leave_out``, keeping what it remembers of lines."""
    kept = lines_of({k: v for k, v in data.items() if k not in leave_out}, line_of(data, ()))
    kept.key_lines = getattr(data, "key_lines", {})
    kept.written = {k: v for k, v in getattr(data, "written", {}).items() if k not in leave_out}
    return kept


class Problems:
    """The one-line problems of one file, each naming its line and key, sorted by line."""

    def __init__(self, path: Path | None, data: Any):
        self.where = str(path) if path else "<config>"
        self.data = data
        self._lines: list[tuple[int, str]] = []
        self._refused: list[Loc] = []

    @property
    def lines(self) -> list[str]:
        return [line for _, line in sorted(self._lines, key=lambda entry: entry[0])]

    def add(self, loc: Loc, reason: str) -> None:
        self._refused.append(loc)
        line = line_of(self.data, loc)
        text = f"{self.where}:{line}: {_key_path(loc)}: {reason}"
        self._lines.append((line, Problem(text, self._cluster_at(loc))))

    def _cluster_at(self, loc: Loc) -> frozenset[str]:
        """Return the name and address of the cluster entry ``loc`` is in; empty if none."""
        if len(loc) < 2 or loc[0] != "clusters" or not isinstance(loc[1], int):
            return frozenset()
        entries = self.data.get("clusters") if isinstance(self.data, Mapping) else None
        if not isinstance(entries, list) or loc[1] >= len(entries):
            return frozenset()
        found = identity(entries[loc[1]])
        if found is None:  # a wrong name or address: which cluster it is, is not known
            return frozenset()
        return frozenset(filter(None, (found.name, found.address)))

    def refused(self, *locs: Loc) -> bool:
        """Return whether a problem was found at or below any of ``locs``."""
        return any(found[: len(loc)] == loc for found in self._refused for loc in locs)

    def validate(self, schema: type[BaseModel], data: Any, loc: Loc) -> Any:
        """Return ``data`` validated by ``schema``, adding a line for each problem.

        When some keys are wrong, return the model of the others (so the checks spanning keys
        still see them); None when nothing usable is left.
        """
        try:
            return schema.model_validate(data)
        except ValidationError as error:
            errors = error.errors(include_url=False)
        unknown = [e["loc"] for e in errors if e["type"] == "extra_forbidden"]
        suggested = {(*where[:-1], self._nearest(schema, where)) for where in unknown}
        for detail in errors:
            where = tuple(part for part in detail["loc"] if part != "[key]")
            if detail["type"] == "missing" and where in suggested:
                continue  # the typo's line already names the key: `adress` for `address`
            self.add((*loc, *where), self._reason(schema, where, detail))
        if not isinstance(data, Mapping):
            return None
        try:
            return schema.model_validate(subset(data, {e["loc"][0] for e in errors}))
        except ValidationError:
            return None

    @staticmethod
    def _nearest(schema: type[BaseModel], where: Loc) -> str | None:
        keys = list((_model_at(schema, where[:-1]) or schema).model_fields)
        nearest = difflib.get_close_matches(str(where[-1]), keys, n=1, cutoff=0.6)
        return nearest[0] if nearest else None

    def _reason(self, schema: type[BaseModel], where: Loc, detail: Any) -> str:
        """Return the reason for one pydantic error, in the file's words; never a secret."""
        kind, given = detail["type"], detail.get("input")
        if kind == "akv":  # our own validators' reasons
            return detail["ctx"]["reason"]
        if kind == "extra_forbidden":
            nearest = self._nearest(schema, where)
            valid = ", ".join((_model_at(schema, where[:-1]) or schema).model_fields)
            hint = f" (did you mean {nearest!r}?)" if nearest else ""
            return f"unknown key{hint}; valid keys here: {valid}"
        if kind == "missing":
            return "is missing" + _MISSING_HINT.get(str(where[-1]), "")
        if kind in ("model_type", "dict_type", "model_attributes_type"):
            return f"must be a mapping, not {kind_of(given)}"
        if kind == "list_type":
            return f"must be a list, not {kind_of(given)}"
        if kind == "int_type":  # numbers and booleans are never secrets
            return f"must be a whole number, not {given!r}"
        if kind == "bool_type":
            return f"must be true or false, not {given!r}"
        if kind in ("string_type", "path_type", "is_instance_of"):
            return f"must be a string, not {kind_of(given)}"
        return detail["msg"]  # pydantic's words, which do not quote the value


def identity(item: Any) -> model.ClusterIdentity | None:
    """Return a cluster's name and address when they are valid, whatever its other keys."""
    try:
        return model.ClusterIdentity.model_validate(item)
    except ValidationError:
        return None
