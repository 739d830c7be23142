"""End-to-end SSO for stacks/Pulumi.risk-prod.yaml (`idp.kind: azuread`), deployed from what the program
declares in Entra ID.

The stand-in provider is mounted at the tenant's issuer path (`/<tenant>/v2.0`) and behaves as the
declared app registration makes Entra behave: `roles` carries the values of the app roles assigned
(AppRoleAssignment) to the user's groups, left out when there are none; every ID token has the
user's `oid` and the tenant's `tid`; a user in no assigned group is refused at the provider
(the service principal requires assignment). Airflow names users `azuread_<oid>`.
"""

from __future__ import annotations

import pytest

pytest.importorskip("playwright", reason="!!! playwright is not importable: run with .venv-airflow/bin/pytest")
pytest.importorskip("airflow", reason="!!! airflow is not importable: run with .venv-airflow/bin/pytest")

from localdev.deployment import LocalDeployment
from localdev.harness.provider import Shims
from tests.e2e.conftest import stack_deployment
from tests.e2e.sso_cases import INVALID_LOGIN, SsoLoginCases, assert_refused_in_airflow

pytestmark = pytest.mark.e2e

CONSUMER_TENANT = "9188040d-6c67-4c5b-b112-36a304b66dad"
"""Entra's tenant of personal Microsoft accounts: another tenant than the stack's."""


deployment = stack_deployment("risk-prod")


class TestEntraStack(SsoLoginCases):
    """Entra ID: app-role values in `roles`, assignment required at the IdP, the tenant checked by Airflow."""

    def test_the_capture_is_entras_app_registration(self, deployment: LocalDeployment) -> None:
        """The provider serves the tenant's issuer path and emits app-role values, not group names."""
        idp = deployment.idp
        tenant = idp["tenant"]
        assert deployment.provider.issuer.endswith(f"/{tenant}/v2.0")
        assert idp["issuer"] == f"https://login.microsoftonline.com/{tenant}/v2.0"
        groups = deployment.idp_groups
        assert groups.claim == "roles"
        assert groups.emitted(["risk-airflow-admins", "risk-stakeholders", "Everyone"]) == [
            "Airflow.Admin",
            "Airflow.Default",
        ]
        (outsider,) = deployment.users_of("unmapped")
        assert outsider.refused_at_idp, "assignment is required: an unassigned user never reaches Airflow"
        admin = deployment.admin
        assert admin.username == f"azuread_{deployment.provider.users[admin.account_id]['oid']}"

    def test_user_from_another_tenant_is_refused_without_a_user_row(self, deployment: LocalDeployment) -> None:
        """A signed ID token whose `tid` names another tenant, for a member of the Admin group: refused."""
        account = "other-tenant"
        admins = next(group for group, role in deployment.intent.access if role == "Admin")
        claims = deployment.user_claims(account, [admins])
        deployment.provider.set_user_claims(account, claims)
        username = f"azuread_{claims['oid']}"
        deployment.provider.set_shims(Shims(idTokenClaims={"tid": CONSUMER_TENANT}))
        marks = deployment.airflow_log_marks()
        result = deployment.login(account, label="refused-other-tenant", expect_text=INVALID_LOGIN)

        assert_refused_in_airflow(deployment, result, username)
        deployment.expect_airflow_log(marks, f"refused: claim 'tid' is '{CONSUMER_TENANT}'")
