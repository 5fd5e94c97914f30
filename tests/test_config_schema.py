"""The configuration's JSON Schema: generated from the models, published, and true to the examples.

An editor with the YAML language server validates a configuration against
docs/akv-exporter.schema.json as it is typed; these tests keep that file equal to what the models
generate, and every configuration the project ships or documents valid against it.
"""

from __future__ import annotations

import json
import re

import jsonschema
import pytest
import yaml

from akv_exporter.config import ConfigError, load_config
from akv_exporter.config.model import ConfigFile
from akv_exporter.config.schema import schema_text
from tests.helpers.configs import write_config
from tests.helpers.repository import REPO

SCHEMA = REPO / "docs" / "akv-exporter.schema.json"
EXAMPLE = REPO / "config" / "akv-exporter.example.yml"
TOP_KEYS = set(ConfigFile.model_fields)
_FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
_HEREDOC = re.compile(r"^cat > \S+\.ya?ml <<'?(\w+)'?\n(.*?)^\1$", re.S | re.M)


def _validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def _is_configuration(document: object) -> bool:
    """Return whether a YAML document is an akv-exporter configuration.

    Only the configuration's keys; a simulator scenario has `clusters` too, but its clusters
    have no `address` (the simulator gives them one).
    """
    if not isinstance(document, dict) or not document or not set(document) <= TOP_KEYS:
        return False
    clusters = document.get("clusters") or []
    return not any(isinstance(c, dict) and "address" not in c for c in clusters)


def shipped_and_documented_configurations() -> list[tuple[str, object]]:
    """Return (where, document) for every configuration in config/, docs/, README and deploy/."""
    found: list[tuple[str, object]] = [
        (str(path.relative_to(REPO)), yaml.safe_load(path.read_text(encoding="utf-8")))
        for path in sorted((REPO / "config").glob("*.yml"))
    ]
    for page in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        for number, (language, body) in enumerate(_FENCE.findall(page.read_text("utf-8"))):
            # A yaml block, or a file a shell block writes (cat > x.yml <<'YAML' ... YAML).
            bodies = [body] if language in ("yaml", "yml") else []
            bodies += [text for _, text in _HEREDOC.findall(body)] if language == "sh" else []
            found += [(f"{page.name} block {number}", yaml.safe_load(text)) for text in bodies]
    for manifest in sorted((REPO / "deploy").rglob("*.yaml")):
        for document in yaml.safe_load_all(manifest.read_text(encoding="utf-8")):
            if isinstance(document, dict) and document.get("kind") == "ConfigMap":
                for key, text in (document.get("data") or {}).items():
                    if key.endswith((".yml", ".yaml")):
                        found.append((f"{manifest.relative_to(REPO)} {key}", yaml.safe_load(text)))
    return [(where, document) for where, document in found if _is_configuration(document)]


def test_the_published_schema_is_the_one_the_models_generate():
    assert SCHEMA.read_text(encoding="utf-8") == schema_text(), (
        "docs/akv-exporter.schema.json is stale: run `make generated`"
    )


def test_the_example_configuration_names_the_schema_in_its_first_line():
    first = EXAMPLE.read_text(encoding="utf-8").splitlines()[0]
    match = re.fullmatch(r"# yaml-language-server: \$schema=(\S+)", first)
    assert match, first
    assert (EXAMPLE.parent / match.group(1)).resolve() == SCHEMA.resolve()


def test_every_shipped_and_documented_configuration_is_valid_against_the_schema():
    found = shipped_and_documented_configurations()
    wheres = " ".join(where for where, _ in found)
    # Not vacuous: the example, a documented block, a shell block's file and the ConfigMap.
    for expected in ("akv-exporter.example.yml", "configuration.md", "simulator.md", "deploy/"):
        assert expected in wheres, (expected, wheres)
    validator = _validator()
    for where, document in found:
        errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(document)]
        assert not errors, (where, errors)


@pytest.mark.parametrize(
    ("body", "key"),
    [
        ("pol:\n  interval: 30s\n", "pol"),
        ("poll:\n  intervl: 30s\n", "intervl"),
        ("poll:\n  interval: soon\n", "soon"),
        ("poll:\n  concurrency: 0\n", "concurrency"),
        ("clusters:\n  - adress: a\n", "adress"),
        ("clusters:\n  - address: a\n    labels: {bad-name: x}\n", "bad-name"),
        ("web:\n  basic_auth_users: {prom: plaintext}\n", "plaintext"),
        ("clusters:\n  - address: a\n    tls: {verify: maybe}\n", "maybe"),
    ],
)
def test_what_the_loader_refuses_an_editor_shows_too(tmp_path, body, key):
    with pytest.raises(ConfigError):
        load_config(write_config(tmp_path, body))
    errors = list(_validator().iter_errors(yaml.safe_load(body)))
    assert errors, body
    assert any(key in str(e.instance) or key in e.message for e in errors), errors


def test_the_schema_accepts_what_the_loader_accepts(tmp_path, monkeypatch):
    monkeypatch.setenv("ONTAP_PASSWORD", "x")
    body = (
        "poll: {interval: 1h30m, timeout: 45, concurrency: 8}\n"
        "defaults: {username: u, password_env: ONTAP_PASSWORD, labels: {site: ams}}\n"
        "clusters:\n  - {name: a, address: 'https://[fd00::1]:8443', tls: {verify: false}}\n"
        "state_file: ~/state.json\n"
    )
    assert load_config(write_config(tmp_path, body)).poll.interval == 5400
    assert not list(_validator().iter_errors(yaml.safe_load(body)))
