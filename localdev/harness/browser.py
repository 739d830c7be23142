"""Headless Debian Chromium driven by Playwright: sign in to Airflow through the OpenID provider."""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from playwright.sync_api import Browser as PlaywrightBrowser
from playwright.sync_api import BrowserContext, Page, Playwright, sync_playwright
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from localdev.harness.process import ARTIFACTS_ROOT, STATE_DEADLINE, HarnessError, Service

CHROMIUM = "/usr/bin/chromium"
# Without the background-networking flags Chromium keeps dialing Google's hosts on this closed network.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
TOKEN_COOKIE = "_token"
MAX_STEPS = 8
# Every host resolves to loopback: one Chromium serves every stack's hostname (all served locally).
EVERY_HOST = "*"


@dataclass
class LoginResult:
    """What one browser sign-in ended with."""

    account_id: str
    final_url: str
    has_token: bool
    token: str | None
    cookies: list[str]
    page_text: str
    screenshot: Path | None
    seconds: float
    steps: list[str] = field(default_factory=list)
    context: BrowserContext | None = field(default=None, repr=False)

    @property
    def final_path(self) -> str:
        """Path of the final URL."""
        return urlsplit(self.final_url).path

    @property
    def landed_on_login_page(self) -> bool:
        """Whether Airflow sent the browser back to its login page (a refused sign-in)."""
        return self.final_path.rstrip("/").endswith("/auth/login")


class Browser(Service):
    """One Chromium (for a whole test run: `localdev/services.py`); one fresh context (cookie jar) per login.

    `map_hosts` are resolved to 127.0.0.1 inside Chromium (`--host-resolver-rules`), so the
    exact production URL `https://<hostname>/...` is used against the local proxy; `["*"]`
    (`EVERY_HOST`) maps every hostname, so one browser serves every stack.
    """

    def __init__(
        self,
        *,
        map_hosts: Sequence[str] = (),
        artifacts_dir: Path = ARTIFACTS_ROOT,
        executable: str = CHROMIUM,
        step_timeout_ms: float = STATE_DEADLINE * 1000,
    ) -> None:
        self.map_hosts = [host for host in map_hosts if host not in ("localhost", "127.0.0.1")]
        self.artifacts_dir = artifacts_dir
        self.executable = executable
        self.step_timeout_ms = step_timeout_ms
        self._playwright: Playwright | None = None
        self._browser: PlaywrightBrowser | None = None
        self._contexts: list[BrowserContext] = []
        self._scratch: Page | None = None
        """The page `login(reuse_context=True)` signs in on (in a context of its own)."""
        self._screenshots = 0

    def start(self) -> None:
        """Launch Chromium (headless)."""
        if not Path(self.executable).exists():
            raise HarnessError(f"{self.executable} not found: apt-get install chromium (never `playwright install`)")
        args = list(CHROMIUM_ARGS)
        if self.map_hosts:
            rules = ",".join(f"MAP {host} 127.0.0.1" for host in self.map_hosts)
            if EVERY_HOST in self.map_hosts:
                rules = f"MAP {EVERY_HOST} 127.0.0.1"
            args.append(f"--host-resolver-rules={rules}")
        self._playwright = sync_playwright().start()
        self._browser = self._playwright.chromium.launch(executable_path=self.executable, headless=True, args=args)

    def stop(self) -> None:
        """Close every context, Chromium and Playwright's driver."""
        for context in self._contexts:
            with contextlib.suppress(PlaywrightError):
                context.close()
        self._contexts.clear()
        self._scratch = None
        if self._browser is not None:
            self._browser.close()
            self._browser = None
        if self._playwright is not None:
            self._playwright.stop()
            self._playwright = None

    def new_context(self) -> BrowserContext:
        """A fresh cookie jar; the self-signed proxy certificate is accepted."""
        if self._browser is None:
            raise HarnessError("Browser is not started")
        context = self._browser.new_context(ignore_https_errors=True)
        context.set_default_timeout(self.step_timeout_ms)
        self._contexts.append(context)
        # A browser lives for the whole run: forget a context once it is closed.
        context.on("close", lambda closed: self._forget(closed))
        return context

    def _forget(self, context: BrowserContext) -> None:
        with contextlib.suppress(ValueError):
            self._contexts.remove(context)
        if self._scratch is not None and self._scratch.context is context:
            self._scratch = None

    def _scratch_page(self) -> Page:
        """The reusable sign-in page, its context's cookies cleared (a fresh cookie jar)."""
        if self._scratch is None or self._scratch.is_closed():
            page = self.new_context().new_page()
            # A crashed renderer is not reused: the next sign-in opens another page.
            page.on("crash", lambda crashed: setattr(self, "_scratch", None) if self._scratch is crashed else None)
            self._scratch = page
        self._scratch.context.clear_cookies()
        return self._scratch

    def login(
        self,
        base_url: str,
        provider_name: str,
        account_id: str,
        *,
        password: str = "any-password",
        context: BrowserContext | None = None,
        label: str | None = None,
        settle: bool = True,
        expect_text: str | None = None,
        reuse_context: bool = False,
    ) -> LoginResult:
        """Airflow login page -> provider button -> provider login (and consent) -> back to Airflow.

        The provider's login is the stand-in's form (`login`, any password) or Keycloak's
        (`username`, `password`, button `kc-login`; submitted once).

        Never raises for a refused or broken sign-in: the result says where the browser ended.
        Pass `context` to sign in again with an existing cookie jar (e.g. the IdP session).
        `settle=False` records the result as soon as the final response arrived (cookies are set
        by then) instead of waiting about a second for Airflow's UI bundle: faster, but then no
        screenshot is taken and the page text of a successful sign-in is mostly empty.
        A sign-in that ends without Airflow's token (a refusal: Airflow's login page or the provider's
        error page) always waits for that page to load, so its text is complete.
        `expect_text`: wait (up to STATE_DEADLINE) until the final page shows this text; the result
        holds the page text either way (the caller asserts on it).
        `reuse_context` (without `context`): sign in on the browser's reusable page, every cookie cleared
        first, so the cookie jar is as fresh as a new context's (Airflow and the providers keep their
        sessions in cookies only), while Chromium's processes and HTTP cache stay: about half the CPU of a
        new context per sign-in. The result's `context` is then None (the jar belongs to the next
        sign-in), and the page is left on about:blank so Airflow's UI stops polling.
        """
        started = time.monotonic()
        reused = context is None and reuse_context
        if reused:
            page = self._scratch_page()
            context = page.context
        else:
            context = context or self.new_context()
            page = context.new_page()
        steps: list[str] = []

        def step(what: str) -> None:
            steps.append(f"{time.monotonic() - started:5.2f}s {what} {page.url}")

        airflow_host = urlsplit(base_url).netloc
        page.goto(f"{base_url}/auth/login/")
        # Every response of Airflow's (FAB's permanent session) sets the session cookie as the request
        # found it: a login-page request still in flight when the provider button's response has stored
        # the OAuth state would overwrite that cookie, and the callback then fails with
        # "mismatching_state" (seen under load). Click only once the login page's requests are done.
        with contextlib.suppress(PlaywrightTimeout):
            page.wait_for_load_state("networkidle", timeout=STATE_DEADLINE * 1000)
        step("Airflow login page")
        # Each action waits only for the navigation to commit: a redirect chain (provider ->
        # callback -> UI) is one navigation, so the URL is final by then.
        with page.expect_navigation(wait_until="commit"):
            page.click(f"#btn-signin-{provider_name}")
        keycloak_form_sent = False
        for _ in range(MAX_STEPS):
            url = urlsplit(page.url)
            if url.netloc == airflow_host and "/oauth-authorized/" not in url.path:
                step("back at Airflow")
                break
            _settle(page)
            if page.locator("#kc-login").count() and not keycloak_form_sent:
                # Keycloak's own login page (username + password); shown again only for a refused password.
                step("Keycloak login form")
                keycloak_form_sent = True
                page.fill('input[name="username"]', account_id)
                page.fill('input[name="password"]', password)
                with page.expect_navigation(wait_until="commit"):
                    page.click("#kc-login")
                continue
            if page.locator('input[name="login"]').count():
                step("provider login form")
                page.fill('input[name="login"]', account_id)
                page.fill('input[name="password"]', password)
                with page.expect_navigation(wait_until="commit"):
                    page.click('button[type="submit"]')
                continue
            if page.locator('input[name="prompt"][value="consent"]').count():
                step("provider consent")
                with page.expect_navigation(wait_until="commit"):
                    page.click('button[type="submit"]')
                continue
            step("stopped at")
            break
        if settle or _token(context) is None:
            # A refusal's page is server-rendered: its text is complete at the load event.
            _settle(page)
        if settle:
            # Airflow's React UI renders after the load event: wait for text, so the screenshot shows it.
            with contextlib.suppress(PlaywrightTimeout):
                page.wait_for_function(
                    "document.body && document.body.innerText.trim().length > 20", timeout=STATE_DEADLINE * 1000
                )
            step("settled")
        if expect_text is not None:
            with contextlib.suppress(PlaywrightTimeout):
                page.wait_for_function(
                    "text => document.body && document.body.innerText.includes(text)",
                    arg=expect_text,
                    timeout=STATE_DEADLINE * 1000,
                )
            step(f"waited for {expect_text!r}")
        result = self._result(page, context, account_id, started, steps, label, screenshot=settle)
        if reused:
            result.context = None
            with contextlib.suppress(PlaywrightError):
                page.goto("about:blank")
        return result

    def logout(self, base_url: str, context: BrowserContext, *, path: str = "/api/v2/auth/logout") -> bool:
        """Log out as the UI's menu does; True once Airflow's `_token` cookie is gone (waits up to
        STATE_DEADLINE for it; the IdP session stays).

        `/api/v2/auth/logout` revokes the JWT, then redirects to the auth manager's `/auth/logout`,
        which deletes the cookies. `/auth/logout` alone deletes them but leaves the JWT valid.
        """
        page = context.new_page()
        page.goto(f"{base_url}{path}")
        _settle(page)
        deadline = time.monotonic() + STATE_DEADLINE
        while _token(context) is not None and time.monotonic() < deadline:
            page.wait_for_timeout(100)
        page.close()
        return _token(context) is None

    def _result(
        self,
        page: Page,
        context: BrowserContext,
        account_id: str,
        started: float,
        steps: list[str],
        label: str | None,
        *,
        screenshot: bool,
    ) -> LoginResult:
        # Only a settled page is worth a picture: before the UI renders it is blank.
        path: Path | None = None
        if screenshot:
            self.artifacts_dir.mkdir(parents=True, exist_ok=True)
            self._screenshots += 1
            name = re.sub(r"[^A-Za-z0-9_.-]+", "_", label or f"login-{account_id}")
            path = self.artifacts_dir / f"{self._screenshots:02d}-{name}.png"
            try:
                page.screenshot(path=str(path))
            except PlaywrightError:
                path = None
        try:
            text = page.inner_text("body", timeout=STATE_DEADLINE * 1000)
        except PlaywrightError:
            text = ""
        token = _token(context)
        return LoginResult(
            account_id=account_id,
            final_url=page.url,
            has_token=token is not None,
            token=token,
            cookies=sorted(cookie["name"] for cookie in context.cookies()),
            page_text=" ".join(text.split())[:2000],
            screenshot=path,
            seconds=round(time.monotonic() - started, 2),
            steps=steps,
            context=context,
        )


def _settle(page: Page) -> None:
    """Wait for the current document's load event (redirect chains end before it fires); a page that
    never loads within STATE_DEADLINE is left as it is (the result shows where the browser stopped)."""
    with contextlib.suppress(PlaywrightTimeout):
        page.wait_for_load_state("load", timeout=STATE_DEADLINE * 1000)


def _token(context: BrowserContext) -> str | None:
    for cookie in context.cookies():
        if cookie["name"] == TOKEN_COOKIE and cookie["value"]:
            return cookie["value"]
    return None
