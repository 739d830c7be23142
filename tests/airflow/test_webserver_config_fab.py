"""The rendered webserver_config.py, loaded in real Airflow + FAB (the versions the image ships).

Claim fixtures follow the IdPs' documented examples: Okta's ID token example (developer.okta.com,
"ID token payload", with a groups claim as the filter emits it) and the OpenID Connect Core 1.0
standard-claims example (section 5.1: sub 248289761001, Jane Doe).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from components.contract import client_contract
from components.stack_config import provider_from_stack_file, spec_from_stack_file

ROOT = Path(__file__).resolve().parents[2]
CLIENT_ID = "0oaid4BxXw6I6TV4m0g3"  # the client id in Okta's documented example

pytestmark = pytest.mark.airflow

try:
    import airflow  # noqa: F401
except ImportError:  # pragma: no cover - the Pulumi venv collects this directory too
    pytest.skip("Airflow tier: run with .venv-airflow (make test does)", allow_module_level=True)

from tests.airflow.fab_probe import POOL  # noqa: E402


def okta_claims(
    sub: str, groups: list[str], email: str = "john.doe@example.com", claim: str = "groups"
) -> dict[str, Any]:
    """Okta's documented ID token payload, with the groups claim (named `claim`) the filter emits."""
    return {
        "sub": sub,
        "name": "John Doe",
        "email": email,
        "ver": 1,
        "iss": "https://dev-123456.okta.com",
        "aud": CLIENT_ID,
        "iat": 1311280970,
        "exp": 1311284570,
        "jti": "ID.4eAWJOCMB3SX8XewDfVR",
        "amr": ["pwd"],
        "idp": "00oid4BxXw6I6TV4m0g3",
        "nonce": "n-0S6_WzA2Mj",
        "preferred_username": email,
        "auth_time": 1311280969,
        "at_hash": "MTIzNDU2Nzg5MDEyMzQ1Ng",
        claim: groups,
    }


def oidc_claims(sub: str, groups: list[str] | None) -> dict[str, Any]:
    """OpenID Connect Core 1.0, 5.1: the standard claims example."""
    claims: dict[str, Any] = {
        "sub": sub,
        "aud": CLIENT_ID,
        "name": "Jane Doe",
        "given_name": "Jane",
        "family_name": "Doe",
        "preferred_username": "j.doe",
        "email": f"{sub}@example.com",
        "picture": "http://example.com/janedoe/me.jpg",
    }
    if groups is not None:
        claims["groups"] = groups
    return claims


@pytest.fixture(scope="session")
def airflow_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("airflow-home")
    env = probe_env(home)
    airflow_bin = Path(sys.executable).with_name("airflow")
    subprocess.run([str(airflow_bin), "db", "migrate"], env=env, check=True, capture_output=True, timeout=300)
    return home


def probe_env(home: Path) -> dict[str, str]:
    return {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
        "AIRFLOW__CORE__AUTH_MANAGER": "airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager",
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
    }


def stack_provider(stack: str) -> dict[str, str]:
    """The provider settings the stack file gives its kind (okta:orgName, keycloak:url, ...)."""
    path = ROOT / "stacks" / f"Pulumi.{stack}.yaml"
    return provider_from_stack_file(path, spec_from_stack_file(path))


def probe(home: Path, stack: str, steps: list[dict[str, Any]]) -> dict[str, Any]:
    """What the stack's webserver_config.py does in Airflow + FAB for `steps` (tests/airflow/fab_probe.py)."""
    setup = {
        "stack_file": str(ROOT / "stacks" / f"Pulumi.{stack}.yaml"),
        "stack": stack,
        "provider": stack_provider(stack),
        "home": str(home),
        "client_id": CLIENT_ID,
    }
    answer, _ = POOL.request(setup, probe_env(home), steps)
    return answer


FORWARDED = {"X-Forwarded-Proto": "https", "X-Forwarded-Port": "443"}


@pytest.mark.parametrize("stack", ["dev", "prod", "local", "local-oidc", "search-prod"])
def test_callback_url_equals_the_registered_redirect_uri(airflow_home: Path, stack: str) -> None:
    spec = spec_from_stack_file(ROOT / "stacks" / f"Pulumi.{stack}.yaml")
    contract = client_contract(spec, stack=stack, provider=stack_provider(stack))
    port = spec.public_url.rsplit(":", 1)[1] if spec.public_url.count(":") == 2 else "443"
    behind_proxy = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": spec.host, "X-Forwarded-Port": port}
    out = probe(airflow_home, stack, [{"op": "callback", "headers": behind_proxy}, {"op": "callback", "headers": {}}])
    proxied, direct = out["results"]
    assert proxied["status"] == 302
    assert [proxied["redirect_uri"]] == list(contract.redirect_uris)
    assert proxied["scope"] == " ".join(contract.scopes)
    assert proxied["code_challenge_method"] == "S256"
    assert proxied["authorize"].startswith(contract.issuer)
    # Negative control: without the forwarded headers Airflow would send its internal address.
    assert direct["redirect_uri"] != proxied["redirect_uri"]
    assert direct["redirect_uri"].startswith("http://127.0.0.1:8080/")


def test_okta_claims_map_to_roles_and_unmapped_users_are_refused(airflow_home: Path) -> None:
    steps = [
        {"op": "login", "claims": okta_claims("00uid4BxXw6I6TV4m0g3", ["payments-airflow-admins"]), "userinfo": None},
        {
            "op": "login",
            "claims": okta_claims("00uMulti", ["payments-engineers", "payments-analysts"], "multi@example.com"),
            "userinfo": None,
        },
        {"op": "login", "claims": okta_claims("00uNobody", [], "nobody@example.com"), "userinfo": None},
        # Okta org server with a group outside the filter never emits it; if it did, it maps to nothing.
        {"op": "login", "claims": okta_claims("00uOther", ["Everyone", "IT"], "it@example.com"), "userinfo": None},
        # The same admin moved to the analysts: the old role goes at the next login.
        {"op": "login", "claims": okta_claims("00uid4BxXw6I6TV4m0g3", ["payments-analysts"]), "userinfo": None},
        # Email changed at the IdP: same Airflow user (keyed by sub), email kept current.
        {
            "op": "login",
            "claims": okta_claims("00uid4BxXw6I6TV4m0g3", ["payments-analysts"], "jdoe@example.com"),
            "userinfo": None,
        },
    ]
    admin, multi, nobody, other, moved, renamed = probe(airflow_home, "dev", steps)["results"]
    assert admin["info"]["username"] == "okta_00uid4BxXw6I6TV4m0g3"
    assert admin["info"]["role_keys"] == ["payments-airflow-admins"]
    assert admin["user"]["roles"] == ["Admin"], "no registration role (Public) on top of the mapping"
    assert admin["user"]["first_name"] == "John Doe"
    assert multi["user"]["roles"] == ["User", "Viewer"]
    for refused in (nobody, other):
        assert refused["info"] == {} and refused["logged_in"] is False and refused["user"] is None
    assert nobody["user_count"] == other["user_count"] == 2, "a refused login creates no user row"
    assert moved["user"]["roles"] == ["Viewer"]
    assert renamed["user"]["username"] == "okta_00uid4BxXw6I6TV4m0g3"
    assert renamed["user"]["email"] == "jdoe@example.com"
    assert renamed["user_count"] == 2


def test_default_role_only_for_users_matching_no_group(airflow_home: Path) -> None:
    """prod: defaultRole Viewer for members of signIn.extraGroups; a mapped user never gets it on top."""
    claim = "airflow_prod_groups"  # the custom server's per-stack claim
    steps = [
        {
            "op": "login",
            "claims": okta_claims("00uStake", ["payments-stakeholders"], "s@example.com", claim),
            "userinfo": None,
        },
        {
            "op": "login",
            "claims": okta_claims("00uOncall", ["payments-oncall", "payments-stakeholders"], "o@example.com", claim),
            "userinfo": None,
        },
        {"op": "login", "claims": okta_claims("00uOutsider", ["marketing"], "x@example.com", claim), "userinfo": None},
    ]
    stakeholder, oncall, outsider = probe(airflow_home, "prod", steps)["results"]
    assert stakeholder["user"]["roles"] == ["Viewer"]
    assert oncall["user"]["roles"] == ["Op"]
    assert outsider["logged_in"] is False and outsider["user"] is None


def test_groups_fall_back_to_userinfo_for_the_same_subject_only(airflow_home: Path) -> None:
    steps = [
        # The ID token carries no groups claim: the security manager asks the userinfo endpoint.
        {
            "op": "login",
            "claims": oidc_claims("248289761001", None),
            "userinfo": oidc_claims("248289761001", ["airflow-operators"]),
        },
        # The groups claim is in the ID token: userinfo is not called.
        {"op": "login", "claims": oidc_claims("248289761002", ["airflow-viewers"]), "userinfo": None},
        # userinfo answers for another subject: refused.
        {
            "op": "login",
            "claims": oidc_claims("248289761003", None),
            "userinfo": oidc_claims("someone-else", ["airflow-admins"]),
        },
        # Keycloak-style full-path groups ("/airflow-admins") are not the mapped names: refused.
        {"op": "login", "claims": oidc_claims("248289761004", ["/airflow-admins"]), "userinfo": None},
    ]
    fallback, direct, mismatch, full_path = probe(airflow_home, "local-oidc", steps)["results"]
    assert fallback["userinfo_calls"] == ["userinfo"]
    assert fallback["user"]["roles"] == ["Op"]
    assert fallback["user"]["username"] == "oidc_248289761001"
    assert (fallback["user"]["first_name"], fallback["user"]["last_name"]) == ("Jane", "Doe")
    assert direct["userinfo_calls"] == [] and direct["user"]["roles"] == ["Viewer"]
    assert mismatch["logged_in"] is False and mismatch["user"] is None
    assert full_path["logged_in"] is False and full_path["user"] is None


def test_rendered_config_is_what_fab_loads(airflow_home: Path) -> None:
    out = probe(airflow_home, "prod", [])
    text = Path(out["config_file"]).read_text()
    assert "SECURITY_MANAGER_CLASS = OidcSecurityManager" in text
    assert "AUTH_USER_REGISTRATION_ROLE =" not in text
    assert "{{" not in text


def test_id_tokens_for_another_audience_are_refused(airflow_home: Path) -> None:
    """Authlib 1.9 checks `azp` but not `aud`: the security manager checks that it names this client."""
    admin = ["airflow-admins"]
    steps = [
        {"op": "login", "claims": {**oidc_claims("aud-1", admin), "aud": "another-client"}, "userinfo": None},
        {
            "op": "login",
            "claims": {**oidc_claims("aud-2", admin), "aud": ["another-client", CLIENT_ID]},
            "userinfo": None,
        },
        {
            "op": "login",
            "claims": {**oidc_claims("aud-3", admin), "aud": ["another-client", CLIENT_ID], "azp": CLIENT_ID},
            "userinfo": None,
        },
        {
            "op": "login",
            "claims": {**oidc_claims("aud-4", admin), "aud": "another-client", "azp": CLIENT_ID},
            "userinfo": None,
        },
    ]
    other, multi_without_azp, multi_with_azp, azp_only = probe(airflow_home, "local-oidc", steps)["results"]
    for refused in (other, multi_without_azp, azp_only):
        assert refused["info"] == {} and refused["user"] is None
    assert multi_with_azp["user"]["roles"] == ["Admin"]
