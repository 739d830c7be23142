"""Check group: Airflow's own sign-in request (login page, redirect_uri, nonce, PKCE, session cookie)."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlsplit

from components.contract import LOGIN_PATH
from components.doctor.http_client import unreachable
from components.doctor.report import CANNOT, FAIL, PASS
from components.doctor.state import DoctorState, spec_key


class AirflowChecks(DoctorState):
    """What Airflow serves and sends on the way to the IdP."""

    def probe_airflow(self) -> None:
        base = (self.target.airflow_url or "").rstrip("/")
        if not base:
            self.airflow_problem = "no Airflow URL"
            return
        get = self.http.session()
        try:
            self.airflow_login = get(base + LOGIN_PATH)
            start = get(base + LOGIN_PATH + self.contract.provider)
        except (OSError, ValueError) as error:
            self.airflow_problem = f"{base} unreachable ({unreachable(error)})"
            return
        self.airflow_start = start
        sent = self._sent_authorization()
        if sent and not self.client_id:
            self.client_id = sent.get("client_id")

    def _sent_authorization(self) -> dict[str, str] | None:
        if self.airflow_start is None:
            return None
        location = self.airflow_start.location()
        if not location or not 300 <= self.airflow_start.status < 400:
            return None
        return dict(parse_qsl(urlsplit(location).query))

    def _needs_airflow(self, name: str) -> bool:
        if self.airflow_login is None:
            self.add(name, CANNOT, f"Airflow not reached: {self.airflow_problem}")
            return False
        return True

    def check_airflow_login_page(self) -> None:
        name = "airflow login page"
        if not self._needs_airflow(name):
            return
        login = self.airflow_login
        assert login is not None
        page, provider, status = login.text(), self.contract.provider, login.status
        if status == 200 and (f"btn-signin-{provider}" in page or f"{LOGIN_PATH}{provider}" in page):
            self.add(name, PASS, f"{LOGIN_PATH} offers the `{provider}` provider")
        elif status >= 500:
            self.add(
                name,
                FAIL,
                f"{LOGIN_PATH} answered HTTP {status}: no api-server answers behind the ingress",
                "not a spec key: check the api-server pods (ready? crash-looping on webserver_config.py?) and "
                "the ingress's backend",
            )
        elif status == 404:
            self.add(
                name,
                FAIL,
                f"{LOGIN_PATH} answered HTTP 404: no FAB login page there",
                "the UI must be Airflow 3 with the FAB auth manager at the root of `hostname` (no path prefix)",
            )
        else:
            self.add(
                name,
                FAIL,
                f"{LOGIN_PATH} answered HTTP {status} without a `{provider}` sign-in button",
                "Airflow is not running the rendered webserver_config.py: run `pulumi up`, and check that "
                "`airflow.values` does not replace the api-server's config ([fab] config_file)",
            )

    def check_airflow_authorization_request(self) -> None:
        names = ("airflow redirect_uri", "airflow nonce", "airflow pkce")
        if self.airflow_login is None:
            for name in names:
                self.add(name, CANNOT, f"Airflow not reached: {self.airflow_problem}")
            return
        sent = self._sent_authorization()
        if sent is None:
            status = self.airflow_start.status if self.airflow_start else "no answer"
            for name in names:
                self.add(name, CANNOT, f"{LOGIN_PATH}{self.contract.provider} did not redirect to the IdP ({status})")
            return
        registered = self.contract.redirect_uris[0]
        actual = sent.get("redirect_uri", "")
        if actual == registered:
            self.add(names[0], PASS, f"Airflow sends redirect_uri {actual}, the registered one")
        else:
            self.add(
                names[0],
                FAIL,
                f"Airflow sends redirect_uri {actual!r}, the IdP has {registered!r}",
                self._redirect_fix(actual, registered),
            )
        if sent.get("nonce"):
            self.add(names[1], PASS, "Airflow sends a nonce")
        else:
            key = spec_key(self.spec, "scopes", "the kind's scopes")
            self.add(
                names[1],
                FAIL,
                "Airflow's authorization request has no nonce (ID tokens then fail: missing nonce)",
                f"`openid` must be in {key}; Authlib sends a nonce only for OpenID requests",
            )
        method = sent.get("code_challenge_method")
        if sent.get("code_challenge") and method == "S256":
            self.add(names[2], PASS, "Airflow sends an S256 PKCE challenge")
        else:
            self.add(
                names[2],
                FAIL,
                f"Airflow's PKCE: code_challenge {'present' if sent.get('code_challenge') else 'absent'}, "
                f"method {method!r}",
                "the rendered webserver_config.py asks for S256: Airflow runs another config (`pulumi up`)",
            )

    def _redirect_fix(self, actual: str, registered: str) -> str:
        sent, wanted = urlsplit(actual), urlsplit(registered)
        if sent.scheme == "http" and wanted.scheme == "https":
            return (
                "Airflow does not see the TLS proxy: it needs proxy handling ([fab] enable_proxy_fix, the api-server's "
                "--proxy-headers) and must trust the ingress's address: set `airflow.forwardedAllowIps` to it"
            )
        if sent.netloc != wanted.netloc:
            return (
                f"users reach Airflow at {sent.netloc!r}: set `hostname` to it, or make the ingress forward the Host "
                "header (X-Forwarded-Host)"
            )
        if sent.path != wanted.path:
            return (
                f"Airflow builds the callback under {sent.path!r}: a path prefix the spec does not declare "
                f"(`[api] base_url`, set from `hostname`); serve Airflow at the root of `hostname`"
            )
        return "the redirect URI follows from `hostname`: make Airflow's public URL and `hostname` agree"

    def check_session_cookie(self) -> None:
        name = "session cookie"
        if not self._needs_airflow(name):
            return
        https = (self.target.airflow_url or "").startswith("https://")
        cookies = [
            cookie
            for response in (self.airflow_login, self.airflow_start)
            if response is not None
            for cookie in response.set_cookies()
            if cookie.split("=", 1)[0].strip() == "session"
        ]
        if not cookies:
            self.add(name, CANNOT, "Airflow set no `session` cookie on the way to the IdP")
            return
        secure = all(re.search(r";\s*secure\s*(;|$)", cookie, re.IGNORECASE) for cookie in cookies)
        if not https:
            self.add(name, PASS, f"served over http: the cookie is {'Secure' if secure else 'not Secure'}")
        elif secure:
            self.add(name, PASS, "the `session` cookie is Secure over https")
        else:
            self.add(
                name,
                FAIL,
                "Airflow is served over https but sets the `session` cookie without Secure",
                "SESSION_COOKIE_SECURE follows from `hostname` (https): Airflow runs another config (`pulumi up`)",
            )
