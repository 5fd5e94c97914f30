"""The status page in a real browser (Debian's headless Chromium via Playwright).

A realistic fleet of FakeOntap clusters with an incident: one SVM's vault unreachable for 20
minutes, one cluster not answering, one cluster whose ONTAP logged ekmip.akv.keyExpired two
hours ago, one configuration inactive (a note, not a problem). The page must put the problems
first, filter rows as the reader types, keep the filter across its auto-refresh, and show a change
after the next refresh. (The README's screenshot, of the simulated mixed fleet, is taken by
tests/test_status_page_simulated.py.)
"""

from __future__ import annotations

import json
import time

import pytest
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Page, async_playwright

from akv_exporter.config import load_config
from akv_exporter.exporter import Exporter
from akv_exporter.web.app import serve
from tests.helpers.browser import CHROMIUM_ARGS, watch_csp
from tests.helpers.configs import write_config
from tests.helpers.exporter import closed_port_url
from tests.helpers.ontap import akv_record, event, policy, volume
from tests.helpers.repository import require_binary

pytestmark = pytest.mark.browser


async def between_reloads(page: Page, script: str):
    """Return ``script``'s result on a fully loaded page, again if an auto-refresh cut it short."""
    for _ in range(50):
        try:
            await page.wait_for_load_state("load")
            return await page.evaluate(script)
        except PlaywrightError as error:
            if "context was destroyed" not in str(error):
                raise
    raise AssertionError("the page never stayed loaded long enough to be read")


def vault_record(uuid: str, svm: str | None, vault: str, nodes: tuple[str, ...], **state) -> dict:
    record = akv_record(uuid, svm, nodes, **state)
    record["name"] = f"https://{vault}.vault.azure.net/"
    record["key_id"] = f"https://{vault}.vault.azure.net/keys/ontap-kek/{uuid[:8]}0f1e2d3c4b5a6978"
    return record


def nodes_of(cluster: str, count: int) -> tuple[str, ...]:
    return tuple(f"{cluster}-{n:02d}" for n in range(1, count + 1))


async def fleet(make_ontap, tmp_path):
    """Start the fake clusters; return (config, the FakeOntap of each cluster by name)."""
    plan = {
        "ams-prod-01": (
            "ams",
            "9.14.1",
            4,
            [("vs_finance", "kv-ams-fin"), ("vs_erp", "kv-ams-erp")],
        ),
        "fra-prod-02": (
            "fra",
            "9.15.1",
            4,
            [("vs_payments", "kv-fra-pay"), ("vs_hr", "kv-fra-hr")],
        ),
        "dub-dr-01": ("dub", "9.14.1", 2, [(None, "kv-dub-dr")]),
        "par-dev-01": ("par", "9.14.1", 2, [("vs_test", "kv-par-dev"), ("vs_old", "kv-par-old")]),
        "nyc-prod-04": ("nyc", "9.15.1", 2, [("vs_trading", "kv-nyc-trd")]),
    }
    fakes = {}
    lines = []
    for index, (name, (site, release, node_count, configs)) in enumerate(plan.items()):
        fake = await make_ontap()
        major, minor = (int(part) for part in release.split(".")[1:])
        fake.cluster = {
            "name": name,
            "uuid": f"{index:08d}-5e1f-11ee-9f3a-00a098d1c2b3",
            "version": {
                "full": f"NetApp Release {release}: Mon Jan 15 10:00:00 UTC 2024",
                "generation": 9,
                "major": major,
                "minor": minor,
            },
        }
        nodes = nodes_of(name, node_count)
        fake.records = [
            vault_record(f"{index}{n}aaaaaa-1111-4111-8111-11111111111{n}", svm, vault, nodes)
            for n, (svm, vault) in enumerate(configs)
        ]
        fakes[name] = fake
        lines.append(
            f"  - name: {name}\n    address: {fake.url}\n    labels:\n      datacenter: {site}\n"
        )
    # What is at stake (ONTAP's policy, encrypted volumes, ONTAP's own events): the incident's
    # cluster takes volumes offline per its policy, nyc's policy keeps them online.
    for name, fake in fakes.items():
        fake.key_manager_config = policy(offline=name != "nyc-prod-04")
        if plan[name][1] < "9.15.1":  # the policy is in NetApp's references from 9.15.1
            del fake.key_manager_config["health_monitor_policy"]
        svms = [svm or "svm0" for svm, _ in plan[name][3]]
        fake.volumes = [
            volume(svm, index=i) for n, svm in enumerate(svms) for i in range(6 + 9 * n)
        ]
        fake.events = []
    now = time.time()
    fakes["fra-prod-02"].events = [
        event(node, 400 + n, now - 1140, "ekmip.akv.notAvailable")
        for n, node in enumerate(nodes_of("fra-prod-02", 2))
    ]
    expired = event("dub-dr-01-01", 91, now - 7200, "ekmip.akv.keyExpired")
    expired["log_message"] = (
        "ekmip.akv.keyExpired: The current version of the key of the Azure Key Vault "
        '"https://kv-dub-dr.vault.azure.net/" (default) has expired.'
    )
    fakes["dub-dr-01"].events = [expired]
    # The incident: vs_payments cannot reach its vault; the dev cluster's old SVM is disabled.
    payments = fakes["fra-prod-02"].records[0]
    fakes["fra-prod-02"].records[0] = vault_record(
        payments["uuid"], "vs_payments", "kv-fra-pay", nodes_of("fra-prod-02", 4), reachable=False
    )
    old = fakes["par-dev-01"].records[1]
    fakes["par-dev-01"].records[1] = vault_record(
        old["uuid"], "vs_old", "kv-par-old", (), enabled=False
    )
    lines.append(
        f"  - name: lon-prod-03\n    address: {closed_port_url()}\n"
        "    labels:\n      datacenter: lon\n"
    )
    state = tmp_path / "state.json"
    # The vault has been unreachable for 20 minutes: ONTAP's 60-minute clock is a third gone.
    state.write_text(
        json.dumps(
            {
                "version": 1,
                "azure_unreachable_since": {"fra-prod-02": {payments["uuid"]: time.time() - 1200}},
            }
        )
    )
    body = (
        f"state_file: {state}\npoll:\n  interval: 60s\n  timeout: 2s\n"
        "defaults:\n  username: admin\n  password: netapp1!\nclusters:\n" + "".join(lines)
    )
    return load_config(write_config(tmp_path, body)), fakes


async def test_status_page_in_chromium(make_ontap, tmp_path):
    chromium = require_binary("chromium", "chromium")
    config, fakes = await fleet(make_ontap, tmp_path)
    exporter = Exporter(config, process_metrics=False)
    # Polls are driven by the test (no background schedule), so the page changes only when told.
    for _ in range(4):
        await exporter.poll_all()
    runner = await serve(exporter, "127.0.0.1", 0)
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            page = await browser.new_page(viewport={"width": 1360, "height": 900})
            violations = await watch_csp(page)
            await page.goto(f"{base}/")

            names = await page.eval_on_selector_all(
                ".cluster", "els => els.map(e => e.dataset.name)"
            )
            assert names == [
                "lon-prod-03",
                "fra-prod-02",
                "dub-dr-01",
                "ams-prod-01",
                "nyc-prod-04",
                "par-dev-01",
            ]
            down = page.locator('article[data-name="lon-prod-03"]')
            assert await down.locator("h3 .state").inner_text() == "DOWN"
            incident = page.locator('article[data-name="fra-prod-02"]')
            assert await incident.locator("h3 .state").inner_text() == "AZURE UNREACHABLE"
            assert "min left" in await incident.inner_text()
            # ONTAP logged ekmip.akv.keyExpired two hours ago: a warning, never "healthy".
            expired = page.locator('article[data-name="dub-dr-01"]')
            assert await expired.locator("h3 .state").inner_text() == "KEY VERSION EXPIRED"
            assert "ONTAP logged ekmip.akv.keyExpired at" in await expired.inner_text()
            # An inactive configuration is a note: its cluster is a healthy row, not a problem.
            inactive = page.locator('tr[data-name="par-dev-01"]')
            assert await inactive.locator("td .state").first.inner_text() == "HEALTHY"
            assert "(1 inactive)" in await inactive.inner_text()
            tiles = await page.locator(".summary").inner_text()
            assert "5 / 6" in tiles and "1 of 8" in tiles
            # Readable at a laptop's width: ONTAP's message has room (squeezed, it was a column of
            # single words), and the page does not scroll sideways.
            widths = await incident.locator("table.akvs td.msg").evaluate_all(
                "cells => cells.map(cell => cell.getBoundingClientRect().width)"
            )
            assert min(widths) >= 180, widths
            page_width = await page.evaluate("[document.documentElement.scrollWidth, innerWidth]")
            assert page_width[0] <= page_width[1], page_width
            screenshot = tmp_path / "status-page.png"
            await page.screenshot(path=str(screenshot), full_page=True)
            assert screenshot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")

            # Filtering: typing hides every cluster that does not match.
            await page.fill("#filter", "fra")
            visible = await page.eval_on_selector_all(
                ".cluster", "els => els.filter(e => !e.hidden).map(e => e.dataset.name)"
            )
            assert visible == ["fra-prod-02"]
            assert await page.locator("#shown").inner_text() == "1 of 6 clusters match"
            assert "q=fra" in page.url

            # Auto-refresh: a new problem appears without the reader doing anything, and the
            # filter text survives the reload.
            await page.goto(f"{base}/?refresh=1&q=prod")
            folded = page.locator('tr[data-name="nyc-prod-04"] details')
            await folded.locator("summary").click()
            fakes["ams-prod-01"].records[1] = vault_record(
                fakes["ams-prod-01"].records[1]["uuid"],
                "vs_erp",
                "kv-ams-erp",
                nodes_of("ams-prod-01", 4),
                kek=False,
            )
            await exporter.poll(exporter.find("ams-prod-01"))
            changed = page.locator('article[data-name="ams-prod-01"] h3 .state')
            await changed.wait_for(state="attached", timeout=15_000)
            # One look at one loaded page (its script run), however often it reloads meanwhile.
            state, query, hidden = await between_reloads(
                page,
                """() => [
                    document.querySelector('article[data-name="ams-prod-01"] h3 .state')
                        .textContent,
                    document.getElementById("filter").value,
                    [...document.querySelectorAll(".cluster")]
                        .filter(e => e.hidden).map(e => e.dataset.name),
                ]""",
            )
            assert state == "KEK UNAVAILABLE"
            assert query == "prod"
            assert sorted(hidden) == ["dub-dr-01", "par-dev-01"]
            # A fold-out the reader opened is still open after the next reload.
            await page.wait_for_event("load", timeout=15_000)
            assert await folded.evaluate("d => d.open")
            # The page ran its script and styles, and the policy blocked nothing of its own.
            assert await page.locator("#shown").inner_text()
            assert violations == []
            # The watch can fail: an injected inline script is refused and reported.
            await page.goto(f"{base}/?refresh=0")
            await page.evaluate(
                "() => { const s = document.createElement('script');"
                " s.textContent = 'window.injected = 1'; document.body.append(s); }"
            )
            await page.wait_for_timeout(500)
            assert await page.evaluate("() => window.injected") is None
            assert violations, "an inline script ran or its violation went unreported"
            await browser.close()
    finally:
        await runner.cleanup()
        await exporter.stop()
