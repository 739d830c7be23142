"""`airflow-oidc doctor STACK_FILE`: a preflight of a live setup, from the stack's client contract.

Each check is one line, `pass`, `fail` or `cannot check`, and a failed check says which spec key to
change. Works for every IdP kind: it reads only the `ClientContract` (issuer, redirect URI, scopes,
role claim, claim values -> roles) and the provider's own discovery document. HTTP with `urllib`
(the Pulumi venv has no HTTP client of its own); no secret is read, sent or printed: the pasted
ID token is decoded, never echoed.

    airflow-oidc doctor stacks/Pulumi.dev.yaml [--airflow-url URL] [--id-token FILE] [--format json]
"""

from __future__ import annotations

import argparse
import ast
import base64
import hashlib
import json
import os
import re
import secrets
import ssl
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from email.message import Message
from email.utils import parsedate_to_datetime
from http.cookiejar import CookieJar
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit

from components.airflow_values import render_webserver_config
from components.contract import CLIENT_SECRET_ENV, LOGIN_PATH, ClientContract, client_contract
from components.spec import Spec
from components.stack_files import check_stack_file, shown_name, stack_name

PASS = "pass"
FAIL = "fail"
CANNOT = "cannot check"

LEEWAY_SECONDS = 120
"""Clock skew Airflow tolerates on an ID token: Authlib's `parse_id_token(..., leeway=120)` (Authlib 1.9),
which FAB's OAuth login calls; `iat` more than this in the future, or `exp` this far past, is refused."""

DISCOVERY_PATH = "/.well-known/openid-configuration"
REQUIRED_ENDPOINTS = ("authorization_endpoint", "token_endpoint", "userinfo_endpoint", "jwks_uri")
# Errors an IdP sends back to the redirect URI when it accepted the client and the redirect URI
# but needs the user (no sign-in is attempted): proof the redirect URI is registered.
NEEDS_A_USER = frozenset({"login_required", "interaction_required", "consent_required", "account_selection_required"})
# How IdPs word "this redirect URI is not registered" (oidc-provider, generic OAuth, Google, Keycloak,
# Okta, Entra ID); only read on error pages, where they name the refusal.
REDIRECT_REFUSED = re.compile(
    r"invalid_redirect_uri|redirect_uri_mismatch|invalid redirect[ _]uri|Invalid parameter: redirect_uri"
    r"|must be a Login redirect URI|AADSTS50011|AADSTS900971",
    re.IGNORECASE,
)
CLIENT_REFUSED = re.compile(
    r"invalid_client|unauthorized_client|Client not found|Invalid parameter: client_id|AADSTS700016", re.IGNORECASE
)
MAX_HOPS = 6
# Algorithms whose key the relying party gets from the JWKS (not `none`, not a shared HMAC secret).
ASYMMETRIC_KTY = {"RS": "RSA", "PS": "RSA", "ES": "EC", "Ed": "OKP"}


@dataclass(frozen=True)
class Check:
    """One line of the report."""

    name: str
    status: str
    """`pass`, `fail` or `cannot check`."""
    detail: str
    fix: str = ""
    """For a fail: what to change, naming the spec key."""

    def line(self) -> str:
        """The check as one line of text."""
        text = f"{self.status.upper():<13}{self.name}: {self.detail}"
        return text + (f" | fix: {self.fix}" if self.fix else "")


# --- HTTP (urllib, redirects never followed implicitly) ----------------------------------------------


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


def _unreachable(error: BaseException) -> str:
    """Why a request failed, without the URL's query (it may carry a state or a challenge)."""
    reason = getattr(error, "reason", None) or error
    hint = "; give --ca-file with the CA that signed it" if isinstance(reason, ssl.SSLCertVerificationError) else ""
    return f"{type(error).__name__}: {reason}{hint}"


# --- the security manager's own mapping, loaded from the rendered webserver_config.py ---------------

ROLE_MAPPING_FUNCTIONS = ("_as_list", "role_keys_for")


@dataclass(frozen=True)
class RoleMapping:
    """The rendered security manager's claim -> role logic (its own code, not a copy)."""

    namespace: Mapping[str, Any]

    @classmethod
    def from_rendered_config(cls, text: str) -> RoleMapping:
        """Execute only the rendered file's literal constants and its pure mapping functions: the file
        imports Airflow (absent from the Pulumi venv), but `role_keys_for` needs only these."""
        keep: list[ast.stmt] = []
        for node in ast.parse(text).body:
            if isinstance(node, ast.FunctionDef) and node.name in ROLE_MAPPING_FUNCTIONS:
                keep.append(node)
            elif isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None:
                try:
                    ast.literal_eval(node.value)
                except ValueError:
                    continue
                keep.append(node)
        namespace: dict[str, Any] = {"Any": Any, "__name__": "airflow_oidc_rendered_config"}
        exec(compile(ast.Module(body=keep, type_ignores=[]), "<webserver_config.py>", "exec"), namespace)  # noqa: S102
        missing = [name for name in ROLE_MAPPING_FUNCTIONS if name not in namespace]
        if missing:
            raise RuntimeError(f"the rendered webserver_config.py defines no {missing}")
        return cls(namespace)

    def claim_values(self, claims: Mapping[str, Any]) -> list[str]:
        return list(self.namespace["_as_list"](claims.get(self.namespace["ROLE_CLAIM"])))

    def roles(self, claims: Mapping[str, Any]) -> list[str]:
        """The Airflow roles a user with these claims gets (empty: refused), as the security manager decides."""
        keys = self.namespace["role_keys_for"](self.claim_values(claims))
        by_value, default_key = self.namespace["ROLE_BY_CLAIM_VALUE"], self.namespace["DEFAULT_ROLE_KEY"]
        return sorted({self.namespace["DEFAULT_ROLE"] if key == default_key else by_value[key] for key in keys})


# --- JWTs (decoded here to report on any token; signatures verified with PyJWT) ------------------------


class TokenError(ValueError):
    """The pasted text is not a JWT."""


def _b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class Jwt:
    header: dict[str, Any]
    claims: dict[str, Any]
    signing_input: bytes = field(repr=False)
    signature: bytes = field(repr=False)

    @classmethod
    def parse(cls, text: str) -> Jwt:
        """A compact JWS; also accepted: a pasted token response (JSON with `id_token`)."""
        text = text.strip()
        if text.startswith("{"):
            try:
                text = str(json.loads(text)["id_token"]).strip()
            except (ValueError, KeyError, TypeError):
                raise TokenError("JSON without an `id_token` string") from None
        parts = text.split(".")
        if len(parts) != 3:
            raise TokenError(f"not a signed JWT ({len(parts)} dot-separated parts, expected 3)")
        try:
            header, claims = json.loads(_b64url(parts[0])), json.loads(_b64url(parts[1]))
            signature = _b64url(parts[2])
        except ValueError:
            raise TokenError("its header or payload is not base64url JSON") from None
        if not isinstance(header, dict) or not isinstance(claims, dict):
            raise TokenError("its header or payload is not a JSON object")
        return cls(header, claims, f"{parts[0]}.{parts[1]}".encode("ascii"), signature)


def verify_signature(token: Jwt, jwks: Mapping[str, Any]) -> tuple[str, str]:
    """(status, detail) of the token's signature against the provider's published keys."""
    alg, kid = str(token.header.get("alg")), token.header.get("kid")
    if alg == "none" or alg.startswith("HS"):
        return FAIL, f"signed with {alg!r}: Airflow verifies ID tokens with the provider's published keys only"
    keys = [key for key in jwks.get("keys", []) if isinstance(key, dict) and key.get("use", "sig") == "sig"]
    matching = [key for key in keys if kid is None or key.get("kid") == kid]
    if not matching:
        return FAIL, f"no published key has kid {kid!r} ({len(keys)} signing keys published)"
    import jwt  # PyJWT, as Airflow ships it: the same verification the api-server's libraries do

    if alg not in jwt.algorithms.get_default_algorithms():
        return CANNOT, f"{alg} signatures are not verified by the doctor (PyJWT knows no such algorithm)"
    for key in matching:
        try:
            public = jwt.PyJWK(dict(key), algorithm=alg)
        except (jwt.PyJWKError, jwt.InvalidKeyError):
            continue  # a key of another type or curve: not the one that signed
        if public.Algorithm.verify(token.signing_input, public.key, token.signature):
            return PASS, f"{alg} signature verified with the published key {kid!r}"
    return FAIL, f"the {alg} signature does not verify with the published key {kid!r}"


# --- the checks ---------------------------------------------------------------------------------------


@dataclass
class DoctorTarget:
    """What the doctor checks: the stack's contract, and where to reach the live parts."""

    source: str
    """The stack file as errors name it."""
    spec: Spec
    contract: ClientContract
    issuer_url: str
    """Where to reach the issuer (default: the declared issuer); comparisons use the declared one."""
    airflow_url: str | None
    client_id: str | None = None
    id_token: str | None = field(default=None, repr=False)
    client_secret: str | None = field(default=None, repr=False)
    """Only sent to the IdP's token endpoint, never printed (the api-server's env var, or a file)."""
    provider_sources: Mapping[str, str] = field(default_factory=dict)
    """Provider setting -> where its value came from: the key itself (the stack file) or its env var."""


def issuer_keys(spec: Spec, provider_sources: Mapping[str, str] | None = None) -> str:
    """The keys that decide the issuer, for fix messages (any kind): each `idp` key the stack sets, or,
    for one it leaves unset, the provider setting (or environment variable) its value came from."""
    model = type(spec.idp)
    fields = model.model_fields
    if "issuer" in fields:
        return "`idp.issuer`"
    names = [
        name
        for name in fields
        if re.search(r"url|issuer|realm|tenant|domain|server|org", name, re.IGNORECASE)
        and not name.startswith("create")
    ]
    keys: list[str] = []
    for name in names:
        sources = provider_sources or {}
        given = [sources[key] for key in model.DEFAULTS_FROM_PROVIDER.get(name, ()) if key in sources]
        if getattr(spec.idp, name, None) is None and given:
            keys.extend(f"`{source}`" for source in given)
        else:
            keys.append(f"`idp.{name}`")
    return ", ".join(keys) or f"the `idp` keys of kind {spec.idp.kind}"


def _spec_key(spec: Spec, name: str, otherwise: str) -> str:
    return f"`idp.{name}`" if name in type(spec.idp).model_fields else otherwise


class Doctor:
    """Runs the checks in order; each appends exactly one `Check`."""

    def __init__(self, target: DoctorTarget, http: Http) -> None:
        self.target = target
        self.contract = target.contract
        self.spec = target.spec
        self.http = http
        self.checks: list[Check] = []
        self.discovery: dict[str, Any] | None = None
        self.idp_responses: list[Response] = []
        """Every answer of the IdP, for its clock (some servers send Date on some routes only)."""
        self.jwks: dict[str, Any] | None = None
        self.airflow_login: Response | None = None
        self.airflow_start: Response | None = None
        self.airflow_problem: str | None = None
        self.client_id: str | None = target.client_id
        self.token: Jwt | None = None

    def issuer_keys(self) -> str:
        """The keys that decide this stack's issuer, named where their values came from."""
        return issuer_keys(self.spec, self.target.provider_sources)

    def add(self, name: str, status: str, detail: str, fix: str = "") -> None:
        self.checks.append(Check(name, status, detail, fix if status == FAIL else ""))

    def run(self) -> list[Check]:
        self.check_discovery()
        self.check_issuer()
        self.check_endpoints()
        self.check_response_type()
        alg = self.check_signing_alg()
        self.check_scopes()
        self.check_jwks(alg)
        self.probe_airflow()  # learns the client id Airflow presents, for the IdP's redirect check
        self.check_redirect_uri_accepted()
        self.check_client_secret()
        self.check_airflow_login_page()
        self.check_airflow_authorization_request()
        self.check_session_cookie()
        self.check_clock_skew()
        self.check_token()
        self.check_nonce_support()
        return self.checks

    # --- the IdP ------------------------------------------------------------------------------------

    @property
    def discovery_url(self) -> str:
        return self.target.issuer_url.rstrip("/") + DISCOVERY_PATH

    def check_discovery(self) -> None:
        where = self.discovery_url
        fix = f"{self.issuer_keys()} must name the provider's issuer; this machine must reach {where}"
        try:
            response = self.http.session()(where)
        except (OSError, ValueError) as error:
            self.add("discovery", FAIL, f"{where} unreachable ({_unreachable(error)})", fix)
            return
        if response.status != 200:
            self.add("discovery", FAIL, f"{where} answered HTTP {response.status}", fix)
            return
        try:
            document = response.json()
        except ValueError:
            document = None
        if not isinstance(document, dict):
            self.add("discovery", FAIL, f"{where} is not a JSON object (not an OpenID provider's discovery)", fix)
            return
        self.discovery = document
        self.idp_responses.append(response)
        self.add("discovery", PASS, f"{where} answered")

    def _needs_discovery(self, name: str) -> bool:
        if self.discovery is None:
            self.add(name, CANNOT, "no discovery document")
            return False
        return True

    def check_issuer(self) -> None:
        if not self._needs_discovery("issuer"):
            return
        advertised, declared = self.discovery.get("issuer"), self.contract.issuer  # type: ignore[union-attr]
        if advertised == declared:
            self.add("issuer", PASS, f"discovery's issuer is {declared!r}, as declared")
            return
        hint = " (they differ only by a trailing slash)" if str(advertised).rstrip("/") == declared.rstrip("/") else ""
        self.add(
            "issuer",
            FAIL,
            f"discovery's issuer is {advertised!r}, the stack declares {declared!r}{hint}: tokens carry the "
            "provider's, so the two must agree byte for byte",
            f"change {self.issuer_keys()} so the issuer is exactly {advertised!r}",
        )

    def check_endpoints(self) -> None:
        if not self._needs_discovery("endpoints"):
            return
        missing = [name for name in REQUIRED_ENDPOINTS if not self.discovery.get(name)]  # type: ignore[union-attr]
        logout = "ends the IdP session too" if self.discovery.get("end_session_endpoint") else "ends Airflow's only"  # type: ignore[union-attr]
        if missing:
            self.add(
                "endpoints",
                FAIL,
                f"discovery lacks {', '.join(missing)}",
                f"{self.issuer_keys()} must point at the OpenID issuer itself (not an OAuth-only or parent URL)",
            )
        else:
            self.add(
                "endpoints", PASS, f"{', '.join(REQUIRED_ENDPOINTS)} present; end_session_endpoint: logout {logout}"
            )

    def check_response_type(self) -> None:
        if not self._needs_discovery("response type code"):
            return
        supported = self.discovery.get("response_types_supported") or []  # type: ignore[union-attr]
        if "code" in supported:
            self.add("response type code", PASS, "the authorization code flow is supported")
        else:
            self.add(
                "response type code",
                FAIL,
                f"response_types_supported is {supported}, without `code`",
                "enable the authorization code flow for this client at the IdP (Airflow uses nothing else)",
            )

    def check_signing_alg(self) -> str | None:
        if not self._needs_discovery("signing alg"):
            return None
        algs = [str(alg) for alg in self.discovery.get("id_token_signing_alg_values_supported") or []]  # type: ignore[union-attr]
        usable = [alg for alg in algs if alg[:2] in ASYMMETRIC_KTY]
        if not usable:
            self.add(
                "signing alg",
                FAIL,
                f"id_token_signing_alg_values_supported is {algs}: no algorithm Airflow can verify with the JWKS",
                "sign ID tokens with an asymmetric key (RS256) at the IdP",
            )
            return None
        self.add(
            "signing alg", PASS, f"ID tokens signed with {usable[0]}" + (f" (also {usable[1:]})" if usable[1:] else "")
        )
        return usable[0]

    def check_scopes(self) -> None:
        if not self._needs_discovery("scopes"):
            return
        supported = self.discovery.get("scopes_supported")  # type: ignore[union-attr]
        wanted = list(self.contract.scopes)
        if not isinstance(supported, list):
            self.add("scopes", CANNOT, f"discovery lists no scopes_supported; Airflow asks for {wanted}")
            return
        missing = [scope for scope in wanted if scope not in supported]
        if missing:
            key = _spec_key(self.spec, "scopes", "the scopes the program registers (run `pulumi up`)")
            self.add(
                "scopes",
                FAIL,
                f"the provider does not support {missing} of {wanted}",
                f"remove {missing} from {key}, or create the scope at the IdP",
            )
        else:
            self.add("scopes", PASS, f"{wanted} supported")

    def check_jwks(self, alg: str | None) -> None:
        if not self._needs_discovery("jwks"):
            return
        uri = self.discovery.get("jwks_uri")  # type: ignore[union-attr]
        if not uri:
            self.add("jwks", CANNOT, "discovery names no jwks_uri")
            return
        fix = (
            f"Airflow's api-server must reach {uri} (egress, proxy, network policy); it fetches the keys at the "
            "first sign-in of each process"
        )
        try:
            response = self.http.session()(str(uri))
            self.idp_responses.append(response)
            document = response.json() if response.status == 200 else None
        except (OSError, ValueError) as error:
            self.add("jwks", FAIL, f"{uri} unreachable ({_unreachable(error)})", fix)
            return
        if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
            status = response.status
            self.add("jwks", FAIL, f"{uri} answered HTTP {status}" + ("" if status != 200 else ", not a key set"), fix)
            return
        self.jwks = document
        if alg is None:
            self.add("jwks", CANNOT, f"{len(document['keys'])} keys published; no usable signing algorithm to match")
            return
        kty = ASYMMETRIC_KTY[alg[:2]]
        keys = [
            k for k in document["keys"] if isinstance(k, dict) and k.get("kty") == kty and k.get("use", "sig") == "sig"
        ]
        if keys:
            self.add("jwks", PASS, f"{len(keys)} {kty} signing key(s) for {alg} published")
        else:
            self.add(
                "jwks",
                FAIL,
                f"{uri} publishes no {kty} signing key for {alg}",
                "publish the ID token signing key at the IdP (or sign with an algorithm whose key it publishes)",
            )

    def check_redirect_uri_accepted(self) -> None:
        name = "redirect uri accepted"
        if not self._needs_discovery(name):
            return
        endpoint = self.discovery.get("authorization_endpoint")  # type: ignore[union-attr]
        if not endpoint:
            self.add(name, CANNOT, "discovery names no authorization_endpoint")
            return
        if not self.client_id:
            self.add(name, CANNOT, "the client id is unknown: give --client-id (or let the doctor reach Airflow)")
            return
        (redirect_uri,) = self.contract.redirect_uris[:1]
        verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        query = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": redirect_uri,
            "scope": " ".join(self.contract.scopes),
            "state": secrets.token_urlsafe(16),
            "nonce": secrets.token_urlsafe(16),
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
        get = self.http.session()
        url = f"{endpoint}{'&' if '?' in str(endpoint) else '?'}{urlencode(query)}"
        register = (
            f"register {redirect_uri} as a redirect URI of client {self.client_id!r} at the IdP (it follows from "
            "`hostname`; a kind the program manages registers it at `pulumi up`, `oidc` is registered by hand)"
        )
        try:
            for _ in range(MAX_HOPS):
                response = get(url)
                self.idp_responses.append(response)
                location = response.location()
                if location and location.startswith(redirect_uri):
                    error = dict(parse_qsl(urlsplit(location).query)).get("error")
                    if error is None or error in NEEDS_A_USER:
                        self.add(name, PASS, f"the IdP sends the browser back to {redirect_uri} (without a sign-in)")
                    else:
                        scopes = _spec_key(self.spec, "scopes", "the kind's scopes")
                        self.add(
                            name,
                            FAIL,
                            f"the IdP accepted {redirect_uri} but answered error={error}",
                            f"{error}: check the client's grant types, PKCE and {scopes} at the IdP",
                        )
                    return
                if location and 300 <= response.status < 400:
                    url = location
                    continue
                break
        except (OSError, ValueError) as error:
            self.add(name, CANNOT, f"the authorization endpoint is unreachable ({_unreachable(error)})")
            return
        page = response.text()
        if REDIRECT_REFUSED.search(page) and (response.status >= 400 or "AADSTS" in page or "_redirect_uri" in page):
            marker = REDIRECT_REFUSED.search(page).group(0)  # type: ignore[union-attr]
            self.add(name, FAIL, f"the IdP refuses {redirect_uri} (HTTP {response.status}, {marker!r})", register)
        elif response.status >= 400 and CLIENT_REFUSED.search(page):
            marker = CLIENT_REFUSED.search(page).group(0)  # type: ignore[union-attr]
            key = _spec_key(self.spec, "clientId", "the client the program registers (run `pulumi up`)")
            self.add(name, FAIL, f"the IdP does not know client {self.client_id!r} ({marker!r})", f"check {key}")
        elif response.status == 200:
            self.add(name, PASS, f"the IdP shows its sign-in page for {redirect_uri} (nobody signed in)")
        else:
            self.add(name, FAIL, f"the authorization request ended with HTTP {response.status}", register)

    def check_client_secret(self) -> None:
        """Redeem a made-up code with the client's credentials: an IdP authenticates the client before it
        looks at the code, so `invalid_grant` means the secret is right and `invalid_client` that it is not."""
        name = "client secret"
        if not self._needs_discovery(name):
            return
        endpoint = self.discovery.get("token_endpoint")  # type: ignore[union-attr]
        if not endpoint or not self.client_id:
            self.add(name, CANNOT, "no token endpoint or no client id")
            return
        if not self.target.client_secret:
            self.add(
                name,
                CANNOT,
                f"no client secret given: run the doctor where ${CLIENT_SECRET_ENV} is set (the api-server pod), "
                "or give --client-secret-file",
            )
            return
        form = {
            "grant_type": "authorization_code",
            "code": "airflow-oidc-doctor-" + secrets.token_urlsafe(16),
            "redirect_uri": self.contract.redirect_uris[0],
            "code_verifier": secrets.token_urlsafe(48),
        }
        try:
            response = self.http.post_form(str(endpoint), form, basic_auth=(self.client_id, self.target.client_secret))
            error = str(response.json().get("error", ""))
        except (OSError, ValueError, AttributeError) as problem:
            self.add(name, CANNOT, f"the token endpoint gave no OAuth error ({type(problem).__name__})")
            return
        if error in ("invalid_client", "unauthorized_client"):
            key = _spec_key(self.spec, "clientSecret", "the client secret the program registers")
            self.add(
                name,
                FAIL,
                f"the IdP refuses client {self.client_id!r}'s credentials ({error}, HTTP {response.status}): "
                "the sign-in fails at the token exchange",
                f"the secret the api-server holds and the IdP's differ: set {key} to the IdP's secret (or register "
                "the program's), `pulumi up`, and let the api-server pods roll",
            )
        elif error == "invalid_grant":
            self.add(name, PASS, "the IdP accepts the client's credentials (it refused only the made-up code)")
        else:
            self.add(name, CANNOT, f"the token endpoint answered HTTP {response.status} error={error or '(none)'}")

    # --- Airflow ------------------------------------------------------------------------------------

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
            self.airflow_problem = f"{base} unreachable ({_unreachable(error)})"
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
            key = _spec_key(self.spec, "scopes", "the kind's scopes")
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

    def check_clock_skew(self) -> None:
        name = "clock skew"
        idp = next((offset for r in self.idp_responses if (offset := _clock_offset(r)) is not None), None)
        airflow = _clock_offset(self.airflow_login)
        if idp is None:
            seen = f"{len(self.idp_responses)} answers" if self.idp_responses else "no answer"
            known = "; Keycloak sends none" if self.spec.idp.kind == "keycloak" else ""
            self.add(name, CANNOT, f"the IdP sends no Date header ({seen}{known})")
            return
        if airflow is not None:
            skew, between = idp - airflow, "the IdP's clock against Airflow's"
        else:
            skew, between = idp, "the IdP's clock against this machine's (Airflow not reached)"
        detail = f"{between}: {skew:+.0f} s; Airflow tolerates {LEEWAY_SECONDS} s (Authlib's ID token leeway)"
        if abs(skew) <= LEEWAY_SECONDS:
            self.add(name, PASS, detail)
        else:
            ahead = "ahead of" if skew > 0 else "behind"
            self.add(
                name,
                FAIL,
                detail
                + f": the IdP is {abs(skew):.0f} s {ahead} "
                + ("Airflow" if airflow is not None else "this machine"),
                "not a spec key: synchronise the clocks (NTP) of the api-server nodes and the IdP; ID tokens are "
                "refused as issued in the future or expired",
            )

    # --- a pasted ID token ---------------------------------------------------------------------------

    def check_token(self) -> None:
        if self.target.id_token is None:
            return
        try:
            self.token = Jwt.parse(self.target.id_token)
        except TokenError as error:
            self.add("token", FAIL, f"the pasted ID token cannot be decoded: {error}", "paste the `id_token` itself")
            return
        token, claims = self.token, self.token.claims
        if self.jwks is None:
            self.add("token signature", CANNOT, "the JWKS was not reached: decoded without verifying")
        else:
            status, detail = verify_signature(token, self.jwks)
            self.add(
                "token signature", status, detail, "the token was not signed by this IdP (another tenant or issuer?)"
            )

        iss = claims.get("iss")
        advertised = self.discovery.get("issuer") if self.discovery else None
        if iss == self.contract.issuer and advertised in (None, iss):
            self.add("token issuer", PASS, f"iss is {iss!r}")
        else:
            expected = advertised or self.contract.issuer
            self.add(
                "token issuer",
                FAIL,
                f"iss is {iss!r}; the stack declares {self.contract.issuer!r}"
                + (f", discovery says {advertised!r}" if advertised and advertised != self.contract.issuer else ""),
                f"a token from another issuer is refused: paste one issued by {expected!r}, "
                f"or change {self.issuer_keys()}",
            )

        raw_audience = claims.get("aud")
        audience = (
            [str(item) for item in raw_audience]
            if isinstance(raw_audience, list)
            else ([] if raw_audience is None else [str(raw_audience)])
        )
        if not self.client_id:
            self.add("token audience", CANNOT, f"aud is {audience}; the client id is unknown (give --client-id)")
        elif self.client_id in audience and (len(audience) == 1 or claims.get("azp") == self.client_id):
            self.add("token audience", PASS, f"issued to this client ({self.client_id!r})")
        else:
            key = _spec_key(self.spec, "clientId", "the client the program registers")
            self.add(
                "token audience",
                FAIL,
                f"aud is {audience}"
                + (f", azp {claims.get('azp')!r}" if claims.get("azp") else "")
                + f": not this stack's client {self.client_id!r}, so Airflow refuses it",
                f"the token was issued to another application: paste one issued to {self.client_id!r}, or make {key} "
                "name the client users sign in with",
            )

        exp, now = claims.get("exp"), self.http.now()
        if not isinstance(exp, int | float):
            self.add("token expiry", FAIL, "no numeric exp claim", "the IdP must issue standard ID tokens")
        elif exp < now - LEEWAY_SECONDS:
            self.add(
                "token expiry",
                FAIL,
                f"expired {_duration(now - exp)} ago (Airflow allows {LEEWAY_SECONDS} s of leeway)",
                "not a spec key: sign in again and paste a fresh token (or sync this machine's clock)",
            )
        else:
            self.add("token expiry", PASS, f"valid for another {_duration(exp - now)}")

        wrong = {
            name: claims.get(name) for name, value in self.contract.required_claims.items() if claims.get(name) != value
        }
        missing_user = self.contract.username_claim not in claims
        if wrong:
            self.add(
                "token claims",
                FAIL,
                f"required claims differ: {wrong} (the stack requires {dict(self.contract.required_claims)})",
                "the token comes from another tenant/directory than the `idp` keys declare",
            )
        elif missing_user:
            self.add(
                "token claims",
                CANNOT,
                f"no {self.contract.username_claim!r} in the ID token: Airflow then reads it from userinfo",
            )
        else:
            self.add("token claims", PASS, f"username claim {self.contract.username_claim!r} present")

        self.check_token_roles(claims)

    def check_token_roles(self, claims: Mapping[str, Any]) -> None:
        name = "token role"
        claim = self.contract.role_claim
        source = getattr(self.contract, "role_source", "token")
        if source != "token":
            self.add(name, CANNOT, f"the roles come from {source!r} at sign-in, not from the ID token")
            return
        if claim not in claims:
            self.add(name, CANNOT, f"the ID token has no {claim!r} claim: Airflow then reads it from userinfo")
            return
        mapping = RoleMapping.from_rendered_config(render_webserver_config(self.contract))
        values, roles = mapping.claim_values(claims), mapping.roles(claims)
        user = f"{self.contract.provider}_{claims.get(self.contract.username_claim, '?')}"
        if roles:
            self.add(name, PASS, f"{claim} = {values}: {user} would sign in with {roles}")
            return
        mapped = sorted(self.contract.role_by_claim_value)
        self.add(
            name,
            FAIL,
            f"{claim} = {values}: none is mapped ({mapped}), so Airflow refuses {user}",
            "`access[].group` must equal a value the IdP emits, exactly (full paths such as '/group', object ids); "
            "or give a wider audience `defaultRole` through `signIn.everyone` / `signIn.extraGroups`",
        )

    def check_nonce_support(self) -> None:
        """Discovery has no nonce flag: `claims_supported` listing it is the only hint; a token proves it."""
        name = "idp nonce"
        if self.token is not None:
            if self.token.claims.get("nonce"):
                self.add(name, PASS, "the pasted ID token echoes a nonce")
            else:
                self.add(
                    name,
                    FAIL,
                    "the pasted ID token carries no nonce: Airflow (Authlib) refuses it (missing_claim nonce)",
                    "not a spec key: the IdP must echo the authorization request's nonce in the ID token "
                    "(a client set to another flow, or an IdP without OpenID nonce support)",
                )
            return
        if not self._needs_discovery(name):
            return
        supported = self.discovery.get("claims_supported")  # type: ignore[union-attr]
        if isinstance(supported, list) and "nonce" in supported:
            self.add(name, PASS, "discovery lists `nonce` in claims_supported")
        else:
            self.add(
                name,
                CANNOT,
                "discovery does not list `nonce` in claims_supported (Keycloak and Google omit it and still echo "
                "it): paste a token with --id-token to check",
            )


def _clock_offset(response: Response | None) -> float | None:
    """The server's clock minus this machine's, from its Date header (1 s resolution)."""
    if response is None or not response.header("Date"):
        return None
    try:
        server = parsedate_to_datetime(str(response.header("Date"))).timestamp()
    except (TypeError, ValueError):
        return None
    return server - response.received_at


def _duration(seconds: float) -> str:
    seconds = abs(int(seconds))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h"


# --- the command ------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `doctor` subcommand's arguments."""
    parser.add_argument(
        "stack_file", type=Path, metavar="STACK_FILE", help="a stack file, or a stack name of the project"
    )
    parser.add_argument("--airflow-url", help="Airflow's public URL (default: https://<hostname> of the spec)")
    parser.add_argument("--id-token", type=Path, metavar="FILE", help="an ID token a user pasted (never printed)")
    parser.add_argument("--format", choices=("text", "json"), default="text")
    parser.add_argument(
        "--issuer-url",
        help="where to reach the issuer, if not at the declared URL from here (the issuer is still compared "
        "with the declared one, byte for byte)",
    )
    parser.add_argument("--client-id", help="the OAuth client id (default: what Airflow sends, or `idp.clientId`)")
    parser.add_argument(
        "--client-secret-file",
        type=Path,
        metavar="FILE",
        help=f"the client secret, to check it at the token endpoint (default: ${CLIENT_SECRET_ENV}); never printed",
    )
    parser.add_argument("--ca-file", help="CA certificates (PEM) to verify Airflow's and the IdP's TLS with")
    parser.add_argument("--insecure", action="store_true", help="do not verify TLS certificates")
    parser.add_argument("--timeout", type=float, default=10, help="seconds per HTTP request (default 10)")
    parser.add_argument("--stack", help="the stack name (default: from the file name Pulumi.<stack>.yaml)")


def doctor(args: argparse.Namespace, *, now: Callable[[], float] = time.time) -> int:
    """Run every check on the stack file's live setup; print them; 1 if any failed (2: unusable input)."""
    from components.stack_config import provider_from_stack_file, spec_from_stack_file

    path: Path = args.stack_file
    if not path.exists():  # a stack name (`ledger-prod`): the project's Pulumi.ledger-prod.yaml
        from components.project import find_project

        path = find_project(getattr(args, "project_dir", None)).stack_path(path)
    ok, problem = check_stack_file(path)
    if not ok:
        print(problem, file=sys.stderr)
        return 2
    spec = spec_from_stack_file(path)
    source = shown_name(path)
    provider = provider_from_stack_file(path, spec)
    try:
        contract = client_contract(spec, stack=args.stack or stack_name(path), provider=provider)
    except ValueError as error:
        print(f"{source}: {error}", file=sys.stderr)
        return 2
    id_token = None
    if args.id_token is not None:
        try:
            id_token = args.id_token.read_text()
        except (OSError, UnicodeDecodeError) as error:
            print(
                f"{args.id_token}: cannot read the ID token file: {getattr(error, 'strerror', None) or error}",
                file=sys.stderr,
            )
            return 2
    client_secret = os.environ.get(CLIENT_SECRET_ENV) or None
    if args.client_secret_file is not None:
        try:
            client_secret = args.client_secret_file.read_text().strip()
        except (OSError, UnicodeDecodeError) as error:
            why = getattr(error, "strerror", None) or type(error).__name__
            print(f"{args.client_secret_file}: cannot read the client secret file: {why}", file=sys.stderr)
            return 2
    target = DoctorTarget(
        source=source,
        spec=spec,
        contract=contract,
        issuer_url=args.issuer_url or contract.issuer,
        airflow_url=args.airflow_url or spec.public_url,
        client_id=args.client_id or getattr(spec.idp, "clientId", None),
        id_token=id_token,
        client_secret=client_secret,
        provider_sources=provider_sources(path, spec, provider),
    )
    http = Http(timeout=args.timeout, ca_file=args.ca_file, insecure=args.insecure, now=now)
    checks = Doctor(target, http).run()
    print(render(checks, source, args.format))
    return 1 if any(check.status == FAIL for check in checks) else 0


def provider_sources(path: Path, spec: Spec, provider: Mapping[str, str]) -> dict[str, str]:
    """Each provider setting the stack has -> where it came from: the key in the stack file, else its env var."""
    from components.stack_config import load_stack_file

    config = load_stack_file(path)
    return {
        key: key if isinstance(config.get(key), str) else env
        for key, env in type(spec.idp).PROVIDER_CONFIG.items()
        if provider.get(key)
    }


def render(checks: Sequence[Check], source: str, form: str) -> str:
    """The report as text (one line per check, then a summary) or JSON (for CI)."""
    failed = sum(check.status == FAIL for check in checks)
    if form == "json":
        return json.dumps(
            {"stack": source, "ok": failed == 0, "failed": failed, "checks": [asdict(c) for c in checks]}, indent=2
        )
    unchecked = sum(check.status == CANNOT for check in checks)
    lines = [check.line() for check in checks]
    lines.append(f"{source}: {len(checks) - failed - unchecked} passed, {failed} failed, {unchecked} not checked")
    return "\n".join(lines)
