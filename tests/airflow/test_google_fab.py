"""kind: google in real Airflow + FAB: Google-shaped ID tokens, groups from a Cloud Identity stand-in.

The claims follow Google's documented ID token payload ("An ID token's payload",
https://developers.google.com/identity/openid-connect/openid-connect#an-id-tokens-payload:
iss https://accounts.google.com, azp/aud 1234987819200.apps.googleusercontent.com,
sub 10769150350006150715113082367, at_hash HK6E_P6Dh8Y93mRNtsDB1Q, hd example.com,
email jsmith@example.com, iat 1353601026, exp 1353604926, nonce 0394852-3190485-2490358; checked
against a verbatim copy of the page's example, not the page itself), with this stack's Workspace
domain as hd. The example spells `email_verified` as the string "true"; Google's tokens carry a JSON
boolean, and the security manager accepts only that (a string is refused, below).
There is no groups claim: memberships come from the Cloud Identity stand-in on loopback that the e2e
tier uses too (localdev/harness/google.py: `groups.memberships.searchTransitiveGroups`, paged),
asked with a token from its GCE metadata-server stand-in, as google-auth's application default
credentials find it on GKE (GCE_METADATA_HOST / GCE_METADATA_IP).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
STACK = "growth-prod"
CLIENT_ID = "1234987819200.apps.googleusercontent.com"  # the aud/azp of Google's documented example
DOMAIN = "corp-example.net"
GROUPS_SCOPE = "https://www.googleapis.com/auth/cloud-identity.groups.readonly"

pytestmark = pytest.mark.airflow

try:
    import airflow  # noqa: F401
except ImportError:  # pragma: no cover - the Pulumi venv collects this directory too
    pytest.skip("Airflow tier: run with .venv-airflow (make test does)", allow_module_level=True)

from localdev.harness.google import ACCESS_TOKEN, CloudIdentityStandIn  # noqa: E402
from tests.airflow.fab_probe import POOL  # noqa: E402

# Who is in which group, directly; groups may be members of groups (Cloud Identity resolves nesting).
DIRECT: dict[str, list[str]] = {
    f"admin@{DOMAIN}": [f"airflow-admins@{DOMAIN}", f"all-staff@{DOMAIN}"],
    # Cloud Identity may spell an address with capitals: emails compare case-insensitively.
    f"two@{DOMAIN}": [f"growth-engineers@{DOMAIN}", f"Growth-Analysts@{DOMAIN}"],
    f"nested@{DOMAIN}": [f"data-oncall-rota@{DOMAIN}"],
    f"data-oncall-rota@{DOMAIN}": [f"growth-oncall@{DOMAIN}"],
    f"nobody@{DOMAIN}": [f"all-staff@{DOMAIN}"],
    # Five groups: three pages of the stand-in's two, the mapped one on the last.
    f"pager@{DOMAIN}": [f"g{index}@{DOMAIN}" for index in range(4)] + [f"airflow-admins@{DOMAIN}"],
}
ANSWER_STATUS = {f"broken@{DOMAIN}": 500, f"premium-only@{DOMAIN}": 403}
SLOW = {f"slow@{DOMAIN}": 12.0}
"""Answered after the lookup's timeout (ROLE_LOOKUP timeout_seconds: 10)."""


@pytest.fixture(scope="module")
def google(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CloudIdentityStandIn]:
    """The metadata server and Cloud Identity stand-ins the e2e tier uses too (localdev/harness/google.py)."""
    stand_in = CloudIdentityStandIn(
        tmp_path_factory.mktemp("google-stand-ins"),
        service_account="airflow-growth-prod-groups@data-platform-prod.iam.gserviceaccount.com",
        project="data-platform-prod",
    )
    for member, groups in DIRECT.items():
        stand_in.directory.set_member(member, groups)
    for member, status in ANSWER_STATUS.items():
        stand_in.directory.fail_for(member, status)
    for member, seconds in SLOW.items():
        stand_in.directory.set_member(member, [f"airflow-admins@{DOMAIN}"])
        stand_in.directory.delay_for(member, seconds)
    with stand_in:
        yield stand_in


@pytest.fixture(scope="module")
def stand_ins(google: CloudIdentityStandIn) -> str:
    return google.address


@pytest.fixture(scope="module")
def airflow_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("airflow-home-google")
    airflow_bin = Path(sys.executable).with_name("airflow")
    subprocess.run([str(airflow_bin), "db", "migrate"], env=probe_env(home, ""), check=True, capture_output=True)
    return home


def probe_env(home: Path, stand_ins: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("GOOGLE_APPLICATION_CREDENTIALS", "NO_GCE_CHECK") and not key.startswith("GCE_METADATA")
    }
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
            "AIRFLOW__CORE__AUTH_MANAGER": "airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager",
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
            # No gcloud user credentials: application default credentials must come from the metadata server.
            "CLOUDSDK_CONFIG": str(home / "no-gcloud"),
        }
    )
    if stand_ins:
        env.update(
            {
                "AIRFLOW_OIDC_CLOUD_IDENTITY_URL": f"http://{stand_ins}",
                "GCE_METADATA_HOST": stand_ins,
                "GCE_METADATA_IP": stand_ins,
            }
        )
    return env


def probe(home: Path, stand_ins: str, steps: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], str]:
    """The results of `steps` and what Airflow logged meanwhile (tests/airflow/fab_probe.py)."""
    setup = {
        "stack_file": str(ROOT / "stacks" / f"Pulumi.{STACK}.yaml"),
        "stack": STACK,
        "provider": {"gcp:project": "data-platform-prod"},
        "home": str(home),
        "client_id": CLIENT_ID,
    }
    answer, logs = POOL.request(setup, probe_env(home, stand_ins), steps)
    return answer["results"], logs


def google_claims(sub: str, email: str, **changes: Any) -> dict[str, Any]:
    """Google's documented ID token payload for this client and domain (no groups claim)."""
    claims: dict[str, Any] = {
        "iss": "https://accounts.google.com",
        "azp": CLIENT_ID,
        "aud": CLIENT_ID,
        "sub": sub,
        "at_hash": "HK6E_P6Dh8Y93mRNtsDB1Q",
        "hd": DOMAIN,
        "email": email,
        "email_verified": True,
        "iat": 1353601026,
        "exp": 1353604926,
        "nonce": "0394852-3190485-2490358",
        "name": "Jane Smith",
        "given_name": "Jane",
        "family_name": "Smith",
    }
    claims.update(changes)
    return {key: value for key, value in claims.items() if value is not None}


def login(claims: dict[str, Any]) -> dict[str, Any]:
    return {"op": "login", "claims": claims, "userinfo": None}


def lookups(google: CloudIdentityStandIn, member: str) -> list[dict[str, Any]]:
    return [
        call
        for call in google.calls
        if call["path"].startswith("/v1/") and f"member_key_id == '{member}'" in call["query"].get("query", "")
    ]


def test_roles_come_from_transitive_workspace_groups(
    airflow_home: Path, google: CloudIdentityStandIn, stand_ins: str
) -> None:
    google.calls.clear()
    proxied = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "airflow.growth.corp-example.net"}
    steps = [
        {"op": "callback", "headers": {**proxied, "X-Forwarded-Port": "443"}},
        login(google_claims("10769150350006150715113082367", f"admin@{DOMAIN}")),
        login(google_claims("10769150350006150715113082368", f"two@{DOMAIN}")),
        login(google_claims("10769150350006150715113082369", f"nested@{DOMAIN}")),
        login(google_claims("10769150350006150715113082370", f"pager@{DOMAIN}")),
        login(google_claims("10769150350006150715113082371", f"nobody@{DOMAIN}")),
    ]
    (callback, admin, two, nested, pager, nobody), logs = probe(airflow_home, stand_ins, steps)
    # Exactly the redirect URI the registration output names; Google's scopes; PKCE.
    assert callback["redirect_uri"] == "https://airflow.growth.corp-example.net/auth/oauth-authorized/google"
    assert callback["scope"] == "openid email profile"
    assert callback["code_challenge_method"] == "S256"
    assert callback["authorize"].startswith("https://accounts.google.com/")
    assert admin["info"]["username"] == "google_10769150350006150715113082367"
    assert admin["user"]["roles"] == ["Admin"], "no registration role on top of the mapping"
    assert admin["user"]["email"] == f"admin@{DOMAIN}"
    assert (admin["user"]["first_name"], admin["user"]["last_name"]) == ("Jane", "Smith")
    assert two["user"]["roles"] == ["User", "Viewer"]
    assert two["info"]["role_keys"] == [f"growth-engineers@{DOMAIN}", f"growth-analysts@{DOMAIN}"]
    assert nested["user"]["roles"] == ["Op"], "a member of a member group is a member"
    assert pager["user"]["roles"] == ["Admin"], "the mapped group was on the last page"
    assert len(lookups(google, f"pager@{DOMAIN}")) == 3
    assert nobody["info"] == {} and nobody["logged_in"] is False and nobody["user"] is None
    assert nobody["user_count"] == 4, "a refused login creates no user row"
    assert "no group of theirs is mapped" in logs
    # Every lookup carried the token the metadata server issued (application default credentials).
    api_calls = [call for call in google.calls if call["path"].startswith("/v1/")]
    assert api_calls and all(call["authorization"] == f"Bearer {ACCESS_TOKEN}" for call in api_calls)
    token_calls = [call for call in google.calls if call["path"].endswith("/token")]
    assert token_calls and GROUPS_SCOPE in token_calls[0]["query"].get("scopes", "")
    assert not any("userinfo" in result["userinfo_calls"] for result in (admin, two, nested, pager, nobody))


REFUSED_CLAIMS = [
    (google_claims("1001", f"admin@{DOMAIN}", hd=None), "claim 'hd' is None, not 'corp-example.net'"),
    (
        google_claims("1002", "admin@other-example.com", hd="other-example.com"),
        "claim 'hd' is 'other-example.com', not 'corp-example.net'",
    ),
    (google_claims("1003", f"admin@{DOMAIN}", email_verified=False), "claim 'email_verified' is False, not True"),
    # Google's documented example spells it as a string: only a JSON boolean true is accepted.
    (google_claims("1004", f"admin@{DOMAIN}", email_verified="true"), "claim 'email_verified' is 'true', not True"),
]


def test_tokens_outside_the_domain_or_unverified_are_refused_without_a_lookup(
    airflow_home: Path, google: CloudIdentityStandIn, stand_ins: str
) -> None:
    """`hd` missing (a consumer account) or foreign, `email_verified` false: refused, Cloud Identity never asked."""
    google.calls.clear()
    results, logs = probe(airflow_home, stand_ins, [login(claims) for claims, _ in REFUSED_CLAIMS])
    for result, (_, reason) in zip(results, REFUSED_CLAIMS, strict=True):
        assert result["info"] == {} and result["logged_in"] is False and result["user"] is None
        assert reason in logs, reason
    assert len({result["user_count"] for result in results}) == 1, "a refused login creates no user row"
    assert not [call for call in google.calls if call["path"].startswith("/v1/")], "refused before any lookup"


def test_a_failed_lookup_refuses_the_login_with_the_reason(
    airflow_home: Path, google: CloudIdentityStandIn, stand_ins: str
) -> None:
    """An API error (500), a refusal (403: the edition lacks transitive search) or no answer within the
    timeout (an Admin-group member): no login, no default role."""
    google.calls.clear()
    steps = [
        login(google_claims("2001", f"broken@{DOMAIN}")),
        login(google_claims("2002", f"premium-only@{DOMAIN}")),
        login(google_claims("2003", f"slow@{DOMAIN}")),
    ]
    (broken, denied, slow), logs = probe(airflow_home, stand_ins, steps)
    for result in (broken, denied, slow):
        assert result["info"] == {} and result["logged_in"] is False and result["user"] is None
    assert f"refused broken@{DOMAIN}: the Cloud Identity lookup answered HTTP 500" in logs
    assert f"refused premium-only@{DOMAIN}: the Cloud Identity lookup answered HTTP 403" in logs
    assert f"refused slow@{DOMAIN}: the Cloud Identity lookup failed: ReadTimeout" in logs
    assert lookups(google, f"broken@{DOMAIN}") and lookups(google, f"premium-only@{DOMAIN}")


def test_an_unreachable_api_refuses_the_login(airflow_home: Path) -> None:
    """No stand-ins at all: the API address is closed, and no metadata server answers."""
    closed = "127.0.0.1:9"  # discard port: nothing listens there
    (result,), logs = probe(airflow_home, closed, [login(google_claims("3001", f"admin@{DOMAIN}"))])
    assert result["info"] == {} and result["user"] is None
    assert "the Cloud Identity lookup failed" in logs


def test_the_lookup_refuses_an_email_that_could_escape_the_query(
    airflow_home: Path, google: CloudIdentityStandIn, stand_ins: str
) -> None:
    google.calls.clear()
    crafted = f"x' || true || 'y@{DOMAIN}"
    (result,), logs = probe(airflow_home, stand_ins, [login(google_claims("4001", crafted))])
    assert result["info"] == {} and result["user"] is None
    assert "is not an email address" in logs
    assert not [call for call in google.calls if call["path"].startswith("/v1/")]
