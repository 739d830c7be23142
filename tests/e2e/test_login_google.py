"""End-to-end SSO for stacks/Pulumi.growth-prod.yaml (`idp.kind: google`, the client secret in Secret Manager).

The stand-in provider serves Google's issuer path (`https://accounts.google.com` has none) and behaves
as Google does for a Workspace account: `hd` and a verified email in every ID token, no groups claim.
Roles come from the Cloud Identity stand-in (`searchTransitiveGroups`, paged, nested groups resolved),
which the api-servers ask with a token from the metadata-server stand-in, through google-auth's
application default credentials (localdev/harness/google.py). The client secret reaches the
api-servers from the Secret that External Secrets Operator would write from the pinned Secret Manager
version (localdev/capture.py). nginx serves https://airflow.growth.corp-example.net: port 443 must be free.
"""

from __future__ import annotations

import pytest

pytest.importorskip("playwright", reason="!!! playwright is not importable: run with .venv-airflow/bin/pytest")
pytest.importorskip("airflow", reason="!!! airflow is not importable: run with .venv-airflow/bin/pytest")

from localdev.deployment import LocalDeployment
from localdev.harness.google import GoogleOidcProvider
from localdev.harness.provider import Shims
from tests.e2e.conftest import stack_deployment
from tests.e2e.sso_cases import (
    AUTHLIB_REFUSED,
    INVALID_LOGIN,
    NOT_MAPPED,
    SsoLoginCases,
    assert_refused_in_airflow,
    describe,
)

pytestmark = pytest.mark.e2e


deployment = stack_deployment("growth-prod")


def google(deployment: LocalDeployment) -> GoogleOidcProvider:
    assert isinstance(deployment.provider, GoogleOidcProvider)
    return deployment.provider


def group_of(deployment: LocalDeployment, role: str) -> str:
    return next(group for group, mapped in deployment.intent.access if mapped == role)


def workspace_user(deployment: LocalDeployment, account: str, groups: list[str]) -> str:
    """A Workspace account at the provider and in the directory (not among the harness's users); its email."""
    claims = deployment.user_claims(account, groups)
    google(deployment).set_user_claims(account, claims)
    return str(claims["email"])


class TestGoogleStack(SsoLoginCases):
    """Google Workspace: no groups in the token; roles from Cloud Identity; hd and email_verified checked."""

    @pytest.mark.parametrize(
        ("control", "expected_log"),
        [
            pytest.param("unpublished-key", AUTHLIB_REFUSED + "bad_signature", id="unpublished-key"),
            pytest.param("wrong-aud", AUTHLIB_REFUSED + "missing_claim", id="wrong-aud"),
            pytest.param("wrong-aud-azp", "refused an ID token issued to another audience", id="wrong-aud-azp"),
            # No full-path control: Google's token has no groups claim to tamper with (see below instead).
        ],
    )
    def test_tampered_id_token_is_refused(self, deployment: LocalDeployment, control: str, expected_log: str) -> None:
        super().test_tampered_id_token_is_refused(deployment, control, expected_log)

    def test_the_capture_is_googles_client_and_the_groups_reader(self, deployment: LocalDeployment) -> None:
        """Google's issuer (no path), the exact redirect URI, the groups reader on the api-server's account."""
        idp = deployment.idp
        assert idp["issuer"] == "https://accounts.google.com" and idp["issuer_path"] == ""
        assert deployment.redirect_uri == "https://airflow.growth.corp-example.net/auth/oauth-authorized/google"
        assert deployment.capture["outputs"]["registration"]["authorizedJavaScriptOrigins"] == []
        reader = deployment.capture["outputs"]["groupsReaderServiceAccount"]
        assert deployment.values["apiServer"]["serviceAccount"] == {
            "name": "airflow-api-server",
            "annotations": {"iam.gke.io/gcp-service-account": reader},
        }
        assert idp["groups_reader"] == reader
        # The api-servers read the client secret from the Secret the ExternalSecret produces, under the
        # key naming the Secret Manager version it pins.
        (entry,) = [e for e in deployment.values["apiServer"]["env"] if e["name"] == "AIRFLOW_OIDC_CLIENT_SECRET"]
        assert entry["valueFrom"]["secretKeyRef"] == {"name": "airflow-oidc-client", "key": "client-secret-v1"}
        synced = deployment.capture["airflow"]["secrets"]["airflow-oidc-client"]
        assert synced == {"client-secret-v1": idp["client_secret"]}
        assert deployment.admin.username == f"google_{deployment.admin.account_id}"

    def test_roles_come_from_cloud_identity_never_from_the_token(self, deployment: LocalDeployment) -> None:
        """An outsider whose ID token carries a groups claim naming the Admin group is still refused:
        only Cloud Identity's answer counts, and it was asked for this user's verified email."""
        account = "forged-groups"
        email = workspace_user(deployment, account, ["all-staff@corp-example.net"])
        deployment.provider.set_shims(Shims(idTokenClaims={"groups": [group_of(deployment, "Admin")]}))
        marks = deployment.airflow_log_marks()
        before = len(google(deployment).google.directory.lookups)
        result = deployment.login(account, label="refused-forged-groups", expect_text=INVALID_LOGIN)

        assert_refused_in_airflow(deployment, result, f"google_{account}")
        deployment.expect_airflow_log(marks, NOT_MAPPED)
        assert google(deployment).google.directory.lookups[before:] == [email]

    def test_member_of_a_nested_group_gets_its_role(self, deployment: LocalDeployment) -> None:
        """A user in an unmapped group that is a member of the Op group holds Op (transitive membership)."""
        account = "nested-member"
        rota = "data-oncall-rota@corp-example.net"
        directory = google(deployment).google.directory
        directory.set_member(rota, [group_of(deployment, "Op")])
        workspace_user(deployment, account, [rota])
        result = deployment.login(account, label="nested-member")
        assert result.has_token, describe(result)
        assert deployment.roles(f"google_{account}") == {"Op"}

    @pytest.mark.parametrize(
        ("claims", "logged"),
        [
            pytest.param({"hd": "other-example.com"}, "refused: claim 'hd' is 'other-example.com'", id="hd-foreign"),
            pytest.param({"hd": None}, "refused: claim 'hd' is None", id="hd-missing"),
            pytest.param({"email_verified": False}, "refused: claim 'email_verified' is False", id="email-unverified"),
        ],
    )
    def test_token_outside_the_domain_or_unverified_is_refused_without_a_lookup(
        self, deployment: LocalDeployment, claims: dict[str, object], logged: str
    ) -> None:
        """A member of the Admin group, with `hd` foreign or missing or the email unverified: refused, no row,
        and Cloud Identity is never asked."""
        account = "control-" + "-".join(f"{key}-{value}".lower().replace("_", "-") for key, value in claims.items())
        workspace_user(deployment, account, [group_of(deployment, "Admin")])
        deployment.provider.set_shims(Shims(idTokenClaims=claims))
        marks = deployment.airflow_log_marks()
        before = len(google(deployment).google.directory.lookups)
        result = deployment.login(account, label=account, expect_text=INVALID_LOGIN)

        assert_refused_in_airflow(deployment, result, f"google_{account}")
        deployment.expect_airflow_log(marks, logged)
        assert google(deployment).google.directory.lookups[before:] == []

    def test_failed_lookup_refuses_the_login_with_the_reason(self, deployment: LocalDeployment) -> None:
        """Cloud Identity answering 503 for an Admin-group member: refused, no row, the reason logged."""
        account = "lookup-fails"
        email = workspace_user(deployment, account, [group_of(deployment, "Admin")])
        directory = google(deployment).google.directory
        directory.fail_for(email, 503)
        marks = deployment.airflow_log_marks()
        try:
            result = deployment.login(account, label="refused-lookup-error", expect_text=INVALID_LOGIN)
        finally:
            directory.fail_for(email, None)
        assert_refused_in_airflow(deployment, result, f"google_{account}")
        deployment.expect_airflow_log(marks, f"refused {email}: the Cloud Identity lookup answered HTTP 503")
