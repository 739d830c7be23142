"""Service accounts for Entra ID and Keycloak, under the mock engine: the machine identity, its grant,
where its credential goes (or that there is none: GitHub federation), and what Airflow verifies."""

from __future__ import annotations

import datetime
import json
from typing import Any

import pytest

from components.idp.azuread import period_start, secret_slots
from components.idp.azuread.service_accounts import service_account_app_role_id
from components.idp.base import credential_end_date, secret_generation
from tests.mock_engine import Registration, Run, fake_secret, plain_occurrences
from tests.test_azuread_mocks import DAY, frozen_today
from tests.test_chart_schema import errors, helm_merge
from tests.test_service_accounts import run_with, settings_of, values_of

ENTRA_APP = "azuread:index/application:Application"
ENTRA_PRINCIPAL = "azuread:index/servicePrincipal:ServicePrincipal"
ENTRA_ASSIGNMENT = "azuread:index/appRoleAssignment:AppRoleAssignment"
ENTRA_FEDERATED = "azuread:index/applicationFederatedIdentityCredential:ApplicationFederatedIdentityCredential"
ENTRA_PASSWORD = "azuread:index/applicationPassword:ApplicationPassword"
KEYCLOAK_CLIENT = "keycloak:openid/client:Client"
KEYCLOAK_AUDIENCE = "keycloak:openid/audienceProtocolMapper:AudienceProtocolMapper"
SECRET = "kubernetes:core/v1:Secret"
TENANT = "7d1b2c3a-0000-4000-8000-1234567890ab"
ENTRA_ACCOUNTS = [
    {"name": "deploy", "role": "Op", "githubRepository": "acme/risk-pipelines", "githubEnvironment": "production"},
    {"name": "nightly", "role": "User", "githubRepository": "acme/risk-jobs"},
    {"name": "reports", "role": "Viewer"},
]


@pytest.fixture(scope="module")
def entra() -> Run:
    """stacks/Pulumi.risk-prod.yaml (Entra ID, prod) with three service accounts."""
    return run_with("risk-prod", serviceAccounts=ENTRA_ACCOUNTS)


@pytest.fixture(scope="module")
def keycloak() -> Run:
    """stacks/Pulumi.local.yaml (Keycloak) with two service accounts."""
    return run_with("local", serviceAccounts=[{"name": "ci", "role": "Op"}, {"name": "audit", "role": "Viewer"}])


# --- Entra ID ---------------------------------------------------------------------------------


def test_entra_airflow_app_gets_one_application_only_app_role_per_account(entra: Run) -> None:
    airflow_app = entra.named("airflow-oidc-azuread-app").inputs
    roles = {role["value"]: role for role in airflow_app["appRoles"]}
    for account in ENTRA_ACCOUNTS:
        role = roles[f"Airflow.ServiceAccount.{account['name']}"]
        assert role["allowedMemberTypes"] == ["Application"]  # no person can be assigned it
        assert role["id"] == service_account_app_role_id("risk-prod", account["name"])
    # People's roles stay User-only; the access tokens are v2 (the issuer and audience Airflow checks).
    assert roles["Airflow.Admin"]["allowedMemberTypes"] == ["User"]
    assert airflow_app["api"]["requestedAccessTokenVersion"] == 2


def test_entra_app_registration_per_account_with_the_application_permission_granted(entra: Run) -> None:
    airflow_client_id = entra.stack_outputs["clientId"]
    airflow_principal = entra.named("airflow-oidc-azuread-service-principal")
    for account in ENTRA_ACCOUNTS:
        app = entra.named(f"airflow-oidc-azuread-sa-{account['name']}")
        assert app.inputs["displayName"] == f"Airflow (risk-prod) service account {account['name']}"
        assert app.inputs["signInAudience"] == "AzureADMyOrg"
        assert "web" not in app.inputs and "appRoles" not in app.inputs
        role_id = service_account_app_role_id("risk-prod", account["name"])
        assert app.inputs["requiredResourceAccesses"] == [
            {"resourceAppId": airflow_client_id, "resourceAccesses": [{"id": role_id, "type": "Role"}]}
        ]
        assert app.protect
        principal = entra.named(f"airflow-oidc-azuread-sa-{account['name']}-principal")
        grant = entra.named(f"airflow-oidc-azuread-sa-{account['name']}-grant").inputs
        assert grant["appRoleId"] == role_id
        assert grant["principalObjectId"] == entra_output(entra, principal.name, "objectId")
        assert grant["resourceObjectId"] == entra_output(entra, airflow_principal.name, "objectId")


def entra_output(run: Run, name: str, key: str) -> Any:
    from components.idp.azuread import AzureadIdp

    resource = run.named(name)
    computed = AzureadIdp.mock_outputs(resource.type, name, resource.inputs)
    assert computed is not None
    return computed[key]


def test_entra_github_accounts_federate_and_hold_no_secret(entra: Run) -> None:
    federated = {credential.name: credential.inputs for credential in entra.of_type(ENTRA_FEDERATED)}
    assert sorted(federated) == ["airflow-oidc-azuread-sa-deploy-github", "airflow-oidc-azuread-sa-nightly-github"]
    deploy = federated["airflow-oidc-azuread-sa-deploy-github"]
    assert deploy["issuer"] == "https://token.actions.githubusercontent.com"
    assert deploy["audiences"] == ["api://AzureADTokenExchange"]
    assert deploy["subject"] == "repo:acme/risk-pipelines:environment:production"
    assert federated["airflow-oidc-azuread-sa-nightly-github"]["subject"] == "repo:acme/risk-jobs:ref:refs/heads/main"
    passwords = [p.name for p in entra.of_type(ENTRA_PASSWORD) if "-sa-" in p.name]
    assert passwords == ["airflow-oidc-azuread-sa-reports-secret"]
    stored = sorted(
        s.inputs["metadata"]["name"] for s in entra.of_type(SECRET) if "-sa-" in s.inputs["metadata"]["name"]
    )
    assert stored == ["airflow-sa-reports"]


def test_entra_settings_verify_tenant_audience_and_app_role(entra: Run) -> None:
    settings = settings_of(entra)["serviceAccounts"]
    assert settings["issuer"] == f"https://login.microsoftonline.com/{TENANT}/v2.0"
    assert settings["audience"] == entra.stack_outputs["clientId"]
    assert settings["identityClaim"] == "roles"
    assert settings["requiredClaims"] == {"tid": TENANT}
    assert settings["accounts"] == {
        f"Airflow.ServiceAccount.{a['name']}": {"name": a["name"], "role": a["role"]} for a in ENTRA_ACCOUNTS
    }
    assert set(entra.stack_outputs["serviceAccountClientIds"]) == {"deploy", "nightly", "reports"}


def test_entra_password_value_reaches_the_secret_store_only(entra: Run) -> None:
    from components.idp.azuread import AzureadIdp

    password = entra.named("airflow-oidc-azuread-sa-reports-secret")
    computed = AzureadIdp.mock_outputs(ENTRA_PASSWORD, password.name, password.inputs)
    assert computed is not None
    value = str(computed["value"])
    assert entra.named("airflow-oidc-airflow-secret-sa-reports").inputs["stringData"] == {"client-secret": value}
    for resource in entra.resources:
        assert plain_occurrences(resource.raw_inputs, value) == [], resource.name
    for outputs in entra.outputs.values():
        assert plain_occurrences(outputs, value) == []


def entra_password_on(day: datetime.date, rotation_days: int) -> Registration:
    """The service account `reports`'s password as declared on `day` with this `clientSecret.rotationDays`
    (environment `staging`: prod's defaults do not let a team stack choose its rotation)."""
    with frozen_today(day):
        run = run_with(
            "risk-prod",
            environment="staging",
            serviceAccounts=ENTRA_ACCOUNTS,
            clientSecret={"store": "kubernetes", "rotationDays": rotation_days},
        )
    return run.named("airflow-oidc-azuread-sa-reports-secret")


@pytest.mark.parametrize("rotation_days", [1, 30, 90, 365])
def test_entra_service_account_password_ends_beyond_the_next_rotation_and_moves_only_with_the_period(
    rotation_days: int,
) -> None:
    """Program-made passwords carry an end date past the next rotation (Graph's default is two years,
    which a long rotationDays outlives), derived from the period: the same all period long (no
    replacement on every run, as an end date from now() would cause)."""
    start = period_start(secret_generation(DAY, rotation_days), rotation_days)
    first, same_period = (
        entra_password_on(start, rotation_days),
        entra_password_on(start + datetime.timedelta(days=rotation_days - 1), rotation_days),
    )
    next_period = entra_password_on(start + datetime.timedelta(days=rotation_days), rotation_days)
    assert first.raw_inputs == same_period.raw_inputs
    generation = secret_generation(start, rotation_days)
    end = datetime.date.fromisoformat(first.inputs["endDate"][:10])
    # Replaced when the next period begins; still valid through the whole period after that.
    assert end > period_start(generation + 1, rotation_days)
    assert end >= period_start(generation + 3, rotation_days)
    assert first.inputs["endDate"] == credential_end_date(generation, rotation_days)
    assert next_period.inputs["endDate"] == credential_end_date(generation + 1, rotation_days)
    assert next_period.inputs["rotateWhenChanged"] == {"period": str(generation + 1)}


@pytest.mark.parametrize("rotation_days", [1, 30, 90, 365, 3650])
def test_every_program_made_entra_password_outlives_the_next_rotation(rotation_days: int) -> None:
    """Pure, across four periods: the web client's two slots and a service account's password."""
    for offset in range(0, 4 * rotation_days, max(1, rotation_days // 3)):
        day = DAY + datetime.timedelta(days=offset)
        generation = secret_generation(day, rotation_days)
        next_rotation = period_start(generation + 1, rotation_days)
        slots, _ = secret_slots(day, rotation_days)
        for end_date in [slot.end_date for slot in slots] + [credential_end_date(generation, rotation_days)]:
            assert datetime.date.fromisoformat(end_date[:10]) > next_rotation, (rotation_days, day, end_date)


# --- Keycloak ---------------------------------------------------------------------------------


def test_keycloak_confidential_client_per_account_with_client_credentials_only(keycloak: Run) -> None:
    clients = {client.name: client.inputs for client in keycloak.of_type(KEYCLOAK_CLIENT)}
    for account in ("ci", "audit"):
        client = clients[f"airflow-oidc-keycloak-sa-{account}"]
        assert client["clientId"] == f"airflow-local-{account}"
        assert client["accessType"] == "CONFIDENTIAL"
        assert client["serviceAccountsEnabled"] is True
        assert client["standardFlowEnabled"] is False
        assert client["implicitFlowEnabled"] is False
        assert client["directAccessGrantsEnabled"] is False
        assert client["validRedirectUris"] == []
        assert client["clientSecret"] == fake_secret(f"airflow-oidc-keycloak-sa-{account}-secret")
    web = clients["airflow-oidc-keycloak-client"]
    mappers = {m.name: m.inputs for m in keycloak.of_type(KEYCLOAK_AUDIENCE)}
    for account in ("ci", "audit"):
        mapper = mappers[f"airflow-oidc-keycloak-sa-{account}-audience"]
        assert mapper["includedClientAudience"] == web["clientId"]
        assert (mapper["addToAccessToken"], mapper["addToIdToken"]) == (True, False)
    settings = settings_of(keycloak)["serviceAccounts"]
    assert settings["identityClaim"] == "azp"
    assert settings["audience"] == web["clientId"]
    assert settings["issuer"] == "http://127.0.0.1:8180/realms/airflow-local"
    assert settings["accounts"] == {
        "airflow-local-ci": {"name": "ci", "role": "Op"},
        "airflow-local-audit": {"name": "audit", "role": "Viewer"},
    }


def test_keycloak_secrets_go_to_the_secret_store_only(keycloak: Run) -> None:
    for account in ("ci", "audit"):
        value = fake_secret(f"airflow-oidc-keycloak-sa-{account}-secret")
        stored = keycloak.named(f"airflow-oidc-airflow-secret-sa-{account}")
        assert stored.inputs["stringData"] == {"client-secret": value}
        holders = {r.type for r in keycloak.resources if value in json.dumps(r.inputs)}
        assert holders == {SECRET, KEYCLOAK_CLIENT}
        for resource in keycloak.resources:
            assert plain_occurrences(resource.raw_inputs, value) == [], resource.name
        for outputs in keycloak.outputs.values():
            assert plain_occurrences(outputs, value) == []


def test_values_validate_against_the_chart_schema(
    entra: Run, keycloak: Run, chart_schema: dict[str, Any], chart_defaults: dict[str, Any]
) -> None:
    for run in (entra, keycloak):
        assert errors(chart_schema, helm_merge(chart_defaults, values_of(run))) == []
