"""The doctor's pure parts, in the Pulumi venv: the security manager's own role mapping, JWT decoding and
RS256 verification, the redirect-URI diagnosis, and the checks against a tiny in-process IdP (clock
injected). The live checks against Airflow and a real provider are in tests/e2e/test_doctor.py."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import jwt
import pytest

from components.airflow_values import render_webserver_config
from components.contract import client_contract
from components.doctor import (
    CANNOT,
    FAIL,
    LEEWAY_SECONDS,
    PASS,
    Doctor,
    DoctorTarget,
    Http,
    Jwt,
    RoleMapping,
    TokenError,
    issuer_keys,
    render,
    verify_signature,
)
from components.spec import parse_spec

ROOT = Path(__file__).resolve().parent.parent


def make_spec(**changes: Any) -> Any:
    raw: dict[str, Any] = {
        "environment": "dev",
        "hostname": "airflow.example.com",
        "idp": {"kind": "oidc", "issuer": "http://127.0.0.1:1", "clientId": "airflow", "scopes": ["openid", "groups"]},
        "access": [{"group": "admins", "role": "Admin"}, {"group": "viewers", "role": "Viewer"}],
        "airflow": {"tls": {"secretName": "airflow-tls"}},
    }
    raw.update(changes)
    return parse_spec(raw, "stacks/Pulumi.test.yaml")


# --- the rendered security manager's mapping -----------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "groups", "roles"),
    [
        ({}, ["admins", "Everyone"], ["Admin"]),
        ({}, ["admins", "viewers"], ["Admin", "Viewer"]),
        ({}, ["/admins"], []),  # Keycloak's full path: no match
        ({}, [], []),
        ({"defaultRole": "Viewer", "signIn": {"extraGroups": ["staff"]}}, ["staff"], ["Viewer"]),
        ({"defaultRole": "Viewer", "signIn": {"extraGroups": ["staff"]}}, ["staff", "admins"], ["Admin"]),
        ({"defaultRole": "Viewer", "signIn": {"extraGroups": ["staff"]}}, ["others"], []),
        ({"defaultRole": "Viewer", "signIn": {"everyone": True}}, ["others"], ["Viewer"]),
    ],
)
def test_roles_come_from_the_rendered_security_managers_own_function(
    changes: dict[str, Any], groups: list[str], roles: list[str]
) -> None:
    contract = client_contract(make_spec(**changes), stack="test")
    mapping = RoleMapping.from_rendered_config(render_webserver_config(contract))
    assert mapping.roles({"groups": groups}) == roles
    # A single string is a list of one, as the security manager reads it.
    if len(groups) == 1:
        assert mapping.roles({"groups": groups[0]}) == roles


def test_the_doctor_runs_the_function_the_security_manager_calls() -> None:
    """Not a copy: the rendered file's get_oauth_user_info calls role_keys_for, which the doctor executes."""
    text = render_webserver_config(client_contract(make_spec(), stack="test"))
    assert "role_keys = role_keys_for(values)" in text
    namespace = RoleMapping.from_rendered_config(text).namespace
    assert namespace["role_keys_for"](["viewers", "admins"]) == ["viewers", "admins"]
    with pytest.raises(RuntimeError, match="role_keys_for"):
        RoleMapping.from_rendered_config(text.replace("def role_keys_for(", "def renamed("))


def test_the_rendered_config_carries_the_registered_post_logout_uri() -> None:
    contract = client_contract(make_spec(), stack="test")
    text = render_webserver_config(contract)
    assert f"POST_LOGOUT_REDIRECT_URI = {json.dumps(contract.post_logout_redirect_uris[0])}\n" in text
    assert contract.post_logout_redirect_uris[0] == "https://airflow.example.com/auth/login/"


# --- JWTs ---------------------------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@pytest.fixture(scope="module")
def rsa_key() -> Any:
    """A 2048-bit RSA key (cryptography, as PyJWT uses it)."""
    from cryptography.hazmat.primitives.asymmetric import rsa

    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def sign_rs256(key: Any, claims: dict[str, Any], kid: str = "k1") -> str:
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid})


def public_jwk(key: Any, kid: str = "k1") -> dict[str, str]:
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    return {**jwk, "kid": kid, "use": "sig", "alg": "RS256"}


def test_rs256_signatures_verify_and_a_changed_payload_does_not(rsa_key: dict[str, int]) -> None:
    token = Jwt.parse(sign_rs256(rsa_key, {"sub": "u1"}))
    jwk = public_jwk(rsa_key)
    assert verify_signature(token, {"keys": [jwk]})[0] == PASS
    changed = Jwt(token.header, token.claims, token.signing_input + b"x", token.signature)
    assert verify_signature(changed, {"keys": [jwk]})[0] == FAIL
    from cryptography.hazmat.primitives.asymmetric import rsa

    impostor = public_jwk(rsa.generate_private_key(public_exponent=65537, key_size=2048))  # same kid, other key
    assert verify_signature(token, {"keys": [impostor]})[0] == FAIL
    assert verify_signature(token, {"keys": [public_jwk(rsa_key, kid="other")]})[0] == FAIL


def test_a_pasted_token_response_is_accepted_and_garbage_is_named_not_echoed(rsa_key: dict[str, int]) -> None:
    token = sign_rs256(rsa_key, {"sub": "u1"})
    assert Jwt.parse(json.dumps({"access_token": "at", "id_token": token})).claims == {"sub": "u1"}
    for text in ("not-a-token-s3cr3t", "a.b", "e30.e30.e30.e30", "!!.??.xx"):
        with pytest.raises(TokenError) as caught:
            Jwt.parse(text)
        assert text not in str(caught.value)


def test_unsigned_and_hmac_tokens_fail_the_signature_check() -> None:
    header = _b64(json.dumps({"alg": "none"}).encode())
    token = Jwt.parse(f"{header}.{_b64(b'{}')}.")
    assert verify_signature(token, {"keys": []})[0] == FAIL


# --- the checks, against a tiny IdP served here --------------------------------------------------------


class FakeIdp(BaseHTTPRequestHandler):
    """Discovery, JWKS and an authorization endpoint; `state` decides how they misbehave."""

    state: dict[str, Any] = {}

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802
        issuer = self.state["issuer"]
        path = urlsplit(self.path).path
        if path == "/.well-known/openid-configuration":
            body: Any = {
                "issuer": self.state.get("advertised_issuer", issuer),
                "authorization_endpoint": issuer + "/authorize",
                "token_endpoint": issuer + "/token",
                "userinfo_endpoint": issuer + "/userinfo",
                "jwks_uri": issuer + "/jwks",
                "response_types_supported": ["code"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "scopes_supported": self.state.get("scopes", ["openid", "groups"]),
                "claims_supported": ["sub", "nonce"],
            }
            self._send(200, body)
        elif path == "/jwks":
            self._send(200, {"keys": [self.state["jwk"]]})
        elif path == "/authorize":
            query = dict(parse_qsl(urlsplit(self.path).query))
            if query["redirect_uri"] not in self.state["registered"]:
                self._send(400, "<h1>oops</h1><p>redirect_uri_mismatch</p>", html=True)
            else:
                assert query["code_challenge_method"] == "S256" and query["nonce"] and query["state"]
                self.send_response(302)
                self.send_header("Location", "/login?session=x")
                self.send_header("Date", self._date())
                self.end_headers()
        elif path == "/login":
            self._send(200, "<form><input name=username></form>", html=True)
        else:
            self._send(404, {"error": "not found"})

    def do_POST(self) -> None:  # noqa: N802
        """The token endpoint: client authentication first, then the (always unknown) code."""
        length = int(self.headers.get("Content-Length") or 0)
        form = dict(parse_qsl(self.rfile.read(length).decode()))
        expected = "Basic " + base64.b64encode(f"airflow:{self.state['secret']}".encode()).decode()
        if self.headers.get("Authorization") != expected:
            self._send(401, {"error": "invalid_client"})
        else:
            assert form["grant_type"] == "authorization_code" and form["code"].startswith("airflow-oidc-doctor-")
            self._send(400, {"error": "invalid_grant"})

    def _date(self) -> str:
        return formatdate(time.time() + self.state.get("clock_offset", 0), usegmt=True)

    def _send(self, status: int, body: Any, html: bool = False) -> None:
        data = (body if html else json.dumps(body)).encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html" if html else "application/json")
        self.send_header("Date", self._date())
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class FakeAirflow(BaseHTTPRequestHandler):
    """Airflow's login page and provider start; `state` says what its authorization request carries."""

    state: dict[str, Any] = {}

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802
        if self.state.get("status", 200) != 200:
            self.send_response(self.state["status"])
            self.end_headers()
            return
        if self.path == "/auth/login/":
            body = b'<a id="btn-signin-oidc" href="/auth/login/oidc">Sign in</a>'
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        elif self.path == "/auth/login/oidc":
            query = {
                "response_type": "code",
                "client_id": "airflow",
                "redirect_uri": "https://airflow.example.com/auth/oauth-authorized/oidc",
                "state": "s",
                "nonce": "n",
                "code_challenge": "c" * 43,
                "code_challenge_method": "S256",
                **self.state.get("query", {}),
            }
            query = {key: value for key, value in query.items() if value is not None}
            self.send_response(302)
            self.send_header("Location", self.state["authorize"] + "?" + urlencode(query))
            self.send_header("Set-Cookie", "session=abc; HttpOnly; Path=/")
            self.end_headers()


@pytest.fixture
def airflow(idp: dict[str, Any]) -> Iterator[dict[str, Any]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeAirflow)
    FakeAirflow.state = {
        "url": f"http://127.0.0.1:{server.server_address[1]}",
        "authorize": idp["issuer"] + "/authorize",
    }
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield FakeAirflow.state
    server.shutdown()
    server.server_close()


@pytest.fixture
def idp(rsa_key: dict[str, int]) -> Iterator[dict[str, Any]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeIdp)
    issuer = f"http://127.0.0.1:{server.server_address[1]}"
    FakeIdp.state = {
        "issuer": issuer,
        "jwk": public_jwk(rsa_key),
        "registered": ["https://airflow.example.com/auth/oauth-authorized/oidc"],
        "secret": "s3cr3t-at-the-idp",
    }
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield FakeIdp.state
    server.shutdown()
    server.server_close()


def run(
    idp: dict[str, Any],
    *,
    token: str | None = None,
    now: Any = time.time,
    secret: str | None = None,
    airflow_url: str | None = None,
) -> dict[str, Any]:
    spec = make_spec(
        idp={"kind": "oidc", "issuer": idp["issuer"], "clientId": "airflow", "scopes": ["openid", "groups"]}
    )
    contract = client_contract(spec, stack="test")
    target = DoctorTarget(
        source="stacks/Pulumi.test.yaml",
        spec=spec,
        contract=contract,
        issuer_url=idp["issuer"],
        airflow_url=airflow_url,
        client_id="airflow",
        id_token=token,
        client_secret=secret,
    )
    return {check.name: check for check in Doctor(target, Http(timeout=5, now=now)).run()}


def test_a_healthy_idp_passes_and_airflow_is_not_checked_without_a_url(idp: dict[str, Any]) -> None:
    checks = run(idp)
    for name in (
        "discovery",
        "issuer",
        "endpoints",
        "scopes",
        "jwks",
        "redirect uri accepted",
        "clock skew",
        "idp nonce",
    ):
        assert checks[name].status == PASS, checks[name]
    assert checks["airflow redirect_uri"].status == CANNOT
    assert "this machine" in checks["clock skew"].detail
    assert "logout ends Airflow's only" in checks["endpoints"].detail  # no end_session_endpoint published


def test_the_client_secret_is_checked_by_redeeming_a_made_up_code(idp: dict[str, Any]) -> None:
    assert run(idp)["client secret"].status == CANNOT
    assert run(idp, secret="s3cr3t-at-the-idp")["client secret"].status == PASS
    wrong = run(idp, secret="s3cr3t-at-the-idX")["client secret"]
    assert wrong.status == FAIL and "invalid_client" in wrong.detail and "`idp.clientSecret`" in wrong.fix
    assert "s3cr3t" not in wrong.detail + wrong.fix


def test_unregistered_redirect_uri_is_told_from_a_login_page(idp: dict[str, Any]) -> None:
    idp["registered"] = ["https://other.example.com/cb"]
    check = run(idp)["redirect uri accepted"]
    assert check.status == FAIL
    assert "redirect_uri_mismatch" in check.detail and "`hostname`" in check.fix


def test_trailing_slash_on_the_advertised_issuer_fails_naming_the_key(idp: dict[str, Any]) -> None:
    idp["advertised_issuer"] = idp["issuer"] + "/"
    check = run(idp)["issuer"]
    assert check.status == FAIL and "trailing slash" in check.detail and "`idp.issuer`" in check.fix


def test_a_scope_the_provider_lacks_fails_naming_idp_scopes(idp: dict[str, Any]) -> None:
    idp["scopes"] = ["openid"]
    check = run(idp)["scopes"]
    assert check.status == FAIL and "['groups']" in check.detail and "`idp.scopes`" in check.fix


@pytest.mark.parametrize(("offset", "status"), [(0, PASS), (LEEWAY_SECONDS - 5, PASS), (LEEWAY_SECONDS + 60, FAIL)])
def test_clock_skew_is_measured_with_the_injected_clock(idp: dict[str, Any], offset: int, status: str) -> None:
    """This machine's clock runs `offset` s behind (injected): beyond Authlib's leeway it fails."""
    check = run(idp, now=lambda: time.time() - offset)["clock skew"]
    assert check.status == status, check
    assert abs(float(check.detail.split(": ")[1].split(" s")[0]) - offset) <= 2


def test_pasted_tokens_expiry_audience_and_roles(idp: dict[str, Any], rsa_key: dict[str, int]) -> None:
    now = int(time.time())
    base = {"iss": idp["issuer"], "aud": "airflow", "sub": "u1", "exp": now + 600, "nonce": "n", "groups": ["admins"]}
    good = run(idp, token=sign_rs256(rsa_key, base))
    assert {name: good[name].status for name in good if name.startswith("token")} == {
        "token signature": PASS,
        "token issuer": PASS,
        "token audience": PASS,
        "token expiry": PASS,
        "token claims": PASS,
        "token role": PASS,
    }
    assert "oidc_u1 would sign in with ['Admin']" in good["token role"].detail

    expired = run(idp, token=sign_rs256(rsa_key, {**base, "exp": now - LEEWAY_SECONDS - 30}))["token expiry"]
    assert expired.status == FAIL and "fresh token" in expired.fix
    # Within the leeway Airflow still accepts it, and so does the doctor.
    assert run(idp, token=sign_rs256(rsa_key, {**base, "exp": now - 30}))["token expiry"].status == PASS

    other = run(idp, token=sign_rs256(rsa_key, {**base, "aud": ["airflow", "other"]}))["token audience"]
    assert other.status == FAIL and "azp" not in other.detail  # two audiences and no azp: refused
    assert (
        run(idp, token=sign_rs256(rsa_key, {**base, "aud": ["airflow", "x"], "azp": "airflow"}))[
            "token audience"
        ].status
        == PASS
    )

    unmapped = run(idp, token=sign_rs256(rsa_key, {**base, "groups": ["contractors"]}))["token role"]
    assert unmapped.status == FAIL and "`access[].group`" in unmapped.fix
    no_nonce = {k: v for k, v in base.items() if k != "nonce"}
    assert run(idp, token=sign_rs256(rsa_key, no_nonce))["idp nonce"].status == FAIL


@pytest.mark.parametrize(
    ("sent", "hint"),
    [
        ("http://airflow.example.com/auth/oauth-authorized/oidc", "`airflow.forwardedAllowIps`"),
        ("https://airflow-internal:8080/auth/oauth-authorized/oidc", "set `hostname` to it"),
        ("https://airflow.example.com/airflow/auth/oauth-authorized/oidc", "path prefix"),
    ],
)
def test_a_wrong_redirect_uri_from_airflow_is_diagnosed(idp: dict[str, Any], sent: str, hint: str) -> None:
    spec = make_spec()
    target = DoctorTarget("stacks/Pulumi.test.yaml", spec, client_contract(spec, stack="test"), idp["issuer"], None)
    fix = Doctor(target, Http())._redirect_fix(sent, target.contract.redirect_uris[0])
    assert hint in fix


@pytest.mark.parametrize(
    ("state", "name", "in_detail", "in_fix"),
    [
        ({}, None, "", ""),
        (
            {"query": {"redirect_uri": "http://airflow.example.com/auth/oauth-authorized/oidc"}},
            "airflow redirect_uri",
            "'http://airflow.example.com",
            "`airflow.forwardedAllowIps`",
        ),
        ({"query": {"nonce": None}}, "airflow nonce", "no nonce", "`openid` must be in `idp.scopes`"),
        ({"query": {"code_challenge_method": "plain"}}, "airflow pkce", "'plain'", "S256"),
        ({"status": 502}, "airflow login page", "HTTP 502", "api-server pods"),
    ],
)
def test_what_airflow_itself_sends_is_checked(
    idp: dict[str, Any], airflow: dict[str, Any], state: dict[str, Any], name: str | None, in_detail: str, in_fix: str
) -> None:
    """The doctor follows Airflow's /auth/login/<provider> redirect and reads its authorization request."""
    airflow.update(state)
    checks = run(idp, airflow_url=airflow["url"])
    failures = {key: check for key, check in checks.items() if check.status == FAIL}
    if name is None:
        assert failures == {}
        assert {checks[key].status for key in ("airflow login page", "airflow redirect_uri", "airflow pkce")} == {PASS}
        assert checks["session cookie"].status == PASS  # http: Secure is not required
        assert "against Airflow's" in checks["clock skew"].detail
        return
    assert list(failures) == [name]
    assert in_detail in failures[name].detail and in_fix in failures[name].fix


def test_report_formats_and_exit_semantics(idp: dict[str, Any]) -> None:
    idp["scopes"] = ["openid"]
    checks = list(run(idp).values())
    text = render(checks, "stacks/Pulumi.test.yaml", "text")
    assert len(text.splitlines()) == len(checks) + 1
    assert any(line.startswith("FAIL") and "| fix: " in line for line in text.splitlines())
    report = json.loads(render(checks, "stacks/Pulumi.test.yaml", "json"))
    assert report["ok"] is False and report["failed"] == 1
    assert {check["status"] for check in report["checks"]} <= {PASS, FAIL, CANNOT}


def test_the_cli_refuses_a_bad_stack_file_with_status_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from components.cli import main

    bad = tmp_path / "Pulumi.bad.yaml"
    bad.write_text("config:\n  airflow-oidc:spec:\n    environment: dev\n")
    assert main(["doctor", str(bad)]) == 2
    assert "Pulumi.bad.yaml" in capsys.readouterr().err


# --- hints name the key the value came from ------------------------------------------------------------

KIND_IDPS: dict[str, dict[str, Any]] = {
    "okta": {"kind": "okta"},
    "oidc": {"kind": "oidc", "issuer": "https://idp.example.com", "clientId": "airflow"},
    "keycloak": {"kind": "keycloak", "realm": "corp"},
    "azuread": {"kind": "azuread"},
    "google": {
        "kind": "google",
        "clientId": "1-a.apps.googleusercontent.com",
        "clientSecret": "s",
        "domain": "example.com",
    },
}


def kind_spec(kind: str, **idp: Any) -> Any:
    groups = [{"group": "admins@example.com" if kind == "google" else "admins", "role": "Admin"}]
    changes: dict[str, Any] = {"idp": {**KIND_IDPS[kind], **idp}, "access": groups}
    if kind == "azuread":
        changes["tokens"] = {}
    return make_spec(**changes)


@pytest.mark.parametrize(
    ("kind", "idp", "sources", "named"),
    [
        (
            "okta",
            {},
            {"okta:orgName": "okta:orgName", "okta:baseUrl": "OKTA_BASE_URL"},
            "`idp.authorizationServer`, `okta:orgName`, `OKTA_BASE_URL`",
        ),
        (
            "okta",
            {"orgUrl": "https://sso.acme.com"},
            {"okta:orgName": "okta:orgName"},
            "`idp.authorizationServer`, `idp.orgUrl`",
        ),
        ("oidc", {}, {}, "`idp.issuer`"),
        ("keycloak", {}, {"keycloak:url": "KEYCLOAK_URL"}, "`idp.realm`, `KEYCLOAK_URL`"),
        ("keycloak", {"url": "https://sso.example.com"}, {"keycloak:url": "keycloak:url"}, "`idp.realm`, `idp.url`"),
        ("azuread", {}, {"azuread:tenantId": "azuread:tenantId"}, "`azuread:tenantId`"),
        ("azuread", {}, {"azuread:tenantId": "ARM_TENANT_ID"}, "`ARM_TENANT_ID`"),
        ("azuread", {"tenantId": "00000000-0000-4000-8000-000000000000"}, {}, "`idp.tenantId`"),
        ("google", {}, {"gcp:project": "gcp:project"}, "`idp.domain`"),
    ],
)
def test_the_issuer_hint_names_the_key_the_value_came_from(
    kind: str, idp: dict[str, Any], sources: dict[str, str], named: str
) -> None:
    assert issuer_keys(kind_spec(kind, **idp), sources) == named


@pytest.mark.parametrize("kind", list(KIND_IDPS))
def test_no_date_header_blames_keycloak_only_on_keycloak(kind: str) -> None:
    spec = kind_spec(kind, **({"tenantId": "00000000-0000-4000-8000-000000000000"} if kind == "azuread" else {}))
    contract = client_contract(
        spec, stack="test", provider={"okta:orgName": "acme", "keycloak:url": "https://k.example.com"}
    )
    doctor = Doctor(DoctorTarget("stacks/Pulumi.test.yaml", spec, contract, contract.issuer, None), Http())
    doctor.check_clock_skew()
    [check] = doctor.checks
    assert check.status == CANNOT and check.detail.startswith("the IdP sends no Date header (no answer")
    assert ("Keycloak sends none" in check.detail) == (kind == "keycloak"), check.detail


def test_a_provider_setting_is_named_where_the_stack_got_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from components.doctor import provider_sources

    spec = kind_spec("azuread")
    path = tmp_path / "Pulumi.test.yaml"
    path.write_text("config:\n  azuread:tenantId: 00000000-0000-4000-8000-000000000000\n")
    assert provider_sources(path, spec, {"azuread:tenantId": "x"}) == {"azuread:tenantId": "azuread:tenantId"}
    path.write_text("config: {}\n")
    assert provider_sources(path, spec, {"azuread:tenantId": "x"}) == {"azuread:tenantId": "ARM_TENANT_ID"}
    assert provider_sources(path, spec, {}) == {}
