"""Talking to the simulator: its REST dialect (basic auth, GET, paging) and its control API."""

from __future__ import annotations

import base64
import json
from typing import Any

import aiohttp

from tests.helpers.repository import REPO

EXAMPLE_SCENARIO = REPO / "config" / "simulator" / "scenario.example.yml"


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


def cluster_url(sim: Any, name: str) -> str:
    """Return the ONTAP URL of the running simulator's cluster ``name``."""
    return next(c.url for c in sim.clusters if c.name == name)


async def control(
    session: aiohttp.ClientSession, sim: Any, method: str, path: str, body: Any = None
) -> tuple[int, Any]:
    """Return (status, JSON body) of one request to the simulator's control API; a str body
    goes as it is, anything else as JSON."""
    data = body if isinstance(body, str) else json.dumps(body) if body is not None else None
    async with session.request(method, f"{sim.control_url}{path}", data=data) as response:
        return response.status, await response.json()


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
