"""Chromium for the status-page tests: its flags and a watch for CSP violations."""

from __future__ import annotations

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    # Without these Chromium tries to reach the network on its own.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


async def watch_csp(page) -> list[str]:
    """Return a list that fills with every Content-Security-Policy violation ``page`` reports.

    Chromium reports a blocked script, style or load on the console; the page's own
    `securitypolicyviolation` event is logged there too, so neither path can go unnoticed.
    """
    violations: list[str] = []

    def seen(message) -> None:
        if "Content Security Policy" in message.text:
            violations.append(message.text)

    page.on("console", seen)
    await page.add_init_script(
        "document.addEventListener('securitypolicyviolation', event => console.error("
        "'Content Security Policy violation: ' + event.violatedDirective + ' ' +"
        " event.blockedURI));"
    )
    return violations
