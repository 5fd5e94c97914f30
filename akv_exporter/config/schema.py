"""The JSON Schema of the configuration file, generated from its models (akv_exporter.config.model).

An editor with the YAML language server validates a configuration as it is typed when the file's
first line names the schema (config/akv-exporter.example.yml does). `make generated`
(docs/generate.py) writes it after a model changed; a test fails while the file is stale.
docs/web-config.schema.json does the same for --web.config.file's file.
"""

from __future__ import annotations

import json

from pydantic import BaseModel

from akv_exporter.config.model import ConfigFile
from akv_exporter.config.web_file import WebConfigFile

SCHEMA_ID = "akv-exporter.schema.json"
WEB_SCHEMA_ID = "web-config.schema.json"


def json_schema(model: type[BaseModel] = ConfigFile, schema_id: str = SCHEMA_ID) -> dict:
    """Return the JSON Schema (draft 2020-12) of akv-exporter's configuration file."""
    schema = model.model_json_schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": schema_id, **schema}


def schema_text() -> str:
    """Return the schema as published: indented JSON, keys in model order, a final newline."""
    return json.dumps(json_schema(), indent=2, ensure_ascii=False) + "\n"


def web_schema_text() -> str:
    """Return the JSON Schema of the web configuration file (--web.config.file), as published."""
    schema = json_schema(WebConfigFile, WEB_SCHEMA_ID)
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"
