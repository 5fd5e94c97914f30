"""ONTAP's answers: AKV records as ONTAP sends them, NetApp's schema of them, and the
slow polls' answers (key-manager policy, encrypted volumes, EMS events)."""

from __future__ import annotations

import copy
import functools
import json
from datetime import UTC, datetime
from typing import Any

import marshmallow

from tests.helpers.repository import REPO


def akv_record(
    uuid: str = "11111111-1111-1111-1111-111111111111",
    svm: str | None = "vs1",
    nodes: tuple[str, ...] = ("n1", "n2"),
    *,
    reachable: bool = True,
    kek: bool = True,
    ekmip_down: tuple[str, ...] = (),
    enabled: bool = True,
) -> dict:
    """Return an azure-key-vaults record as ONTAP 9.14+ sends it with the advanced fields."""
    record: dict = {
        "uuid": uuid,
        "scope": "svm" if svm else "cluster",
        "enabled": enabled,
        "configuration": {"name": "default", "uuid": uuid},
        "name": "https://vault1.vault.azure.net/",
        "key_id": "https://vault1.vault.azure.net/keys/key1/0123456789abcdef0123456789abcdef",
        "client_id": "aaaaaaaa-bbbb-aaaa-bbbb-aaaaaaaaaaaa",
        "tenant_id": "zzzzzzzz-yyyy-zzzz-yyyy-zzzzzzzzzzzz",
        "authentication_method": "client_secret",
    }
    if svm:
        record["svm"] = {"name": svm, "uuid": "22222222-2222-2222-2222-222222222222"}
    if not enabled:
        return record
    record["azure_reachability"] = (
        {"reachable": True, "code": "0", "message": ""}
        if reachable
        else {
            "reachable": False,
            "code": "65537549",
            "message": "AKV service is not reachable from all nodes - reason: timed out.",
        }
    )
    record["state"] = (
        {"available": True, "code": "0", "message": ""}
        if kek
        else {
            "available": False,
            "code": "65537551",
            "message": "Top-level internal key protection key (KEK) is unavailable on the "
            "following nodes with the associated reasons: Node: n1. Reason: unavailable.",
        }
    )
    record["ekmip_reachability"] = [
        {
            "node": {"name": node, "uuid": f"{index:08d}-0000-0000-0000-000000000000"},
            "reachable": node not in ekmip_down,
            "code": "65537552" if node in ekmip_down else "0",
            "message": "embedded KMIP server status unavailable on node."
            if node in ekmip_down
            else "",
        }
        for index, node in enumerate(nodes)
    ]
    return record


# NetApp's AKV definitions from its public unified.yml (provenance in its x-excerpt-source), kept
# in the repository so the test runs wherever the repository is cloned.
OPENAPI_EXCERPT = REPO / "tests" / "data" / "ontap-akv-openapi-excerpt.json"


AKV_PATH = "/api/security/azure-key-vaults"


def _openapi_to_jsonschema(node: Any) -> Any:
    """Return a Swagger 2.0 schema as JSON Schema: x-nullable allows null, no extra fields."""
    if isinstance(node, list):
        return [_openapi_to_jsonschema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _openapi_to_jsonschema(value) for key, value in node.items()}
    if out.get("x-nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    if out.get("type") == "object" and "properties" in out:
        # Stricter than NetApp's definition: a field the simulator invents fails the test.
        out["additionalProperties"] = False
    return out


def akv_schema() -> dict[str, Any]:
    """Return a JSON Schema for one ``azure_key_vault`` record, from NetApp's OpenAPI excerpt."""
    document = json.loads(OPENAPI_EXCERPT.read_text())
    definitions = _openapi_to_jsonschema(copy.deepcopy(document["definitions"]))
    # The excerpt leaves out `href`, which every `_links.self` refers to.
    definitions["href"] = {
        "type": "object",
        "properties": {"href": {"type": "string"}},
        "additionalProperties": False,
    }
    return {"$ref": "#/definitions/azure_key_vault", "definitions": definitions}


def relax_9_8(record: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """Return the record with 9.8's quirks undone (integer codes, state.cluster_state).

    9.8 clusters send what NetApp's own example answer and its 9.8-era library show, which the
    string-typed schema does not allow; the second value says whether anything was undone.
    """
    relaxed = copy.deepcopy(record)
    changed = False
    checks = [relaxed.get("state"), relaxed.get("azure_reachability")]
    checks += relaxed.get("ekmip_reachability", [])
    for check in checks:
        if isinstance(check, dict) and isinstance(check.get("code"), int):
            check["code"] = str(check["code"])
            changed = True
    state = relaxed.get("state")
    if isinstance(state, dict) and "cluster_state" in state:
        state["available"] = state.pop("cluster_state")
        changed = True
    return relaxed, changed


# NetApp's example answer of GET /api/security/key-manager-configs (netapp_ontap's docs).
NETAPP_POLICY = {
    "health_monitor_polling_interval": 15,
    "cc_mode_enabled": False,
    "_links": {"self": {"href": "/api/security/key-manager-configs"}},
    "health_monitor_policy": {
        km: {"manage_volume_offline": True, "enabled": True}
        for km in ("okm", "akv", "aws", "gcp", "kmip", "ikp")
    },
    "cloud_kms_retry_count": 3,
}


def policy(*, offline: bool = True, interval: int = 15) -> dict:
    body = {**NETAPP_POLICY, "health_monitor_polling_interval": interval}
    body["health_monitor_policy"] = {
        **NETAPP_POLICY["health_monitor_policy"],
        "akv": {"enabled": True, "manage_volume_offline": offline},
    }
    return body


def volume(svm: str, state: str = "online", index: int = 0) -> dict:
    return {
        "uuid": f"{index:08d}-1111-2222-3333-444444444444",
        "name": f"{svm}_vol{index}",
        "svm": {"name": svm, "uuid": "22222222-2222-2222-2222-222222222222"},
        "state": state,
        "encryption": {"enabled": True},
    }


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


def event(
    node: str, index: int, ts: float, name: str = "ekmip.akv.notAvailable", svm: str = ""
) -> dict:
    """Return an EMS event record; ``svm`` adds NetApp's ``svm`` parameter (ekmip.akv.*)."""
    record = {
        "index": index,
        "time": iso(ts),
        "node": {"name": node, "uuid": "f087b8e3-99ac-11e8-b5a5-005056bb4ec7"},
        "message": {"name": name, "severity": "error"},
        "log_message": f"{name}: Azure Key Vault   is not available\n(node {node}).",
    }
    if svm:
        record["parameters"] = [{"name": "configName", "value": "c"}, {"name": "svm", "value": svm}]
    return record


# NetApp's own schemas (netapp_ontap): every key of a record must be one of their fields.


def _walk(value: Any, schema: marshmallow.Schema, where: str) -> None:
    """Fail on any key the schema has no field for, at any depth (from_dict checks the top)."""
    by_key = {f.data_key or name: f for name, f in schema.fields.items()}
    for key, item in value.items():
        assert key in by_key, f"{where}.{key}: not a field of {type(schema).__name__}"
        _walk_field(item, by_key[key], f"{where}.{key}")


def _walk_field(value: Any, field: marshmallow.fields.Field, where: str) -> None:
    if value is None:
        return
    if isinstance(field, marshmallow.fields.List):
        assert isinstance(value, list), f"{where}: expected a list"
        for index, item in enumerate(value):
            _walk_field(item, field.inner, f"{where}[{index}]")
    elif isinstance(field, marshmallow.fields.Nested):
        assert isinstance(value, dict), f"{where}: expected an object"
        _walk(value, field.schema, where)


@functools.cache
def _schema(resource: Any) -> marshmallow.Schema:
    # One instance per resource: building NetApp's larger schemas is slow.
    return resource._schema()


def netapp_validate(resource: Any, record: dict[str, Any], where: str) -> Any:
    """Return NetApp's object for ``record``; fail if NetApp's schema refuses any part of it."""
    _walk(record, _schema(resource), where)
    return resource.from_dict(record, strict=True)
