"""Reading a YAML file of ours: size and encoding checked, every mapping remembering its lines.

The configuration, the inventory's cluster files, Harvest's files and credentials files are all
read here, so a problem in any of them names the file and the line the same way, and a YAML
syntax error on a line holding a secret never repeats the secret.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from akv_exporter.config.values import ConfigError

# Thousands of clusters fit in well under 1 MiB; parsing a far larger file costs seconds of CPU.
MAX_CONFIG_BYTES = 8 * 1024 * 1024


class Lines(dict):
    """A mapping from YAML that remembers the line of each key (1-based) and its own line."""

    line: int = 0
    key_lines: dict[str, int]
    # Unquoted scalars YAML 1.1 turned into something else (01234567 -> 342391, 1.50 -> 1.5,
    # yes -> True), as written: a key that takes a string takes exactly this.
    written: dict[str, str]


def lines_of(data: dict, line: int = 1, key_lines: dict[str, int] | None = None) -> Lines:
    """Return ``data`` as a Lines mapping at ``line`` (for mappings made, not read)."""
    mapping = Lines(data)
    mapping.line, mapping.key_lines, mapping.written = line, key_lines or {}, {}
    return mapping


class _LineLoader(yaml.SafeLoader):
    pass


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> Lines:
    loader.flatten_mapping(node)
    mapping = lines_of({}, node.start_mark.line + 1)
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if isinstance(key, str) and key in mapping:
            raise yaml.MarkedYAMLError(
                problem=f"duplicate key {key!r}", problem_mark=key_node.start_mark
            )
        value = mapping[key] = loader.construct_object(value_node, deep=True)
        mapping.key_lines[str(key)] = key_node.start_mark.line + 1
        if isinstance(value_node, yaml.ScalarNode) and not isinstance(value, str | None):
            mapping.written[str(key)] = value_node.value
    return mapping


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)

# Keys whose value is, or may carry, a secret (a command line can, an address with user:password
# can). YAML's messages quote what they could not read (a tag, an alias), so a problem on such
# a line is described without them.
_SENSITIVE_KEY = re.compile(
    r"(?:^|[\s{,-])(password|password_env|password_file|credentials_command|address)\s*:"
)


def _yaml_problem(error: yaml.MarkedYAMLError, text: str, where: str) -> str:
    """Return the one line for a YAML syntax problem, never quoting a secret's value."""
    lines = text.splitlines()
    for mark in (error.problem_mark, error.context_mark):
        if mark is not None and mark.line < len(lines):
            # The key nearest before the problem: `{address: h, password: !x}` blames password.
            keys = [m for m in _SENSITIVE_KEY.finditer(lines[mark.line]) if m.start() < mark.column]
            if keys:
                key = keys[-1].group(1)
                return (
                    f"{where}:{mark.line + 1}: {key}: is not valid YAML (the value is"
                    f" not repeated here); quote it: {key}: '...'"
                )
    problem = " ".join(str(error.problem or error).split())
    if error.problem_mark is None:
        return f"{where}: (yaml): {problem}"
    return f"{where}:{error.problem_mark.line + 1}: (yaml): {problem}"


def parse_yaml(text: str, path: Path | None) -> Any:
    """Return the YAML document in ``text`` (mappings remember lines); ConfigError if malformed."""
    where = str(path) if path else "<config>"
    try:
        return yaml.load(text, Loader=_LineLoader)
    except yaml.MarkedYAMLError as error:
        problem = _yaml_problem(error, text, where)
    except yaml.YAMLError as error:
        problem = f"{where}: (yaml): {' '.join(str(error).split())}"
    raise ConfigError([problem])


def read_text(path: Path) -> str:
    """Return the UTF-8 text of ``path``; ConfigError naming the file when it cannot.

    A file over MAX_CONFIG_BYTES is refused unread: parsing it would cost seconds of CPU. These
    problems concern the whole file, so their line names no line number.
    """
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_CONFIG_BYTES + 1)
    except OSError as error:
        raise ConfigError([f"{path}: cannot read: {error.strerror or error}"]) from None
    if len(data) > MAX_CONFIG_BYTES:
        limit = MAX_CONFIG_BYTES // (1024 * 1024)
        raise ConfigError([f"{path}: is larger than {limit} MiB; is it the right file?"])
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError([f"{path}: is not UTF-8 text"]) from None
