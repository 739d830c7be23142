"""stacks/Pulumi.risk-prod.yaml (`idp.kind: azuread`): the rendered webserver_config.py in real Airflow + FAB,
fed Entra-shaped ID token claims.

The claims are Microsoft's: the claim meanings (`roles`, `oid`, `tid`, `sub` pairwise per app) from
https://learn.microsoft.com/en-us/entra/identity-platform/id-token-claims-reference, and the values of
the sample v2.0 ID token Microsoft published with its ID token documentation (Abe Lincoln, tenant
9122040d-6c67-4c5b-b112-36a304b66dad, oid 00000000-0000-0000-66f3-3332eca7ea81, aud
6cb04018-a3f5-46a7-b995-940c78f5aef3), plus what this app registration adds: the `roles` the app-role
assignments give and the optional claims it asks for (email, given_name, family_name). The tenant
the stack trusts is the sample's (the probe passes it as `azuread:tenantId`); 9188040d-6c67-4c5b-b112-
36a304b66dad, the reference's tenant of personal Microsoft accounts, is the other tenant.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from components.contract import client_contract
from components.stack_config import spec_from_stack_file

ROOT = Path(__file__).resolve().parents[2]
STACK = "risk-prod"
STACK_FILE = ROOT / "stacks" / f"Pulumi.{STACK}.yaml"
SAMPLE_TENANT = "9122040d-6c67-4c5b-b112-36a304b66dad"
CONSUMER_TENANT = "9188040d-6c67-4c5b-b112-36a304b66dad"  # personal Microsoft accounts
CLIENT_ID = "6cb04018-a3f5-46a7-b995-940c78f5aef3"  # `aud` of Microsoft's sample ID token
OID = "00000000-0000-0000-66f3-3332eca7ea81"
PROVIDER = {"azuread:tenantId": SAMPLE_TENANT}

pytestmark = pytest.mark.airflow

try:
    import airflow  # noqa: F401
except ImportError:  # pragma: no cover - the Pulumi venv collects this directory too
    pytest.skip("Airflow tier: run with .venv-airflow (make test does)", allow_module_level=True)

from tests.airflow.fab_probe import POOL  # noqa: E402
from tests.airflow.test_webserver_config_fab import probe_env  # noqa: E402


def entra_claims(
    roles: list[str] | None,
    *,
    oid: str = OID,
    tid: str = SAMPLE_TENANT,
    email: str | None = None,
    sub: str = "AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ",
) -> dict[str, Any]:
    """Microsoft's sample v2.0 ID token, with the claims this app registration adds (FAB keeps emails unique:
    users other than the sample's get their own)."""
    email = email or ("AbeLi@microsoft.com" if oid == OID else f"user-{oid[-4:]}@example.com")
    claims: dict[str, Any] = {
        "ver": "2.0",
        "iss": f"https://login.microsoftonline.com/{tid}/v2.0",
        "sub": sub,
        "aud": CLIENT_ID,
        "exp": 1536361411,
        "iat": 1536274711,
        "nbf": 1536274711,
        "name": "Abe Lincoln",
        "preferred_username": "AbeLi@microsoft.com",
        "oid": oid,
        "tid": tid,
        "nonce": "123523",
        "aio": "Df2UVXL1ix!lMCWMSOJBcFatzcGfvFGhjKv8q5g0x732dR5MB5BisvGQO7YWByjd8iQDLq!eGbIDakyp5mnOrcdqHeYSnltepQ"
        "mRp6AIZ8jY",
        "email": email,
        "given_name": "Abe",
        "family_name": "Lincoln",
    }
    if roles is not None:  # Entra leaves `roles` out when no app role is assigned
        claims["roles"] = roles
    return claims


def entra_userinfo(claims: dict[str, Any]) -> dict[str, Any]:
    """What Microsoft's userinfo endpoint answers: profile claims and the same `sub`, never `roles`."""
    return {key: claims[key] for key in ("sub", "name", "given_name", "family_name", "email")}


@pytest.fixture(scope="module")
def entra_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An Airflow home of its own: the user counts below are this module's alone."""
    home = tmp_path_factory.mktemp("airflow-home-azuread")
    airflow_bin = Path(sys.executable).with_name("airflow")
    subprocess.run(
        [str(airflow_bin), "db", "migrate"], env=probe_env(home), check=True, capture_output=True, timeout=300
    )
    return home


def entra_probe(home: Path, steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The results of `steps` in Airflow + FAB with the Entra stack's config (tests/airflow/fab_probe.py)."""
    setup = {
        "stack_file": str(STACK_FILE),
        "stack": STACK,
        "provider": PROVIDER,
        "home": str(home),
        "client_id": CLIENT_ID,
    }
    answer, _ = POOL.request(setup, probe_env(home), steps)
    return list(answer["results"])


def login(claims: dict[str, Any], userinfo: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"op": "login", "claims": claims, "userinfo": userinfo}


def test_callback_is_the_registered_redirect_uri_and_the_issuer_is_the_tenants(entra_home: Path) -> None:
    spec = spec_from_stack_file(STACK_FILE)
    contract = client_contract(spec, stack=STACK, provider=PROVIDER)
    headers = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": spec.host, "X-Forwarded-Port": "443"}
    (proxied,) = entra_probe(entra_home, [{"op": "callback", "headers": headers}])
    assert proxied["status"] == 302
    assert [proxied["redirect_uri"]] == list(contract.redirect_uris)
    assert proxied["redirect_uri"] == "https://airflow.risk.example.com/auth/oauth-authorized/azuread"
    assert proxied["scope"] == "openid email profile"
    assert proxied["authorize"].startswith(f"https://login.microsoftonline.com/{SAMPLE_TENANT}/v2.0")


def test_entra_roles_map_to_airflow_roles_and_other_tenants_are_refused(entra_home: Path) -> None:
    no_roles = entra_claims(None, oid="00000000-0000-0000-0000-00000000a001")
    steps = [
        login(entra_claims(["Airflow.Admin"])),
        login(entra_claims(["Airflow.User", "Airflow.Op"], oid="00000000-0000-0000-0000-00000000a002")),
        # No app role assigned: no `roles` claim; the userinfo fallback has none either.
        login(no_roles, entra_userinfo(no_roles)),
        # An app-role value this stack does not define maps to nothing.
        login(entra_claims(["Airflow.Superuser"], oid="00000000-0000-0000-0000-00000000a003")),
        # Another tenant's token (a personal account here) carrying a mapped role: refused on `tid`.
        login(entra_claims(["Airflow.Admin"], oid="00000000-0000-0000-0000-00000000a004", tid=CONSUMER_TENANT)),
        # A token without `tid` at all: refused too.
        login({key: value for key, value in entra_claims(["Airflow.Admin"]).items() if key != "tid"}),
        # The same person's email changed in Entra: the same Airflow user (keyed by oid), email kept current.
        login(entra_claims(["Airflow.Admin"], email="abe.lincoln@example.com")),
        # Another app's pairwise `sub` for the same person: still the same user.
        login(entra_claims(["Airflow.Admin"], sub="HKZpfaHyWadeOouYlitjrI-KffTm222X5rrV3xDqfKQ")),
    ]
    admin, several, no_role, unknown, other_tenant, no_tid, renamed, other_sub = entra_probe(entra_home, steps)
    assert admin["info"]["username"] == f"azuread_{OID}"
    assert admin["user"]["roles"] == ["Admin"], "no registration role (Public) on top of the mapping"
    assert (admin["user"]["first_name"], admin["user"]["last_name"]) == ("Abe", "Lincoln")
    assert admin["user"]["email"] == "AbeLi@microsoft.com"
    assert several["user"]["roles"] == ["Op", "User"]
    assert no_role["userinfo_calls"] == ["userinfo"]
    for refused in (no_role, unknown, other_tenant, no_tid):
        assert refused["info"] == {} and refused["logged_in"] is False and refused["user"] is None
    assert other_tenant["user_count"] == 2, "a refused sign-in creates no user row"
    assert renamed["user"]["username"] == f"azuread_{OID}"
    assert renamed["user"]["email"] == "abe.lincoln@example.com"
    assert other_sub["user"]["username"] == f"azuread_{OID}"
    assert renamed["user_count"] == other_sub["user_count"] == 2


def test_default_role_only_for_the_default_app_role_and_never_on_top(entra_home: Path) -> None:
    """defaultRole Viewer for signIn.extraGroups members (app role Airflow.Default)."""
    steps = [
        login(entra_claims(["Airflow.Default"], oid="00000000-0000-0000-0000-00000000b001")),
        login(entra_claims(["Airflow.Op", "Airflow.Default"], oid="00000000-0000-0000-0000-00000000b002")),
    ]
    stakeholder, oncall = entra_probe(entra_home, steps)
    assert stakeholder["user"]["roles"] == ["Viewer"]
    assert oncall["user"]["roles"] == ["Op"]
