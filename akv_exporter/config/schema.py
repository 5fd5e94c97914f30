"""The JSON Schema of the configuration file, generated from its models (akv_exporter.config.model).

An editor with the YAML language server validates a configuration as it is typed when the file's
first line names the schema (config/akv-exporter.example.yml does). `make generated`
(docs/generate.py) writes it after a model changed; a test fails while the file is stale.
"""

from __future__ import annotations

import json

from akv_exporter.config.model import ConfigFile

SCHEMA_ID = "akv-exporter.schema.json"


def json_schema() -> dict:
    """Return the JSON Schema (draft 2020-12) of akv-exporter's configuration file."""
    schema = ConfigFile.model_json_schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID, **schema}


def schema_text() -> str:
    """Return the schema as published: indented JSON, keys in model order, a final newline."""
    return json.dumps(json_schema(), indent=2, ensure_ascii=False) + "\n"
