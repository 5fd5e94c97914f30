"""Shared by the simulator tests: talking to a simulated cluster, NetApp's AKV schema."""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path
from typing import Any

import aiohttp

REPO = Path(__file__).resolve().parents[1]
EXAMPLE_SCENARIO = REPO / "config" / "simulator" / "scenario.example.yml"
# NetApp's AKV definitions from its public unified.yml (provenance in its x-excerpt-source), kept
# in the repository so the test runs wherever the repository is cloned.
OPENAPI_EXCERPT = REPO / "tests" / "data" / "ontap-akv-openapi-excerpt.json"
AKV_PATH = "/api/security/azure-key-vaults"


def basic_auth(username: str = "admin", password: str = "netapp1!") -> dict[str, str]:
    """Return the Authorization header for HTTP basic authentication."""
    credentials = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"Authorization": f"Basic {credentials}"}


async def get(
    session: aiohttp.ClientSession,
    url: str,
    *,
    auth: tuple[str, str] = ("admin", "netapp1!"),
    headers: dict[str, str] | None = None,
) -> tuple[int, Any, aiohttp.typedefs.LooseHeaders]:
    """Return (status, decoded JSON body or the text, headers) of one GET."""
    headers = {**basic_auth(*auth), **(headers or {})}
    async with session.get(url, headers=headers) as response:
        text = await response.text()
        try:
            body: Any = json.loads(text)
        except json.JSONDecodeError:
            body = text
        return response.status, body, response.headers


async def all_pages(
    session: aiohttp.ClientSession, base_url: str, first: str, **kwargs: Any
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Return (every record, every page body) following ``_links.next`` from ``first``."""
    records: list[dict[str, Any]] = []
    pages: list[dict[str, Any]] = []
    href: str | None = first
    while href is not None:
        status, body, _ = await get(session, base_url + href, **kwargs)
        assert status == 200, body
        pages.append(body)
        records.extend(body["records"])
        href = body["_links"].get("next", {}).get("href")
        assert len(pages) < 1000, "paging does not end"
    return records, pages


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
