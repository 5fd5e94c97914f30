"""Security headers on every answer; the status page's policy allows only its own blocks."""

from __future__ import annotations

import asyncio
import re

import aiohttp
import bcrypt

from akv_exporter.config import load_config
from akv_exporter.web.security import NOTHING
from tests.helpers.configs import config_for
from tests.helpers.exporter import started
from tests.helpers.simulator import basic_auth

SAME_EVERYWHERE = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


def policy(header: str) -> dict[str, list[str]]:
    directives = (part.split() for part in header.split(";") if part.strip())
    return {name: values for name, *values in directives}


async def test_every_answer_carries_the_headers_errors_and_401_included(fake_ontap, tmp_path):
    digest = bcrypt.hashpw(b"pass", bcrypt.gensalt(4)).decode()
    config = config_for(tmp_path, fake_ontap.url)
    config.path.write_text(
        config.path.read_text() + f"web:\n  basic_auth_users:\n    prometheus: '{digest}'\n"
    )
    exporter, runner, base = await started(load_config(config.path))
    await asyncio.wait_for(exporter.wait_ready(), 10)
    auth = basic_auth("prometheus", "pass")
    answers = {}
    try:
        async with aiohttp.ClientSession() as http:
            for path, credentials in [
                ("/", auth),
                ("/metrics", auth),
                ("/api/v1/status", auth),
                ("/probe?target=nope", auth),
                ("/no-such-page", auth),
                ("/-/healthy", {}),
                ("/", {}),  # 401
            ]:
                async with http.get(base + path, headers=credentials) as response:
                    await response.read()
                    answers[(path, not credentials)] = (response.status, response.headers)
    finally:
        await runner.cleanup()
        await exporter.stop()
    statuses = [status for status, _ in answers.values()]
    assert statuses == [200, 200, 200, 400, 404, 200, 401]
    for (path, _), (_, headers) in answers.items():
        for name, value in SAME_EVERYWHERE.items():
            assert headers.get(name) == value, (path, name)
        csp = policy(headers["Content-Security-Policy"])
        assert csp["frame-ancestors"] == ["'none'"], path
        assert "'unsafe-inline'" not in headers["Content-Security-Policy"], path
    assert answers[("/metrics", False)][1]["Content-Security-Policy"] == NOTHING


async def test_the_page_policy_allows_its_own_files_and_nothing_inline(fake_ontap, tmp_path):
    exporter, runner, base = await started(config_for(tmp_path, fake_ontap.url))
    await asyncio.wait_for(exporter.wait_ready(), 10)
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(base + "/") as response:
                page = await response.text()
                csp = policy(response.headers["Content-Security-Policy"])
            assets = re.findall(r'(?:src|href)="(static/[^"]+)"', page)
            for asset in assets:
                async with http.get(f"{base}/{asset}") as response:
                    assert response.status == 200, asset
                    assert response.headers["X-Content-Type-Options"] == "nosniff"
    finally:
        await runner.cleanup()
        await exporter.stop()
    assert len(assets) == 2  # the script and the style sheet
    assert csp["script-src"] == ["'self'"] and csp["style-src"] == ["'self'"]
    assert csp["default-src"] == ["'none'"] and csp["base-uri"] == ["'none'"]
    # Nothing inline for the policy to refuse: no script or style block, attribute or handler.
    assert "<script>" not in page and "<style" not in page
    assert " style=" not in page and not re.search(r"<[^>]+\son[a-z]+=", page)
