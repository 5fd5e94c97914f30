"""The status page of the real simulated fleet in Chromium: an incident injected through the
simulator's control API comes first, and healing it shows after the page's own refresh. The
README's screenshot is the mixed fleet's (`make screenshot` writes docs/images/status-page.png)."""

from __future__ import annotations

import os

import pytest
from playwright.async_api import async_playwright

from tests.helpers.browser import CHROMIUM_ARGS, watch_csp
from tests.helpers.fleet import release, start_fleet
from tests.helpers.loopback import http_json, wait_until
from tests.helpers.repository import REPO, require_binary

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


# `make screenshot` refreshes the README's picture; otherwise the test leaves the tree alone.
README_SCREENSHOT = REPO / "docs" / "images" / "status-page.png"


@pytest.fixture
def mixed_fleet(tmp_path):
    # Seed 1's 12 clusters: AKV everywhere, and one cluster each with Google Cloud KMS (9.13.1),
    # AWS KMS, Barbican, external KMIP servers (9.15.1: node states) and the Onboard Key Manager.
    fleet = start_fleet(tmp_path, clusters=12, seed=1, interval=1.0)
    yield fleet
    fleet.stop()


async def test_mixed_fleet_page_leads_with_a_google_outage_and_a_kmip_server_down(
    mixed_fleet, tmp_path
):
    """The README's screenshot: the real exporter polling the simulated mixed fleet, with a
    Google Cloud KMS outage and one KMIP server not responding from one node injected through
    the simulator's control API."""
    chromium = require_binary("chromium", "chromium")
    fleet = mixed_fleet
    clusters = fleet.clusters()
    google = next(c for c in clusters if c["gcp_kms"])
    kmip_cluster, kmip = next(
        (c, m)
        for c in clusters
        if release(c) >= (9, 13, 1)  # node states: 9.13 and later
        for m in http_json(f"{fleet.simulator.control_url}/simulator/clusters/{c['name']}")[
            "key_managers"
        ]
        if m["type"] == "kmip" and len(m["servers"]) > 1
    )
    server = next(iter(kmip["servers"]))  # one of its servers; the others still answer
    node = kmip_cluster["nodes"][0]
    fleet.patch(google["name"], {"gcp_kms": {"*": {"google_reachability": {"reachable": False}}}})
    fleet.patch(
        kmip_cluster["name"],
        {
            "key_managers": {
                kmip["uuid"]: {"servers": {server: {"node_states": {node: "not_responding"}}}}
            }
        },
    )
    google_state = f'article[data-name="{google["name"]}"] h3 .state'
    kmip_state = f'article[data-name="{kmip_cluster["name"]}"] h3 .state'
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = await browser.new_page(viewport={"width": 1360, "height": 900})
        violations = await watch_csp(page)
        # Both incidents reach the page after a poll and a refresh; then a page that holds still.
        await page.goto(f"{fleet.exporter_url}/?refresh=1")
        await page.locator(google_state).wait_for(state="attached", timeout=30_000)
        await page.locator(kmip_state).wait_for(state="attached", timeout=30_000)
        await page.goto(f"{fleet.exporter_url}/?refresh=0")

        names = await page.eval_on_selector_all(".cluster", "els => els.map(e => e.dataset.name)")
        assert len(names) == 12
        # The page (red) first, then the warning (amber); the healthy rest below.
        assert names[:2] == [google["name"], kmip_cluster["name"]], names
        assert await page.locator(google_state).inner_text() == "GOOGLE UNREACHABLE"
        outage = await page.locator(f'article[data-name="{google["name"]}"]').inner_text()
        assert "Google Cloud KMS" in outage and "65537730" in outage
        assert await page.locator(kmip_state).inner_text() == "KEY SERVER DOWN"
        down = await page.locator(f'article[data-name="{kmip_cluster["name"]}"]').inner_text()
        assert server in down and node in down and "KMIP" in down
        # The node-by-configuration EKMIP grid has no column for the KMIP servers (no EKMIP;
        # their nodes are in the row above): it read UNKNOWN on every node, the failing one too.
        grid = page.locator(f'article[data-name="{kmip_cluster["name"]}"] table.ekmip')
        assert "UNKNOWN" not in await grid.inner_text()
        for name in names[2:]:
            state = page.locator(f'tr.cluster[data-name="{name}"] td .state').first
            assert await state.inner_text() == "HEALTHY", name
        # Readable at a laptop's width: the page does not scroll sideways.
        page_width = await page.evaluate("[document.documentElement.scrollWidth, innerWidth]")
        assert page_width[0] <= page_width[1], page_width
        screenshot = tmp_path / "status-page.png"
        if os.environ.get("AKV_UPDATE_SCREENSHOT") == "1":
            screenshot = README_SCREENSHOT
        await page.screenshot(path=str(screenshot), full_page=True)
        assert screenshot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
        assert violations == []
        await browser.close()
