"""The status page of the real simulated fleet in Chromium: an incident injected through the
simulator's control API comes first, and healing it shows after the page's own refresh."""

from __future__ import annotations

import pytest
from playwright.async_api import async_playwright

from tests.helpers.browser import CHROMIUM_ARGS, watch_csp
from tests.helpers.fleet import start_fleet
from tests.helpers.loopback import wait_until
from tests.helpers.repository import require_binary

pytestmark = pytest.mark.browser


@pytest.fixture
def fleet(tmp_path):
    fleet = start_fleet(tmp_path, clusters=6, seed=8, interval=1.0)
    yield fleet
    fleet.stop()


async def test_injected_vault_outage_leads_the_page_and_clears_after_healing(fleet):
    chromium = require_binary("chromium", "chromium")
    victim, akv = next(
        (c["name"], a)
        for c in fleet.clusters()
        for a in c["akvs"]
        if a["scope"] == "svm" and a.get("enabled", True)
    )
    fleet.patch(victim, {"akvs": {akv["uuid"]: {"azure_reachability": {"reachable": False}}}})
    wait_until(
        lambda: any(
            a.uuid == akv["uuid"] and a.service is not None and not a.service.ok
            for s in fleet.exporter.snapshots().values()
            for a in s.key_managers
        ),
        "the exporter to see the outage",
        30,
    )
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = await browser.new_page()
        violations = await watch_csp(page)
        await page.goto(f"{fleet.exporter_url}/?refresh=1")
        first = page.locator(".cluster").first
        assert await first.get_attribute("data-name") == victim
        assert await first.locator("h3 .state").inner_text() == "AZURE UNREACHABLE"
        text = await first.inner_text()
        assert "65537549" in text and akv["svm"] in text
        fleet.reset(victim)
        healthy = page.locator(f'tr.cluster[data-name="{victim}"]')
        await healthy.wait_for(state="attached", timeout=20_000)  # after a poll and a refresh
        assert "HEALTHY" in await healthy.inner_text()
        assert violations == []  # the page's Content-Security-Policy blocked nothing of its own
        await browser.close()
