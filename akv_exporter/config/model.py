"""The configuration file's format as pydantic models: what is validated, and its JSON Schema.

Each model is one mapping of the file and its fields are the file's keys. A field is None when
its key is absent or empty: the defaults live with the values (akv_exporter.config.values), and
akv_exporter.config.load merges them and checks what spans keys (timeout against interval, one
secret per cluster, unique names). Every refusal raised here is the reason exactly as the user
reads it; load adds the file, the line and the key. `make generated` writes
docs/akv-exporter.schema.json from ConfigFile.
"""

# No `from __future__ import annotations`: pydantic reads these annotations, calls included.

import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import PydanticCustomError

from akv_exporter.config.values import (
    BCRYPT_HASH,
    LABEL_NAME,
    cluster_url,
    expand_home,
    label_name_problem,
    parse_duration,
    usable_bcrypt_hash,
)
from akv_exporter.listen import split_listen

_ENV_REFERENCE = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def refusal(reason: str) -> PydanticCustomError:
    """Return the validation error whose message is ``reason``, braces and all."""
    return PydanticCustomError("akv", "{reason}", {"reason": reason})


def expand_env(value: Any) -> Any:
    """Return a string with each ${VAR} taken from the environment; $$ is a literal $."""
    if not isinstance(value, str):
        return value  # not a string: the type check says so

    def replace(match: re.Match) -> str:
        if match.group(0) == "$$":
            return "$"
        if match.group(1) not in os.environ:
            raise refusal(f"environment variable {match.group(1)} is not set")
        return os.environ[match.group(1)]

    return _ENV_REFERENCE.sub(replace, value)


# Marks a key that takes a string as written, ${VAR} expanded (Section takes YAML's text).
_TEXT = BeforeValidator(expand_env)


def check(reason_to_refuse: Callable[[Any], str | None]) -> AfterValidator:
    """Return a validator refusing a value (None passes) for the reason the function returns."""

    def validate(value: Any) -> Any:
        if value is not None and (reason := reason_to_refuse(value)):
            raise refusal(reason)
        return value

    return AfterValidator(validate)


def _problem_of(parse: Callable[[str], object]) -> Callable[[str], str | None]:
    """Return a check giving the ValueError's message of ``parse``, or None when it parses."""

    def problem(value: str) -> str | None:
        try:
            parse(value)
        except ValueError as error:
            return str(error)
        return None

    return problem


def _missing_file(path: Path) -> str | None:
    return None if path.is_file() else f"file {str(path)!r} does not exist or is not a file"


def _missing_directory(path: Path) -> str | None:
    return None if path.is_dir() else f"directory {str(path)!r} does not exist"


def _path(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return expand_home(value)
    except ValueError as error:
        raise refusal(str(error)) from None


def _as_list(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


def _written_values(value: Any) -> Any:
    """Return a mapping's values as written where YAML read a number or boolean (labels)."""
    written = getattr(value, "written", None)
    return {**value, **written} if written else value


def _seconds(minimum: float = 0.0) -> Any:
    """Return the type of a duration key: "500ms", "30s", "1h30m" or seconds; at least minimum."""

    def parse(value: Any) -> float | None:
        if value is None:
            return None
        try:
            seconds = parse_duration(value)
        except ValueError as error:
            raise refusal(str(error)) from None
        if seconds < minimum:
            raise refusal(f"must be at least {minimum:g}s")
        return seconds

    pattern = r"^\s*((\d+(\.\d+)?(ms|s|m|h|d))+|\d+(\.\d+)?)\s*$"
    schema = {
        "anyOf": [{"type": "number", "minimum": minimum}, {"type": "string", "pattern": pattern}]
    }
    return Annotated[float | None, BeforeValidator(parse), WithJsonSchema(schema)]


def _whole(minimum: int, maximum: int) -> Any:
    """Return the type of a whole number from ``minimum`` to ``maximum``."""

    def out_of_range(value: int) -> str | None:
        if minimum <= value <= maximum:
            return None
        return f"must be between {minimum} and {maximum}, not {value}"

    schema = {"type": "integer", "minimum": minimum, "maximum": maximum}
    return Annotated[int | None, check(out_of_range), WithJsonSchema(schema)]


Text = Annotated[str | None, _TEXT]
NonEmpty = Annotated[str | None, check(lambda value: None if value else "is empty"), _TEXT]
PathValue = Annotated[Path | None, BeforeValidator(_path), _TEXT]  # _TEXT runs first
ExistingFile = Annotated[PathValue, check(_missing_file)]
ExistingDirectory = Annotated[PathValue, check(_missing_directory)]
Listen = Annotated[str | None, check(_problem_of(split_listen)), _TEXT]
Address = Annotated[str, check(_problem_of(cluster_url)), _TEXT]
BcryptHash = Annotated[
    str,
    check(
        lambda digest: (
            None
            if usable_bcrypt_hash(digest)
            else "must be a bcrypt hash that bcrypt can verify: $2y$, $2b$ or $2a$, a cost"
            " from 04 to 31, then 53 characters (htpasswd -nbBC 10 USER PASSWORD makes one)"
        )
    ),
    WithJsonSchema({"type": "string", "pattern": BCRYPT_HASH.pattern}),
]
LabelName = Annotated[
    str,
    check(label_name_problem),
    WithJsonSchema({"type": "string", "pattern": LABEL_NAME.pattern}),
]
# Values as written: `rack: 010` is "010" (an editor following YAML 1.2 asks for quotes there).
Labels = Annotated[
    dict[LabelName, Annotated[str, _TEXT]] | None,
    BeforeValidator(_written_values),
    WithJsonSchema(
        {
            "type": "object",
            "propertyNames": {"pattern": LABEL_NAME.pattern},
            "additionalProperties": {"type": "string"},
        }
    ),
]
Patterns = Annotated[
    list[Annotated[str, check(lambda value: None if value else "is empty")]] | None,
    BeforeValidator(_as_list),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "minLength": 1},
                {"type": "array", "items": {"type": "string", "minLength": 1}},
            ]
        }
    ),
]


def _environment_variable(name: str) -> str | None:
    if not name:
        return "is empty"
    return None if name in os.environ else f"environment variable {name} is not set"


class Section(BaseModel):
    """One mapping of the file: unknown keys refused, no type guessed (`"5"` is not 5)."""

    model_config = ConfigDict(
        extra="forbid", strict=True, frozen=True, use_attribute_docstrings=True
    )

    @model_validator(mode="before")
    @classmethod
    def _as_written(cls, data: Any) -> Any:
        """Give each key taking a string the text YAML read as a number or boolean (`010`)."""
        written = getattr(data, "written", None)
        if not isinstance(data, Mapping) or not written:
            return data
        fields = cls.model_fields
        texts = {k: v for k, v in written.items() if k in fields and _TEXT in fields[k].metadata}
        return {**data, **texts}


class TlsSection(Section):
    ca_file: ExistingFile = None
    """The CA bundle that signed the cluster's certificate (default: the system's)."""
    verify: bool | None = None
    """Verify the cluster's certificate (default true)."""


class ClusterFields(Section):
    """What a cluster may set; `defaults` sets it for every cluster."""

    username: Text = None
    """The ONTAP user for basic authentication."""
    password: NonEmpty = None
    """Inline password (prefer the other sources)."""
    password_env: Annotated[str | None, check(_environment_variable), _TEXT] = None
    """The name of an environment variable holding the password."""
    password_file: ExistingFile = None
    """A file whose content is the password."""
    credentials_command: Annotated[
        str | None, check(lambda command: None if command.strip() else "must be a command"), _TEXT
    ] = None
    """A shell command whose first output line is the password."""
    client_cert_file: ExistingFile = None
    """Certificate authentication: the certificate (its CN is the ONTAP user)."""
    client_key_file: ExistingFile = None
    """Certificate authentication: the key (may be inside the certificate file)."""
    tls: TlsSection | None = None
    labels: Labels = None
    """Added to every series of the cluster."""


class ClusterEntry(ClusterFields):
    """One ONTAP cluster to poll."""

    name: Text = None
    """The cluster label; default ONTAP's own name."""
    address: Address
    """host, host:port, [v6]:port or https://host[:port]."""


class ClusterIdentity(Section):
    """A cluster's name and address alone, whatever its other keys: whom a line is about."""

    model_config = ConfigDict(extra="ignore")
    name: Text = None
    address: Address


class WebSection(Section):
    listen: Listen = None
    """HOST:PORT to serve on (default 0.0.0.0:9877)."""
    tls_cert_file: ExistingFile = None
    """Serve HTTPS with this certificate (with tls_key_file)."""
    tls_key_file: ExistingFile = None
    """The unencrypted key of tls_cert_file."""
    basic_auth_users: dict[str, BcryptHash] | None = None
    """User name: bcrypt hash; everything but /-/healthy and /-/ready asks for credentials."""


class PollSection(Section):
    interval: _seconds(1.0) = None
    """How often each cluster is asked (default 60s)."""
    timeout: _seconds(0.5) = None
    """One whole poll of one cluster (default 30s); at most interval."""
    concurrency: _whole(1, 10_000) = None
    """Clusters polled at once (default 64)."""
    stale_after: _seconds() = None
    """How long a failing cluster's last-known series are kept (default 180s)."""
    max_backoff: _seconds() = None
    """The longest wait after consecutive failures (default 300s)."""
    history: _whole(1, 1000) = None
    """Poll outcomes kept per cluster for the status page (default 20)."""
    max_records: _whole(1, 100_000) = None
    """ONTAP's page size (default 1000)."""
    max_response_bytes: _whole(1024, 1 << 31) = None
    """A larger answer is refused (default 32 MiB)."""
    connections_per_cluster: _whole(1, 32) = None
    """Keep-alive connections per cluster (default 2)."""
    inventory_interval: _seconds(1.0) = None
    """Key-manager policy and encrypted volumes (default 5m)."""
    events_interval: _seconds(1.0) = None
    """ONTAP's AKV EMS events (default 60s)."""
    min_interval: _seconds() = None
    """No cluster is polled more often (default 10s, or interval when shorter)."""


class InventorySection(Section):
    harvest: ExistingFile = None
    """NetApp Harvest's harvest.yml: its ONTAP pollers become clusters."""
    harvest_pollers: Patterns = None
    """Only pollers whose name matches (fnmatch patterns)."""
    clusters_dir: ExistingDirectory = None
    """Every *.yml there is a list of clusters."""
    watch_interval: _seconds(1.0) = None
    """How often the inventory files are compared (default 30s)."""


class ConfigFile(Section):
    """akv-exporter's configuration file (docs/configuration.md)."""

    web: WebSection | None = None
    poll: PollSection | None = None
    defaults: ClusterFields | None = None
    """Merged into every cluster; a cluster's own keys win."""
    clusters: list[ClusterEntry] | None = None
    inventory: InventorySection | None = None
    """Further sources of clusters."""
    state_file: PathValue = None
    """Where outage streaks are kept across restarts."""
