"""`airflow-oidc doctor` against a live local stack, and a logout that ends the IdP session.

One LocalDeployment of the oidc stand-in stack (stacks/Pulumi.local-oidc.yaml; stacks/Pulumi.local.yaml
while that is still the oidc stack) serves every case: the doctor passes on the setup as declared, and
each broken variant (a provider shim, a provider registered otherwise, api-servers without proxy
handling, a spec variant, a pasted token) fails on its own check with its fix. The doctor runs as a
user runs it, `python -m components.cli doctor ... --format json`, in the Pulumi venv.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

pytest.importorskip("playwright", reason="!!! playwright is not importable: run with .venv-airflow/bin/pytest")
pytest.importorskip("airflow", reason="!!! airflow is not importable: run with .venv-airflow/bin/pytest")

from joserfc import jwt  # noqa: E402  (Authlib's JOSE library, in the Airflow venv)
from joserfc.jwk import RSAKey  # noqa: E402

from localdev.deployment import LocalDeployment, one_character_off  # noqa: E402
from localdev.harness.process import free_port  # noqa: E402
from localdev.harness.provider import Shims  # noqa: E402
from tests.e2e.conftest import stack_deployment  # noqa: E402
from tests.e2e.doctor_cases import assert_logout_ends_the_idp_session, failed, run_doctor  # noqa: E402

pytestmark = pytest.mark.e2e

# Every check the doctor runs with a pasted token, in its order.
ALL_CHECKS = [
    "discovery",
    "issuer",
    "endpoints",
    "response type code",
    "signing alg",
    "scopes",
    "jwks",
    "redirect uri accepted",
    "client secret",
    "airflow login page",
    "airflow redirect_uri",
    "airflow nonce",
    "airflow pkce",
    "session cookie",
    "clock skew",
    "token signature",
    "token issuer",
    "token audience",
    "token expiry",
    "token claims",
    "token role",
    "idp nonce",
]


# The oidc stand-in stack: one deployment for every doctor case and the logout (shared with the other
# modules of the stack).
deployment = stack_deployment("local-oidc")


@pytest.fixture(autouse=True)
def _declared_setup(request: pytest.FixtureRequest, deployment: LocalDeployment) -> Iterator[None]:
    """Every case starts from the api-servers as declared and a provider without shims."""
    if request.node.get_closest_marker("restarts_airflow") is None:
        deployment.use_airflow()
    yield
    deployment.provider.set_shims(Shims())


@pytest.fixture
def work_dir(tmp_path: Path) -> Path:
    """Where a case writes its pasted token and spec variants (0700)."""
    tmp_path.chmod(0o700)
    return tmp_path


def id_token(deployment: LocalDeployment, **changes: Any) -> str:
    """An ID token as the provider issues it to the Admin user, signed with the provider's own key."""
    jwk = json.loads(deployment.provider.key_path.read_text())
    now = int(time.time())
    (group,) = [group for group, role in deployment.intent.access if role == "Admin"][:1]
    claims: dict[str, Any] = {
        "iss": deployment.provider.issuer,
        "aud": deployment.client.client_id,
        "sub": deployment.admin.account_id,
        "iat": now,
        "exp": now + 3600,
        "nonce": "n-0S6_WzA2Mj",
        deployment.idp_groups.claim: [group, "Everyone"],
        "email": f"{deployment.admin.account_id}@example.com",
    }
    claims.update(changes)
    claims = {key: value for key, value in claims.items() if value is not None}
    return jwt.encode({"alg": "RS256", "kid": jwk["kid"]}, claims, RSAKey.import_key(jwk))


# --- the doctor ---------------------------------------------------------------------------------------


def test_every_check_passes_on_the_setup_as_declared(deployment: LocalDeployment, work_dir: Path) -> None:
    """With a genuine pasted token every check passes, and the token maps to Admin; the token never shows."""
    token = id_token(deployment)
    status, checks, stdout = run_doctor(deployment, work_dir, token=token)

    assert {name: check["status"] for name, check in checks.items()} == {name: "pass" for name in ALL_CHECKS}
    assert list(checks) == ALL_CHECKS
    assert status == 0
    assert "['Admin']" in checks["token role"]["detail"]
    for part in token.split("."):
        assert part not in stdout
    assert deployment.client.client_secret not in stdout


def test_issuer_with_a_trailing_slash_fails_byte_for_byte(deployment: LocalDeployment, work_dir: Path) -> None:
    """The provider's issuer is the declared one plus '/' (what Auth0 publishes): the doctor names idp.issuer."""
    deployment.provider.set_shims(Shims(discoveryIssuer=deployment.provider.issuer + "/"))
    status, checks, _ = run_doctor(deployment, work_dir)

    assert status == 1
    assert list(failed(checks)) == ["issuer"]
    assert "trailing slash" in checks["issuer"]["detail"]
    assert (
        "`idp.issuer`" in checks["issuer"]["fix"] and repr(deployment.provider.issuer + "/") in checks["issuer"]["fix"]
    )


def test_a_spec_declaring_another_issuer_fails(deployment: LocalDeployment, work_dir: Path) -> None:
    """A spec variant naming the provider by another URL (localhost for 127.0.0.1): discovery answers,
    with its own issuer; the doctor reaches it where the variant says and reports the mismatch."""
    variant = work_dir / deployment.stack_file.name
    text = deployment.stack_file.read_text()
    declared = urlsplit(deployment.provider.issuer)
    other = f"http://localhost:{declared.port}{declared.path}"
    assert text.count(f"issuer: {deployment.provider.issuer}\n") == 1
    variant.write_text(text.replace(f"issuer: {deployment.provider.issuer}\n", f"issuer: {other}\n"))
    status, checks, _ = run_doctor(deployment, work_dir, stack=variant)

    assert status == 1
    assert list(failed(checks)) == ["issuer"]
    assert repr(other) in checks["issuer"]["detail"] and "`idp.issuer`" in checks["issuer"]["fix"]


def test_unreachable_jwks_fails_with_the_egress_fix(deployment: LocalDeployment, work_dir: Path) -> None:
    """Discovery names a jwks_uri nothing answers at: the jwks check fails; the token is then only decoded."""
    dead = f"http://127.0.0.1:{free_port()}/jwks"
    deployment.provider.set_shims(Shims(discoveryFields={"jwks_uri": dead}))
    status, checks, _ = run_doctor(deployment, work_dir, token=id_token(deployment))

    assert status == 1
    assert list(failed(checks)) == ["jwks"]
    assert dead in checks["jwks"]["detail"] and "must reach" in checks["jwks"]["fix"]
    assert checks["token signature"]["status"] == "cannot check"


def test_unregistered_redirect_uri_fails_at_the_idp(deployment: LocalDeployment, work_dir: Path) -> None:
    """The client registered with a redirect URI one character off: the IdP refuses the doctor's own
    authorization request (PKCE, state, nonce; nobody signs in); Airflow still sends the declared one."""
    with deployment.provider_registered_with(redirect_uris=[one_character_off(deployment.redirect_uri)]):
        status, checks, _ = run_doctor(deployment, work_dir)

    assert status == 1
    assert list(failed(checks)) == ["redirect uri accepted"]
    check = checks["redirect uri accepted"]
    assert "invalid_redirect_uri" in check["detail"] and "HTTP 400" in check["detail"]
    assert deployment.redirect_uri in check["fix"] and "`hostname`" in check["fix"]
    assert checks["airflow redirect_uri"]["status"] == "pass"


def test_client_secret_the_idp_does_not_hold_fails(deployment: LocalDeployment, work_dir: Path) -> None:
    """The provider holding a secret one character off (the `invalid_client` symptom): the doctor redeems a
    made-up code with the api-server's secret; without a secret the check is left undone."""
    with deployment.provider_registered_with(client_secret=one_character_off(deployment.client.client_secret)):
        status, checks, _ = run_doctor(deployment, work_dir)
    assert status == 1
    assert list(failed(checks)) == ["client secret"]
    assert "invalid_client" in checks["client secret"]["detail"]
    assert "`idp.clientSecret`" in checks["client secret"]["fix"]

    _, unchecked, _ = run_doctor(deployment, work_dir, with_secret=False)
    assert unchecked["client secret"]["status"] == "cannot check"


def test_provider_that_does_not_echo_the_nonce_fails(deployment: LocalDeployment, work_dir: Path) -> None:
    """Discovery has no nonce flag: listing `nonce` in claims_supported passes; a pasted token without
    a nonce (a provider without nonce support) fails with its fix."""
    supported = requests.get(deployment.provider.discovery_url, timeout=5).json()["claims_supported"]
    deployment.provider.set_shims(Shims(discoveryFields={"claims_supported": [*supported, "nonce"]}))
    _, listed, _ = run_doctor(deployment, work_dir)
    assert listed["idp nonce"]["status"] == "pass", listed["idp nonce"]

    deployment.provider.set_shims(Shims(discoveryFields={"claims_supported": [c for c in supported if c != "nonce"]}))
    status, checks, _ = run_doctor(deployment, work_dir, token=id_token(deployment, nonce=None))
    assert status == 1
    assert list(failed(checks)) == ["idp nonce"]
    assert "missing_claim nonce" in checks["idp nonce"]["detail"]
    assert "echo" in checks["idp nonce"]["fix"]


@pytest.mark.parametrize(("offset", "fails"), [(60, False), (600, True)], ids=["60s-tolerated", "600s-refused"])
def test_clock_skew_beyond_authlibs_leeway_fails(
    deployment: LocalDeployment, work_dir: Path, offset: int, fails: bool
) -> None:
    """The provider's clock (its Date header) runs ahead of Airflow's: tolerated within 120 s, a fail beyond."""
    deployment.provider.set_shims(Shims(dateOffsetSeconds=offset))
    status, checks, _ = run_doctor(deployment, work_dir)

    check = checks["clock skew"]
    assert check["status"] == ("fail" if fails else "pass"), check
    assert "Authlib" in check["detail"] and "120 s" in check["detail"]
    measured = float(check["detail"].split("Airflow's: ")[1].split(" s")[0])
    assert abs(measured - offset) <= 2, check["detail"]
    assert (status == 1) is fails
    if fails:
        assert list(failed(checks)) == ["clock skew"] and "NTP" in check["fix"]


@pytest.mark.parametrize(
    ("changes", "check", "in_detail", "in_fix"),
    [
        pytest.param(
            {"iat": -7200, "exp": -3600},  # seconds from now, when the token is made
            "token expiry",
            "expired 60 min ago",
            "paste a fresh token",
            id="expired",
        ),
        pytest.param(
            {"aud": "another-app"}, "token audience", "['another-app']", "`idp.clientId`", id="wrong-audience"
        ),
        pytest.param(
            {"groups": ["/airflow-admins"]}, "token role", "none is mapped", "`access[].group`", id="full-path-groups"
        ),
    ],
)
def test_pasted_token_problems_fail_on_their_check(
    deployment: LocalDeployment,
    work_dir: Path,
    changes: dict[str, Any],
    check: str,
    in_detail: str,
    in_fix: str,
) -> None:
    """An expired token, one issued to another client, one whose groups map to no role: each fails alone."""
    now = int(time.time())
    changes = {key: now + value if key in ("iat", "exp") else value for key, value in changes.items()}
    status, checks, _ = run_doctor(deployment, work_dir, token=id_token(deployment, **changes))

    assert status == 1
    assert list(failed(checks)) == [check], failed(checks)
    assert in_detail in checks[check]["detail"]
    assert in_fix in checks[check]["fix"]


def test_token_signed_by_another_key_fails_the_signature(deployment: LocalDeployment, work_dir: Path) -> None:
    """A token under the provider's kid but signed by another key: verified against the JWKS, refused."""
    jwk = json.loads(deployment.provider.key_path.read_text())
    other = RSAKey.generate_key(2048, parameters={"kid": jwk["kid"]})
    genuine = id_token(deployment)
    forged = jwt.encode({"alg": "RS256", "kid": jwk["kid"]}, jwt.decode(genuine, RSAKey.import_key(jwk)).claims, other)
    status, checks, _ = run_doctor(deployment, work_dir, token=forged)

    assert status == 1
    assert list(failed(checks)) == ["token signature"]
    assert "does not verify" in checks["token signature"]["detail"]


@pytest.mark.restarts_airflow("proxy-handling-off")
def test_airflow_without_proxy_handling_sends_an_http_redirect_uri(deployment: LocalDeployment, work_dir: Path) -> None:
    """FAB's ProxyFix off and uvicorn trusting only 127.0.0.1 (nginx connects from 127.0.0.2) on the api-server
    that starts sign-ins: Airflow's own authorization request carries http://; the doctor follows Airflow's
    redirect and names the fix."""
    deployment.use_airflow(per_process_env=deployment.proxy_handling_off())
    status, checks, _ = run_doctor(deployment, work_dir)

    assert status == 1
    assert list(failed(checks)) == ["airflow redirect_uri"]
    check = checks["airflow redirect_uri"]
    assert repr(deployment.redirect_uri.replace("https://", "http://", 1)) in check["detail"]
    assert "`airflow.forwardedAllowIps`" in check["fix"] and "TLS proxy" in check["fix"]


# --- logout that logs out -----------------------------------------------------------------------------


@pytest.mark.restarts_airflow("no-end-session-endpoint")
def test_without_end_session_endpoint_logout_ends_only_airflows_session(
    deployment: LocalDeployment, work_dir: Path
) -> None:
    """A provider whose discovery has no end_session_endpoint (Google's case): the UI's logout lands on
    Airflow's login page without visiting the provider, and the provider's session survives it; the
    doctor says so. The api-servers restart so that Authlib reads the changed discovery document."""
    deployment.provider.set_shims(Shims(discoveryFields={"end_session_endpoint": None}))
    deployment.use_airflow(env={"AIRFLOW_OIDC_E2E_DISCOVERY": "no-end-session-endpoint"})
    _, checks, _ = run_doctor(deployment, work_dir)
    assert "logout ends Airflow's only" in checks["endpoints"]["detail"]

    user = next(user for user in deployment.users_of("mapped") if "Op" in user.expected_roles)
    first = deployment.login(user, label="logout-no-end-session", keep_context=True)
    assert first.has_token and first.context is not None, first
    context = first.context
    try:
        for page in list(context.pages):
            page.close()
        visited: list[str] = []
        page = context.new_page()
        page.on("request", lambda request: visited.append(request.url))
        page.goto(f"{deployment.base_url}/api/v2/auth/logout")
        page.wait_for_load_state("load")
        landed = page.url
        page.close()
        assert landed == deployment.client.post_logout_redirect_uris[0], (landed, visited)
        assert not any(url.startswith(deployment.provider.issuer) for url in visited), visited
        assert not any(cookie["name"] == "_token" for cookie in context.cookies())

        again = deployment.login(user, label="logout-no-end-session-again", context=context)
        assert again.has_token, again
        assert not any("login form" in step for step in again.steps), again.steps
    finally:
        context.close()


def test_logout_ends_the_idp_session_so_signing_in_again_asks_for_credentials(deployment: LocalDeployment) -> None:
    """After the UI's logout, signing in again asks the stand-in provider for credentials (see the helper)."""
    deployment.use_airflow()
    user = next(user for user in deployment.users_of("mapped") if "Viewer" in user.expected_roles)
    assert_logout_ends_the_idp_session(deployment, user)
