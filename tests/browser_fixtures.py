"""Debian's Chromium driven by Playwright against the live stack (Daphne + a Celery worker).

``ui`` starts Playwright and Chromium for one test, after ``live_stack`` has started its
processes, and stops them when the test ends. Per test and not per session, because Playwright's
sync API runs an asyncio loop on the test's thread for as long as it is started, and Django
refuses ORM calls while a loop runs there (other tests' fixtures included). While the browser
is up, this test process alone sets DJANGO_ALLOW_ASYNC_UNSAFE: Daphne and the worker were
started before it and never see it. Starting Chromium costs about a second.

When Chromium cannot start the tests skip, unless DEVBENCH_REQUIRE_BROWSER=1 (CI): then they fail.

Screenshots go to docs/screenshots/ when DEVBENCH_UPDATE_SCREENSHOTS=1 (to refresh the committed
set), else to the session's temp directory, so that CI runs never change the working tree.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.db import connections

from tests.live_stack import ROOT, LiveStack

CHROMIUM = os.environ.get("DEVBENCH_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
SCREENSHOT_DIR = ROOT / "docs" / "screenshots"
TIMEOUT_MS = 20_000

# Names every control on a page by the rules a screen reader uses (simplified): aria-labelledby,
# aria-label, <label for>, its text, title, placeholder is not a label. Returns the unnamed ones.
UNLABELLED_CONTROLS_JS = """() => {
  const name = (el) => {
    const by = el.getAttribute('aria-labelledby');
    if (by) return by.split(/\\s+/).map((id) => document.getElementById(id)?.textContent || '').join(' ').trim();
    if (el.getAttribute('aria-label')) return el.getAttribute('aria-label').trim();
    if (el.labels && el.labels.length) return Array.from(el.labels).map((l) => l.textContent).join(' ').trim();
    if (el.tagName === 'INPUT' && ['submit', 'button'].includes(el.type)) return el.value.trim();
    return (el.textContent || el.title || '').trim();
  };
  return Array.from(document.querySelectorAll(
    'button, a[href], input:not([type=hidden]), select, textarea, [role=progressbar], pre[tabindex]'
  )).filter((el) => !name(el)).map((el) => el.outerHTML.slice(0, 160));
}"""

HORIZONTAL_OVERFLOW_JS = """() => {
  const root = document.documentElement;
  const wide = Array.from(document.querySelectorAll('body *'))
    .filter((el) => el.getBoundingClientRect().right > root.clientWidth + 1 && el.offsetParent !== null)
    .map((el) => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') + '.' + el.className)
    .slice(0, 5);
  return {scrollWidth: root.scrollWidth, clientWidth: root.clientWidth, wide};
}"""

SET_THEME_JS = """(theme) => {
  localStorage.setItem('theme', theme);
  document.documentElement.setAttribute('data-bs-theme', theme);
  document.documentElement.setAttribute('data-theme', theme);
  const toggle = document.getElementById('theme-toggle');
  if (toggle) toggle.checked = theme === 'dark';
}"""


@dataclass
class BrowserUI:
    """One test's Chromium against the live stack, with the helpers the browser tests share."""

    stack: LiveStack
    browser: object
    screenshot_dir: Path
    problems: list[str] = field(default_factory=list)
    contexts: list = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return self.stack.base_url

    def new_page(self, *, viewport: dict | None = None, locale: str = "en-US", timezone_id: str = "UTC",
                 context=None):
        """A page in a fresh browser context (own cookies and storage), or in the given one."""
        if context is None:
            context = self.browser.new_context(
                base_url=self.base_url, viewport=viewport or DESKTOP, locale=locale, timezone_id=timezone_id,
                color_scheme="light", reduced_motion="reduce", accept_downloads=True,
            )
            context.grant_permissions(["clipboard-read", "clipboard-write"], origin=self.base_url)
            context.set_default_timeout(TIMEOUT_MS)
            self.contexts.append(context)
        page = context.new_page()
        if viewport:
            page.set_viewport_size(viewport)
        page.on("pageerror", lambda error: self.problems.append(f"{page.url}: JavaScript error: {error}"))
        page.on("console", lambda message: self._console(page, message))
        return page

    def _console(self, page, message) -> None:
        text = message.text
        if message.type == "error" and ("Content Security Policy" in text or "Refused to" in text):
            self.problems.append(f"{page.url}: {text}")

    def sign_in(self, page, username: str, password: str, *, lands_on: str) -> None:
        page.goto("/login")
        page.get_by_label("Username").fill(username)
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(re.compile(re.escape(self.base_url + lands_on) + "$"))

    def unlabelled_controls(self, page) -> list[str]:
        return page.evaluate(UNLABELLED_CONTROLS_JS)

    def assert_no_horizontal_scroll(self, page) -> None:
        overflow = page.evaluate(HORIZONTAL_OVERFLOW_JS)
        assert overflow["scrollWidth"] <= overflow["clientWidth"], f"{page.url} scrolls sideways: {overflow}"

    def screenshot(self, page, name: str) -> Path:
        path = self.screenshot_dir / f"{name}.png"
        page.screenshot(path=str(path), full_page=True, animations="disabled", caret="hide")
        return path

    def screenshots_light_and_dark(self, page, name: str) -> None:
        """``<name>-light.png`` and ``<name>-dark.png``, leaving the page in the light theme."""
        page.evaluate("document.activeElement && document.activeElement.blur()")
        page.mouse.move(0, 0)
        for theme in ("light", "dark"):
            page.evaluate(SET_THEME_JS, theme)
            self.screenshot(page, f"{name}-{theme}")
        page.evaluate(SET_THEME_JS, "light")


def bench_card(page, name: str):
    """The dashboard card of the bench called ``name``."""
    return page.locator(".bench-card").filter(has=page.locator(".bench-name", has_text=re.compile(f"^{name}$")))


@pytest.fixture(scope="session")
def screenshot_dir(tmp_path_factory) -> Path:
    if os.environ.get("DEVBENCH_UPDATE_SCREENSHOTS") == "1":
        SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
        return SCREENSHOT_DIR
    return tmp_path_factory.mktemp("screenshots")


def _unavailable(reason: str):
    if os.environ.get("DEVBENCH_REQUIRE_BROWSER") == "1":
        pytest.fail(f"DEVBENCH_REQUIRE_BROWSER=1 but the browser is unavailable: {reason}", pytrace=False)
    pytest.skip(f"browser unavailable: {reason}")


@pytest.fixture
def browser_installed() -> None:
    """Skip (or fail, in CI) before the live stack starts when there is no browser to drive."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError as exc:
        _unavailable(f"the playwright package is not installed ({exc})")
    if not Path(CHROMIUM).exists():
        _unavailable(f"{CHROMIUM} not found (apt-get install chromium)")


@pytest.fixture
def ui(browser_installed, live_stack, screenshot_dir) -> Iterator[BrowserUI]:
    """Chromium (headless, through Playwright) pointed at the live stack."""
    from playwright.sync_api import expect, sync_playwright

    playwright = sync_playwright().start()
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "1"  # see the module docstring
    try:
        try:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        except Exception as exc:  # any launch failure means no browser
            _unavailable(f"{CHROMIUM} did not start: {exc}")
        expect.set_options(timeout=TIMEOUT_MS)
        session = BrowserUI(stack=live_stack, browser=browser, screenshot_dir=screenshot_dir)
        try:
            yield session
        finally:
            for context in session.contexts:
                context.close()
            browser.close()
        if session.problems:
            pytest.fail("the pages reported problems:\n" + "\n".join(session.problems), pytrace=False)
    finally:
        # ORM calls made while Playwright's loop ran used connections of their own (Django keys
        # them by context): close those here, or the test database could not be dropped.
        connections.close_all()
        playwright.stop()
        os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
