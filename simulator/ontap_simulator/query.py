"""ONTAP's REST query semantics over rendered records: fields, filters, order, pages, errors.

Pure functions of (records, query): the server calls them, the tests can too. What is honoured:
- ``fields``: names and dotted subfields (``svm.name``, ``state.code``), ``*`` for the ordinary
  fields, ``**`` for those plus the advanced ones; advanced fields never appear otherwise;
- any field as a filter (``ekmip_reachability.reachable=false``, ``svm.name=vs*``) with ``*``
  wildcards, ``|`` alternatives, ``!`` negation and the range operators ``>``, ``>=``, ``<``,
  ``<=`` on numbers and times (``index=>1234``, ``time=>2026-11-29T00:00:00Z``); an array
  matches when any element does;
- ``max_records`` pages linked by ``_links.next`` (the whole query plus the kind's cursor,
  ``start.uuid`` unless the records have no uuid);
- ``return_records``, ``return_timeout`` (0-120), ``order_by``, ``ignore_unknown_fields``;
- ONTAP's error bodies: 262197 for a bad ``fields`` entry, 262179 for an unknown parameter,
  2 for a bad value, 4 for an unknown uuid.
"""

from __future__ import annotations

import datetime
import operator
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from ontap_simulator.records import Tree

# Parameters every GET takes; collections take the paging and filtering ones too.
INSTANCE_PARAMETERS = frozenset({"fields", "return_timeout", "ignore_unknown_fields"})
COLLECTION_PARAMETERS = INSTANCE_PARAMETERS | {"max_records", "return_records", "order_by"}


class OntapError(Exception):
    """An answer in ONTAP's error format: HTTP status plus ``{"error": {...}}``."""

    def __init__(self, status: int, code: str, message: str, target: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.target = target

    def body(self) -> dict[str, Any]:
        """Return ONTAP's error body."""
        error: dict[str, Any] = {"message": self.message, "code": self.code}
        if self.target is not None:
            error["target"] = self.target
        return {"error": error}


def not_found(target: str = "uuid") -> OntapError:
    """Return ONTAP's answer for an entry that does not exist."""
    return OntapError(404, "4", "entry doesn't exist", target)


def invalid_value(name: str, value: str, expected: str) -> OntapError:
    """Return ONTAP's answer for a parameter value it cannot use."""
    return OntapError(
        400, "2", f'The value "{value}" is invalid for field "{name}" ({expected})', name
    )


@dataclass(frozen=True, slots=True)
class Kind:
    """What the engine needs to know about one kind of record."""

    tree: Tree
    default_fields: tuple[str, ...]  # what a collection GET returns without `fields`
    # Returned only when named (or `**`); a dotted name is an advanced field inside an ordinary
    # one (key-managers' `external.servers.connectivity`).
    advanced: frozenset[str] = frozenset()
    always: tuple[str, ...] = ("uuid", "_links")  # returned whatever `fields` says
    # The fields whose values name a record in a `next` link (`start.<field>=...`); records
    # without a uuid (EMS events: node and index) name another.
    cursor: tuple[str, ...] = ("uuid",)
    # Derived from the dotted names of ``advanced``: top-level field -> advanced paths below it.
    nested_advanced: Mapping[str, tuple[tuple[str, ...], ...]] = field(
        default_factory=dict, compare=False
    )

    def __post_init__(self) -> None:
        nested: dict[str, list[tuple[str, ...]]] = {}
        for name in self.advanced:
            head, *rest = name.split(".")
            if rest:
                nested.setdefault(head, []).append(tuple(rest))
        object.__setattr__(self, "nested_advanced", {k: tuple(v) for k, v in nested.items()})

    @property
    def start_parameters(self) -> tuple[str, ...]:
        """Return the query parameters of a `next` link that say where the page starts."""
        return tuple(f"start.{name}" for name in self.cursor)


@dataclass(frozen=True, slots=True)
class Selection:
    """Parsed ``fields``: all ordinary, all including advanced, and named (sub)fields."""

    ordinary: bool = False
    advanced: bool = False
    named: Mapping[str, Any] | None = None  # name -> True (whole) or a nested selection


def _lookup(tree: Tree, path: Sequence[str]) -> tuple[bool, Tree | None]:
    """Return (exists, subtree) for a dotted path in a field tree."""
    node: Tree | None = tree
    for part in path:
        if node is None or part not in node:
            return False, None
        node = node[part]
    return True, node


def parse_fields(values: Iterable[str], kind: Kind, ignore_unknown: bool) -> Selection:
    """Return the selection ``fields`` asks for; OntapError 262197 for an unknown field."""
    ordinary = advanced = False
    named: dict[str, Any] = {}
    for value in values:
        for entry in value.split(","):
            entry = entry.strip()
            if not entry:
                continue
            if entry == "**":
                advanced = ordinary = True
                continue
            if entry == "*":
                ordinary = True
                continue
            path = entry.split(".")
            exists, _ = _lookup(kind.tree, path)
            if not exists:
                if ignore_unknown:
                    continue
                raise OntapError(
                    400, "262197", f'The value "{entry}" is invalid for field "fields"', "fields"
                )
            _add_path(named, path)
    return Selection(ordinary, advanced, named)


def _add_path(selection: dict[str, Any], path: list[str]) -> None:
    head, rest = path[0], path[1:]
    if not rest:
        selection[head] = True
        return
    current = selection.get(head)
    if current is True:
        return
    if current is None:
        current = selection[head] = {}
    _add_path(current, rest)


def default_selection(kind: Kind) -> Selection:
    """Return the selection of a collection GET without ``fields``."""
    named: dict[str, Any] = {}
    for name in kind.default_fields:
        _add_path(named, name.split("."))
    return Selection(named=named)


def project(record: Mapping[str, Any], selection: Selection, kind: Kind) -> dict[str, Any]:
    """Return the part of ``record`` the selection asks for (values are shared, not copied)."""
    named = selection.named or {}
    out: dict[str, Any] = {}
    hidden = kind.nested_advanced if not selection.advanced else None
    for key, value in record.items():
        whole = selection.advanced or (selection.ordinary and key not in kind.advanced)
        if whole or key in kind.always:
            out[key] = value
        elif key in named:
            sub = named[key]
            out[key] = value if sub is True else _project_nested(value, sub)
        else:
            continue
        if hidden and key in hidden:
            out[key] = _hide(out[key], hidden[key], named.get(key))
    return out


def _hide(value: Any, paths: tuple[tuple[str, ...], ...], named: Any) -> Any:
    """Return ``value`` without the advanced ``paths`` below it that ``named`` does not name."""
    for path in paths:
        selected = named
        for part in path:
            selected = selected.get(part) if isinstance(selected, Mapping) else None
        if selected is None:  # not named down to the advanced field itself
            value = _strip(value, path)
    return value


def _strip(value: Any, path: tuple[str, ...]) -> Any:
    """Return a copy of ``value`` without ``path`` (through arrays); shared parts stay shared."""
    if isinstance(value, list):
        return [_strip(item, path) for item in value]
    if not isinstance(value, Mapping) or path[0] not in value:
        return value
    head, rest = path[0], path[1:]
    if not rest:
        return {k: v for k, v in value.items() if k != head}
    return {**value, head: _strip(value[head], rest)}


def _project_nested(value: Any, selection: Mapping[str, Any]) -> Any:
    if isinstance(value, list):
        return [_project_nested(item, selection) for item in value]
    if not isinstance(value, Mapping):
        return value
    out: dict[str, Any] = {}
    for key, sub in selection.items():
        if key in value:
            out[key] = value[key] if sub is True else _project_nested(value[key], sub)
    return out


# --- filters ---------------------------------------------------------------------------------


Test = Callable[[Any], bool]


@dataclass(frozen=True, slots=True)
class Filter:
    """One ``field=value`` query: the field's path and its alternatives (tests of one value)."""

    path: tuple[str, ...]
    alternatives: tuple[Test, ...]

    def matches(self, record: Mapping[str, Any]) -> bool:
        """Return whether any value at the path (any array element) passes an alternative."""
        return any(
            test(value)
            for value in _values_at(record, self.path)
            if value is not None
            for test in self.alternatives
        )


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _values_at(value: Any, path: Sequence[str]) -> Iterable[Any]:
    if not path:
        if isinstance(value, list):
            yield from value
        else:
            yield value
        return
    if isinstance(value, list):
        for item in value:
            yield from _values_at(item, path)
    elif isinstance(value, Mapping) and path[0] in value:
        yield from _values_at(value[path[0]], path[1:])


def parse_filter(name: str, value: str, kind: Kind) -> Filter:
    """Return the filter ``name=value``; OntapError 262179 when ``name`` is no field."""
    path = tuple(name.split("."))
    exists, subtree = _lookup(kind.tree, path)
    if not exists or subtree is not None or path[0] == "_links":
        raise unexpected_argument(name)
    return Filter(path, tuple(_alternative(text) for text in value.split("|")))


# Longest first, so that ">=" is not read as ">" followed by "=...".
_OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
}


def _alternative(text: str) -> Test:
    for symbol, compare in _OPERATORS.items():
        if text.startswith(symbol):
            return _comparison(compare, text[len(symbol) :])
    negated = text.startswith("!")
    pattern_text = text[1:] if negated else text
    pattern = re.compile(
        ".*".join(re.escape(part) for part in pattern_text.split("*")), re.IGNORECASE | re.DOTALL
    )
    return lambda value: (pattern.fullmatch(_as_text(value)) is None) == negated


def _comparison(compare: Callable[[Any, Any], bool], bound_text: str) -> Test:
    """Return the test ``compare(value, bound)``: numbers as numbers, times as times, else text."""
    bound_number = _number(bound_text)
    bound_time = _time(bound_text)

    def test(value: Any) -> bool:
        if bound_number is not None and (number := _number(value)) is not None:
            return compare(number, bound_number)
        if bound_time is not None and (moment := _time(value)) is not None:
            return compare(moment, bound_time)
        return compare(_as_text(value).lower(), bound_text.lower())

    return test


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _time(value: Any) -> datetime.datetime | None:
    if not isinstance(value, str) or "-" not in value:
        return None
    try:
        moment = datetime.datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    # A time without an offset is UTC, so that it compares with those that have one.
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.UTC)


def unexpected_argument(name: str) -> OntapError:
    """Return ONTAP's answer for a query parameter it does not know."""
    return OntapError(400, "262179", f'Unexpected argument "{name}".', name)


# --- parameters ------------------------------------------------------------------------------


def _bool_parameter(query: Mapping[str, str], name: str, default: bool) -> bool:
    value = query.get(name)
    if value is None:
        return default
    lowered = value.strip().lower()
    if lowered in ("true", "1"):
        return True
    if lowered in ("false", "0"):
        return False
    raise invalid_value(name, value, "true or false")


def _int_parameter(query: Mapping[str, str], name: str, low: int, high: int | None) -> int | None:
    value = query.get(name)
    if value is None:
        return None
    expected = f"{low}-{high}" if high is not None else f">= {low}"
    try:
        number = int(value)
    except ValueError:
        raise invalid_value(name, value, f"an integer {expected}") from None
    if number < low or (high is not None and number > high):
        raise invalid_value(name, value, f"an integer {expected}")
    return number


def _check_common(query: Mapping[str, str]) -> bool:
    """Validate the parameters every GET shares; return ignore_unknown_fields."""
    _int_parameter(query, "return_timeout", 0, 120)
    return _bool_parameter(query, "ignore_unknown_fields", False)


def _selection(params: Sequence[tuple[str, str]], kind: Kind, ignore: bool) -> Selection | None:
    values = [value for name, value in params if name == "fields"]
    return parse_fields(values, kind, ignore) if values else None


def _order(
    records: list[Mapping[str, Any]], order_by: Sequence[str], kind: Kind
) -> list[Mapping[str, Any]]:
    # Sort by the last key first: Python's sort is stable, so earlier keys win.
    for entry in reversed([e for value in order_by for e in value.split(",") if e.strip()]):
        parts = entry.split()
        name = parts[0]
        direction = parts[1].lower() if len(parts) > 1 else "asc"
        exists, subtree = _lookup(kind.tree, name.split("."))
        if not exists or subtree is not None or direction not in ("asc", "desc") or len(parts) > 2:
            raise OntapError(
                400, "262197", f'The value "{entry}" is invalid for field "order_by"', "order_by"
            )
        path = name.split(".")

        def key(record: Mapping[str, Any], path: list[str] = path) -> tuple[int, str, float]:
            value = next(iter(_values_at(record, path)), None)
            if value is None:
                return (0, "", 0.0)
            if isinstance(value, int | float) and not isinstance(value, bool):
                return (1, "", float(value))
            return (2, _as_text(value).lower(), 0.0)

        records.sort(key=key, reverse=direction == "desc")
    return records


def _href(path: str, params: Sequence[tuple[str, str]]) -> str:
    if not params:
        return path
    # Keep ONTAP's query syntax readable in the links: `*`, `,`, `|`, `!` stay as they are.
    query = "&".join(
        f"{quote(name, safe='.')}={quote(value, safe='*,|!.:')}" for name, value in params
    )
    return f"{path}?{query}"


def answer_collection(
    records: Sequence[Mapping[str, Any]],
    kind: Kind,
    path: str,
    params: Sequence[tuple[str, str]],
    *,
    empty_first_page: bool = False,
) -> dict[str, Any]:
    """Return ONTAP's collection answer for ``records`` and the query ``params`` (in order).

    ``empty_first_page`` reproduces ONTAP returning a ``next`` link with no records: the first
    page of a non-empty answer is empty and links to the real first page.
    """
    query = dict(params)
    ignore = _check_common(query)
    return_records = _bool_parameter(query, "return_records", True)
    max_records = _int_parameter(query, "max_records", 1, None)
    selection = _selection(params, kind, ignore) or default_selection(kind)
    start_parameters = kind.start_parameters
    filters = [
        parse_filter(name, value, kind)
        for name, value in params
        if name not in COLLECTION_PARAMETERS and name not in start_parameters
    ]
    matching = [r for r in records if all(f.matches(r) for f in filters)]
    order_by = [value for name, value in params if name == "order_by"]
    if order_by:
        matching = _order(matching, order_by, kind)
    self_link = {"self": {"href": _href(path, params)}}
    if not return_records:
        return {"num_records": len(matching), "_links": self_link}

    start = 0
    given = [query.get(name) for name in start_parameters]
    token = tuple(given) if all(value is not None for value in given) else None
    if token is not None:
        positions = {_cursor(record, kind): index for index, record in enumerate(matching)}
        if token in positions:
            start = positions[token]
        elif order_by or kind.cursor != ("uuid",):
            start = len(matching)  # the record left the result; no safe resume in this order
        else:  # records are in uuid order: resume at the first one at or after the token
            start = next(
                (i for i, r in enumerate(matching) if (str(r.get("uuid", "")),) >= token),
                len(matching),
            )
    base = [(name, value) for name, value in params if name not in start_parameters]

    def next_link(record: Mapping[str, Any]) -> dict[str, Any]:
        cursor = zip(start_parameters, _cursor(record, kind), strict=True)
        return {"href": _href(path, [*base, *cursor])}

    if empty_first_page and token is None and matching:
        links = {**self_link, "next": next_link(matching[0])}
        return {"records": [], "num_records": 0, "_links": links}
    end = len(matching) if max_records is None else min(len(matching), start + max_records)
    page = [project(record, selection, kind) for record in matching[start:end]]
    links = dict(self_link)
    if end < len(matching):
        links["next"] = next_link(matching[end])
    return {"records": page, "num_records": len(page), "_links": links}


def _cursor(record: Mapping[str, Any], kind: Kind) -> tuple[str, ...]:
    """Return the values of the kind's cursor fields in ``record``, as text."""
    return tuple(
        _as_text(next(iter(_values_at(record, name.split("."))), "")) for name in kind.cursor
    )


def answer_instance(
    record: Mapping[str, Any] | None, kind: Kind, params: Sequence[tuple[str, str]]
) -> dict[str, Any]:
    """Return ONTAP's instance answer (all ordinary fields unless ``fields`` says otherwise)."""
    query = dict(params)
    for name in query:
        if name not in INSTANCE_PARAMETERS:
            raise unexpected_argument(name)
    ignore = _check_common(query)
    selection = _selection(params, kind, ignore) or Selection(ordinary=True)
    if record is None:
        raise not_found()
    return project(record, selection, kind)
