"""A real browser (Debian's chromium driven by Playwright) fills the example Web-to-Case form with
non-ASCII input, lands on the shop's return page, and the case holds exactly those characters.

Skips when chromium or Playwright is missing, unless CASEGATE_REQUIRE_SERVICES=1 (CI), where it fails."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from aiohttp import web

from tests.pipeline import settings_for, start_pipeline
from tests.services import service_missing

CHROMIUM = "/usr/bin/chromium"
NAME = "Zoë Ñúñez"
SUBJECT = "Ça ne marche pas — 東京"
DESCRIPTION = "Der Drucker 🖨️ brennt 🔥\nZweite Zeile: «ß» ✓\n\n<script>alert(1)</script>"


async def start_return_page() -> tuple[web.AppRunner, int]:
    """The shop's own thank-you page, where the form's retURL points."""

    async def thanks(_request: web.Request) -> web.Response:
        return web.Response(text="<!DOCTYPE html><title>Shop</title><h1>Thanks from the shop</h1>",
                            content_type="text/html")

    app = web.Application()
    app.router.add_get("/support/thanks", thanks)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port: int = runner.addresses[0][1]
    return runner, port


async def test_a_browser_submits_the_example_form_in_utf8(tmp_path: Path) -> None:
    if not os.access(CHROMIUM, os.X_OK):
        service_missing(f"{CHROMIUM} not installed (apt-get install chromium)")
    if importlib.util.find_spec("playwright") is None:
        service_missing("the playwright package is not installed")
    from playwright.async_api import async_playwright

    shop, shop_port = await start_return_page()
    return_url = f"http://127.0.0.1:{shop_port}/support/thanks"
    settings = settings_for("local-sqlite", tmp_path, channels={"web_form": {
        "enabled": True, "orgid": "00D5g000004XyZ1", "allowed_redirect_hosts": [f"127.0.0.1:{shop_port}"],
        "thank_you_url": return_url}})
    p = await start_pipeline(settings)
    try:
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            try:
                page = await browser.new_page()
                await page.goto(f"http://127.0.0.1:{p.daemon.http_port}/web-to-case/form")
                await page.get_by_label("Name").fill(NAME)
                await page.get_by_label("Email").fill("zoe@example.org")
                await page.get_by_label("Phone").fill("+34 912 345 678")
                await page.get_by_label("Type").select_option("Problem")
                await page.get_by_label("Subject").fill(SUBJECT)
                await page.get_by_label("Description").fill(DESCRIPTION)
                async with page.expect_navigation(url=return_url):
                    await page.get_by_role("button", name="Submit").click()
                assert page.url == return_url
                assert await page.locator("h1").inner_text() == "Thanks from the shop"
            finally:
                await browser.close()
        [summary] = await p.wait_for(lambda cs: len(cs) == 1)
        case = await p.case(summary["CaseNumber"])
        assert (case["SuppliedName"], case["Subject"], case["Description"]) == (NAME, SUBJECT, DESCRIPTION)
        assert (case["SuppliedEmail"], case["SuppliedPhone"], case["Type"], case["Origin"]) == (
            "zoe@example.org", "+34912345678", "Problem", "Web")
        assert case["ConversationEntries"][0]["Message"] == DESCRIPTION
    finally:
        await p.daemon.stop()
        await shop.cleanup()
