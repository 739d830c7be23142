"""HTTP for the doctor, with `urllib` (the Pulumi venv has no HTTP client of its own): redirects are
never followed implicitly, so every hop's Location and cookies are seen."""

from __future__ import annotations

import base64
import json
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.message import Message
from http.cookiejar import CookieJar
from typing import Any
from urllib.parse import urlencode, urljoin


@dataclass
class Response:
    """One HTTP response, whatever its status."""

    url: str
    status: int
    headers: Message
    body: bytes
    received_at: float
    """This machine's clock (the doctor's `now`) when the response arrived."""

    def header(self, name: str) -> str | None:
        return self.headers.get(name)

    def set_cookies(self) -> list[str]:
        return list(self.headers.get_all("Set-Cookie") or [])

    def location(self) -> str | None:
        value = self.header("Location")
        return urljoin(self.url, value) if value else None

    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self.body)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # the 3xx reaches the caller as an HTTPError, Location and cookies intact


class Http:
    """GET with a cookie jar per browser-like session; TLS verified unless `insecure`."""

    def __init__(
        self,
        *,
        timeout: float = 10,
        ca_file: str | None = None,
        insecure: bool = False,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.timeout = timeout
        self.now = now
        self.context = ssl.create_default_context(cafile=ca_file)
        if insecure:
            self.context.check_hostname = False
            self.context.verify_mode = ssl.CERT_NONE

    def session(self) -> Callable[[str], Response]:
        """A `get(url)` that keeps cookies between its calls (one sign-in attempt)."""
        opener = urllib.request.build_opener(
            _NoRedirect(),
            urllib.request.HTTPCookieProcessor(CookieJar()),
            urllib.request.HTTPSHandler(context=self.context),
        )

        def get(url: str) -> Response:
            request = urllib.request.Request(url, headers={"Accept": "text/html,application/json"})
            try:
                with opener.open(request, timeout=self.timeout) as answer:
                    return Response(url, answer.status, answer.headers, answer.read(), self.now())
            except urllib.error.HTTPError as answer:
                return Response(url, answer.code, answer.headers, answer.read(), self.now())

        return get

    def post_form(self, url: str, form: Mapping[str, str], *, basic_auth: tuple[str, str]) -> Response:
        """POST a form with HTTP Basic client authentication (client_secret_basic, RFC 6749 2.3.1)."""
        user, password = (urllib.parse.quote(part) for part in basic_auth)  # as Authlib encodes them
        credentials = base64.b64encode(f"{user}:{password}".encode()).decode()
        request = urllib.request.Request(
            url,
            data=urlencode(form).encode(),
            headers={"Authorization": f"Basic {credentials}", "Accept": "application/json"},
            method="POST",
        )
        opener = urllib.request.build_opener(_NoRedirect(), urllib.request.HTTPSHandler(context=self.context))
        try:
            with opener.open(request, timeout=self.timeout) as answer:
                return Response(url, answer.status, answer.headers, answer.read(), self.now())
        except urllib.error.HTTPError as answer:
            return Response(url, answer.code, answer.headers, answer.read(), self.now())


def unreachable(error: BaseException) -> str:
    """Why a request failed, without the URL's query (it may carry a state or a challenge)."""
    reason = getattr(error, "reason", None) or error
    hint = "; give --ca-file with the CA that signed it" if isinstance(reason, ssl.SSLCertVerificationError) else ""
    return f"{type(error).__name__}: {reason}{hint}"
