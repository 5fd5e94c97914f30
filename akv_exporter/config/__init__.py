"""The configuration: the one place that knows the file's format, its defaults and its errors.

- ``values``: what a configuration is once read (frozen dataclasses every module is given);
- ``model``: the file's format as pydantic models, from which its JSON Schema is generated;
- ``load``: validating a file part by part, one line per problem, and building the values;
- ``yamlfile``: reading YAML that remembers lines, for this and the inventory's files.
"""

from akv_exporter.config.load import (
    SECRET_KEYS,
    load_config,
    parse_cluster_list,
    parse_config,
    read_cluster_list,
    read_config,
)
from akv_exporter.config.values import (
    DEFAULT_LISTEN,
    DEFAULT_MIN_INTERVAL,
    DEFAULT_STATE_FILE,
    RESERVED_LABELS,
    ClusterConfig,
    Config,
    ConfigError,
    InventoryConfig,
    PollConfig,
    SecretSource,
    TlsConfig,
    WebConfig,
    cluster_url,
    expand_home,
    label_name_problem,
    parse_duration,
)
from akv_exporter.config.yamlfile import MAX_CONFIG_BYTES, parse_yaml, read_text

__all__ = [
    "DEFAULT_LISTEN",
    "DEFAULT_MIN_INTERVAL",
    "DEFAULT_STATE_FILE",
    "MAX_CONFIG_BYTES",
    "RESERVED_LABELS",
    "SECRET_KEYS",
    "ClusterConfig",
    "Config",
    "ConfigError",
    "InventoryConfig",
    "PollConfig",
    "SecretSource",
    "TlsConfig",
    "WebConfig",
    "cluster_url",
    "expand_home",
    "label_name_problem",
    "load_config",
    "parse_cluster_list",
    "parse_config",
    "parse_duration",
    "parse_yaml",
    "read_cluster_list",
    "read_config",
    "read_text",
]
