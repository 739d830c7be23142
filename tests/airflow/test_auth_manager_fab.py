"""The shipped auth-manager module (components/airflow_auth_manager.py) inside real Airflow 3.3.2 + FAB
3.10.2: token verification for each kind's contract shape (Okta `cid` + `scp`, Entra `roles` + `tid`,
RFC 9068 `client_id`) against a JWKS served over HTTP, and the readable audit names.

Run with the Airflow venv: `.venv-airflow/bin/python -m pytest tests/airflow -q`.
"""

from __future__ import annotations

import importlib.util
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

pytest.importorskip("airflow.providers.fab")
jwt = pytest.importorskip("jwt")
from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: E402

pytestmark = pytest.mark.airflow

MODULE = Path(__file__).resolve().parents[2] / "components" / "airflow_auth_manager.py"
KID = "test-key"
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def load_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("airflow_oidc_auth", MODULE)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


auth = load_module()


@pytest.fixture(scope="module")
def issuer() -> Iterator[str]:
    """A discovery document and a JWKS with one key, over HTTP on loopback."""
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(KEY.public_key()))
    jwk.update(kid=KID, use="sig", alg="RS256")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            base = f"http://127.0.0.1:{self.server.server_address[1]}"
            body = {"/.well-known/openid-configuration": {"issuer": base, "jwks_uri": base + "/jwks"}}.get(
                self.path, {"keys": [jwk]} if self.path == "/jwks" else None
            )
            self.send_response(200 if body else 404)
            self.send_header("content-type", "application/json")
            self.end_headers()
            self.wfile.write(json.dumps(body or {}).encode())

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def settings(issuer: str, **changes: Any) -> dict[str, Any]:
    base = {
        "issuer": issuer,
        "discoveryUrl": issuer + "/.well-known/openid-configuration",
        "audience": "api://default",
        "identityClaim": "cid",
        "scopeClaim": "scp",
        "requiredScope": "airflow_prod_api",
        "requiredClaims": {},
        "algorithms": ["RS256"],
        "leewaySeconds": 30,
        "accounts": {"0oa-release": {"name": "release-pipeline", "role": "Op"}},
    }
    return {**base, **changes}


def token(issuer: str, key: Any = KEY, kid: str = KID, **claims: Any) -> str:
    now = int(time.time())
    payload = {"iss": issuer, "aud": "api://default", "iat": now, "exp": now + 600, "cid": "0oa-release"}
    payload.update({"scp": ["airflow_prod_api"], "sub": "0oa-release"})
    payload.update(claims)
    payload = {name: value for name, value in payload.items() if value is not None}
    return str(jwt.encode(payload, key, algorithm="RS256", headers={"kid": kid}))


def test_an_okta_shaped_token_names_its_account(issuer: str) -> None:
    assert auth.verify_service_account_token(token(issuer), settings(issuer)) == {
        "name": "release-pipeline",
        "role": "Op",
    }


def test_an_entra_shaped_token_names_its_account_by_app_role_and_tenant(issuer: str) -> None:
    entra = settings(
        issuer,
        identityClaim="roles",
        requiredScope=None,
        requiredClaims={"tid": "tenant-1"},
        accounts={"Airflow.ServiceAccount.ci": {"name": "ci", "role": "User"}},
    )
    good = token(issuer, cid=None, scp=None, roles=["Airflow.ServiceAccount.ci"], tid="tenant-1")
    assert auth.verify_service_account_token(good, entra) == {"name": "ci", "role": "User"}
    other_tenant = token(issuer, cid=None, scp=None, roles=["Airflow.ServiceAccount.ci"], tid="tenant-2")
    with pytest.raises(auth.RefusedTokenError, match="'tid' is 'tenant-2'"):
        auth.verify_service_account_token(other_tenant, entra)


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"cid": "0oa-someone-else", "sub": "0oa-someone-else"}, "names 0 of this stack's service accounts"),
        ({"exp": int(time.time()) - 3600, "iat": int(time.time()) - 7200}, "ExpiredSignatureError"),
        ({"aud": "api://another"}, "InvalidAudienceError"),
        ({"iss": "http://127.0.0.1:1/evil"}, "InvalidIssuerError"),
        ({"scp": ["airflow_other_stack_api"]}, "scope 'airflow_prod_api' is not granted"),
        ({"exp": None}, "MissingRequiredClaimError"),
        ({"nonce": "n"}, "an ID token"),
    ],
    ids=["unlisted-client", "expired", "other-audience", "other-issuer", "other-stacks-scope", "no-exp", "id-token"],
)
def test_refused(issuer: str, claims: dict[str, Any], reason: str) -> None:
    with pytest.raises(auth.RefusedTokenError, match=reason):
        auth.verify_service_account_token(token(issuer, **claims), settings(issuer))


def test_refused_an_unknown_key_and_no_signature(issuer: str) -> None:
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(auth.RefusedTokenError, match="InvalidSignatureError"):
        auth.verify_service_account_token(token(issuer, key=stranger), settings(issuer))
    with pytest.raises(auth.RefusedTokenError, match="PyJWKClientError"):
        auth.verify_service_account_token(token(issuer, key=stranger, kid="other"), settings(issuer))
    unsigned = jwt.encode(jwt.decode(token(issuer), options={"verify_signature": False}), None, algorithm="none")
    with pytest.raises(auth.RefusedTokenError, match="'none' is not one of"):
        auth.verify_service_account_token(unsigned, settings(issuer))


def test_an_unreachable_idp_refuses_instead_of_failing(issuer: str) -> None:
    gone = settings(issuer, discoveryUrl="http://127.0.0.1:9/.well-known/openid-configuration")
    with pytest.raises(auth.RefusedTokenError, match="discovery document .* is unusable"):
        auth.verify_service_account_token(token(issuer), gone)


def test_refused_a_token_naming_two_accounts(issuer: str) -> None:
    two = settings(
        issuer,
        identityClaim="roles",
        requiredScope=None,
        accounts={"a": {"name": "a", "role": "Op"}, "b": {"name": "b", "role": "Admin"}},
    )
    with pytest.raises(auth.RefusedTokenError, match="names 2"):
        auth.verify_service_account_token(token(issuer, roles=["a", "b"]), two)


def test_without_service_accounts_every_token_is_refused(issuer: str) -> None:
    with pytest.raises(auth.RefusedTokenError, match="declares no service accounts"):
        auth.verify_service_account_token(token(issuer), None)


@pytest.mark.parametrize(
    ("username", "email", "first", "last", "shown"),
    [
        ("oidc_00u1abc", "ada@example.com", "Ada", "Lovelace", "ada@example.com (oidc_00u1abc)"),
        ("okta_00u1abc", "", "Ada", "Lovelace", "Ada Lovelace (okta_00u1abc)"),
        ("okta_00u1abc", None, None, None, "okta_00u1abc"),
        ("ci-deploy", "ci-deploy@service-account.invalid", "ci-deploy", "(service account)", "ci-deploy"),
    ],
    ids=["email", "name", "nothing-readable", "service-account"],
)
def test_readable_names(username: str, email: str | None, first: str | None, last: str | None, shown: str) -> None:
    assert auth.readable_name(username, email, first, last) == shown


def test_a_service_accounts_token_holds_only_while_the_spec_lists_it_with_that_role() -> None:
    listed = {"accounts": {"0oa-release": {"name": "release-pipeline", "role": "Op"}}}
    assert auth.service_account_problem("release-pipeline", ["Op"], listed) is None
    assert "not in the stack's spec any more" in auth.service_account_problem("release-pipeline", ["Op"], {})
    assert "not in the stack's spec any more" in auth.service_account_problem("release-pipeline", ["Op"], None)
    assert "the spec says Op" in auth.service_account_problem("release-pipeline", ["Op", "Admin"], listed)
    assert auth.is_service_account_user("release-pipeline", "release-pipeline@service-account.invalid")
    # People's usernames carry `_`: never taken for a service account, whatever email their IdP sends.
    assert not auth.is_service_account_user("okta_00u1", "x@service-account.invalid")
    assert not auth.is_service_account_user("release-pipeline", "someone@example.com")


def test_bearer_token_and_the_class_airflow_loads() -> None:
    assert auth.bearer_token({"authorization": "Bearer abc.def.ghi"}) == "abc.def.ghi"
    assert auth.bearer_token({"Authorization": "Basic dXNlcjpwdw=="}) is None
    from airflow.providers.fab.auth_manager.fab_auth_manager import FabAuthManager

    assert issubclass(auth.OidcAuthManager, FabAuthManager)
    # Only the extension point and the audit name are overridden.
    overridden = {name for name in vars(auth.OidcAuthManager) if not name.startswith("__") and name != "_abc_impl"}
    assert overridden == {"create_token", "deserialize_user", "_service_account_user"}


def test_password_requests_are_refused_with_the_reason() -> None:
    manager = auth.OidcAuthManager.__new__(auth.OidcAuthManager)
    with pytest.raises(ValueError, match="no API token for a username and password"):
        manager.create_token({}, {"username": "admin", "password": "admin"})
