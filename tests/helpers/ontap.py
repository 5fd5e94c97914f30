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


# --- NetApp's example records of the other key managers ---------------------------------------
# From the netapp_ontap 9.19.1 docstrings (resources/gcp_kms.py, aws_kms.py, barbican.py,
# security_key_manager.py, security_keystore.py); the tests check them against NetApp's schemas
# with from_dict(strict=True). Copy before changing one (copy.deepcopy).

NODE1 = {"uuid": "d208115f-7721-11eb-bf83-005056bb150e", "name": "node1"}
NODE2 = {"uuid": "e208115f-7721-11eb-bf83-005056bb150e", "name": "node2"}
SVM = {"uuid": "ec8e0954-fa10-11ef-8c9f-005056bbeee5", "name": "vs0"}

# NetApp's "Retrieving a specific GCKMS's advanced properties", with the ordinary fields of its
# "Retrieving all GCKMS configurations" beside them.
GCP = {
    "uuid": "f72098a2-e908-11ea-bd56-005056bb4222",
    "scope": "svm",
    "svm": SVM,
    "project_id": "testProj",
    "key_ring_location": "global",
    "key_ring_name": "testRing",
    "key_name": "key1",
    "ekmip_reachability": [
        {"message": "", "code": "0", "node": NODE1, "reachable": True},
        {"message": "", "code": "0", "node": NODE2, "reachable": True},
    ],
    "state": {
        "cluster_state": False,
        "message": "The Google Cloud Key Management Service key protection is unavailable on "
        "the following nodes: cluster1-node1.",
        "code": "65537708",
    },
    "google_reachability": {"message": "", "code": "0", "reachable": True},
}
# NetApp's "Retrieving the advanced properties of an AWS configured for a specific SVM".
AWS = {
    "uuid": "d70efc34-aa13-11ec-a059-005056ac7c32",
    "scope": "svm",
    "svm": SVM,
    "region": "us-east-1",
    "key_id": "kmip_key_1",
    "amazon_reachability": {"message": "", "code": "0", "reachable": True},
    "ekmip_reachability": [
        {"message": "", "code": "0", "node": NODE1, "reachable": True},
        {"message": "", "code": "0", "node": NODE2, "reachable": True},
    ],
    "state": {"cluster_state": True, "message": "", "code": "0"},
}
# NetApp's barbican get(fields="*") and get(fields="barbican_reachability"), joined.
BARBICAN = {
    "uuid": "5a134975-fa58-11ef-8c9f-005056bbeee5",
    "enabled": True,
    "scope": "svm",
    "configuration": {"uuid": "5a134975-fa58-11ef-8c9f-005056bbeee5", "name": "myConfiguration"},
    "keystone_url": "https://sample.keystone.com:5000/v3/auth/tokens",
    "key_id": "https://sample.keyid.com:9311/v1/secrets/5c610a4f-ea97-44b5-8682-f4daeafa9647/",
    "svm": {"uuid": "ec8e0954-fa10-11ef-8c9f-005056bbeee5", "name": "barbican_svm"},
    "barbican_reachability": {"message": "", "code": "0", "reachable": True},
    "state": {"cluster_state": True, "message": "", "code": "0"},
}

NODE_I = {"uuid": "661843b3-a0e5-11ed-81ef-005056a7306b", "name": "sti65-vsim-ucs148i"}
NODE_J = {"uuid": "551843b3-a0e5-11ed-81ef-005056a7306b", "name": "sti65-vsim-ucs148j"}
# NetApp's KeyServer get(fields="**") example, inside a key manager of an SVM.
KMIP = {
    "uuid": "ac305d46-aef4-11e9-ad3c-005056bb7636",
    "scope": "svm",
    "svm": {"uuid": "3cbe691b-4ea0-11ef-b477-005056bb677e", "name": "vs0"},
    "configuration": {"uuid": "ac305d46-aef4-11e9-ad3c-005056bb7636", "name": "default"},
    "enabled": True,
    "status": {"message": "No action needed at this time.", "code": 65537200},
    "external": {
        "servers": [
            {
                "server": "10.225.89.34:5696",
                "connectivity": {
                    "cluster_availability": True,
                    "node_states": [
                        {"state": "available", "node": NODE_I},
                        {"state": "not_responding", "node": NODE_J},
                    ],
                },
            },
            {"server": "10.225.89.33:5696", "connectivity": {"cluster_availability": True}},
        ]
    },
}
# NetApp's get_collection(fields="*") OKM example, without onboard (never asked for).
OKM = {
    "uuid": "8ba52e0f-ae22-11e9-b747-005056bb7636",
    "scope": "cluster",
    "configuration": {"uuid": "815e9462-dc57-11e8-9b2c-005056bb017d", "name": "default"},
    "enabled": True,
    "status": {"message": "No action needed at this time.", "code": 65537200},
}
# NetApp's SecurityKeystore get_collection(fields="*") example, plus a blocked AKV key store.
KEY_STORES = [
    {
        "type": "okm",
        "location": "onboard",
        "uuid": "ec8711c9-4e9f-11ef-b477-005056bb677e",
        "configuration": {"uuid": "ec8711c9-4e9f-11ef-b477-005056bb677e", "name": "default"},
        "enabled": True,
        "state": "active",
        "is_svm_kek": False,
        "scope": "cluster",
    },
    {
        "type": "kmip",
        "location": "external",
        "uuid": "d81f43cd-4e9f-11ef-b477-005056bb677e",
        "configuration": {"uuid": "d81f43cd-4e9f-11ef-b477-005056bb677e", "name": "default"},
        "enabled": False,
        "scope": "cluster",
    },
    {
        "type": "akv",
        "location": "external",
        "uuid": "7da22185-4ea0-11ef-b477-005056bb677e",
        "svm": {"uuid": "3cbe691b-4ea0-11ef-b477-005056bb677e", "name": "vs0"},
        "configuration": {"uuid": "7da22185-4ea0-11ef-b477-005056bb677e", "name": "default"},
        "enabled": True,
        "state": "blocked",
        "is_svm_kek": False,
        "scope": "svm",
    },
]
