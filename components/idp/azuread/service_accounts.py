"""Entra ID service accounts (`serviceAccounts` with `idp.kind: azuread`), used by `model.py` and `resources.py`.

Per account: an app registration of its own (this tenant only) holding an **application permission**
on the Airflow application: an app role `Airflow.ServiceAccount.<name>` (member type Application)
granted by an app-role assignment, which is the tenant admin's consent. Its client-credentials token
for `<Airflow client id>/.default` is a v2 access token with `aud` the Airflow application's client
id, `roles` holding that one value and `tid` the tenant: Airflow knows the account by its app role.

With `githubRepository` the credential is a **federated identity credential** for GitHub Actions OIDC
(issuer `https://token.actions.githubusercontent.com`, subject the repository's environment or `main`
branch): the job presents its own GitHub token, and no secret exists anywhere. Without it, a client
secret (rotated every `clientSecret.rotationDays`) goes to the stack's secret store.
"""

from __future__ import annotations

import datetime
import re
import uuid
from typing import TYPE_CHECKING, Any

from components.idp.base.model import credential_end_date, secret_generation

if TYPE_CHECKING:
    import pulumi

    from components.service_accounts import ServiceAccountContract, ServiceAccountIdentities
    from components.spec_base import ServiceAccount, Spec

GITHUB_ACTIONS_ISSUER = "https://token.actions.githubusercontent.com"
FEDERATION_AUDIENCE = "api://AzureADTokenExchange"
"""The audience GitHub's OIDC token must carry for Entra's token exchange (Microsoft's documented value)."""
SERVICE_ACCOUNT_ROLE_PREFIX = "Airflow.ServiceAccount."


def service_account_app_role_value(account: str) -> str:
    """The app role naming one account in the `roles` claim (never a people's role value: those are
    `Airflow.<Role>`, and this one may be held by applications only)."""
    return SERVICE_ACCOUNT_ROLE_PREFIX + account


def service_account_app_role_id(stack: str, account: str) -> str:
    """A stable app role id (derived, so it never changes under the assignment)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"airflow-oidc:{stack}:service-account:{account}"))


def service_account_app_roles(spec: Spec, stack: str) -> list[dict[str, Any]]:
    """The Airflow application's app roles for the accounts (as `ApplicationAppRoleArgs` keyword arguments)."""
    return [
        {
            "id": service_account_app_role_id(stack, account.name),
            "value": service_account_app_role_value(account.name),
            "display_name": f"Airflow service account {account.name}",
            "description": account.description
            or f"Airflow ({spec.name}): the service account {account.name} ({account.role})",
            "allowed_member_types": ["Application"],
            "enabled": True,
        }
        for account in spec.serviceAccounts
    ]


def github_subject(account: ServiceAccount) -> str:
    """The `sub` of the GitHub Actions OIDC tokens this account accepts (GitHub's documented formats)."""
    if account.githubEnvironment:
        return f"repo:{account.githubRepository}:environment:{account.githubEnvironment}"
    return f"repo:{account.githubRepository}:ref:refs/heads/main"


def entra_service_account_contract(tenant: str) -> ServiceAccountContract:
    """v2 access tokens of this tenant; `aud` is set at provisioning (the Airflow application's client id)."""
    from components.service_accounts import ServiceAccountContract

    issuer = f"https://login.microsoftonline.com/{tenant}/v2.0"
    return ServiceAccountContract(
        issuer=issuer,
        discovery_url=issuer + "/.well-known/openid-configuration",
        audience="the Airflow application's client id",
        identity_claim="roles",
        required_claims={"tid": tenant},
        credential="federated (githubRepository) or client_secret_basic",
    )


def provision_entra_service_accounts(
    name: str,
    *,
    spec: Spec,
    airflow_client_id: pulumi.Input[str],
    airflow_service_principal_object_id: pulumi.Input[str],
    stack: str,
    today: datetime.date,
    opts: pulumi.ResourceOptions,
) -> ServiceAccountIdentities:
    """Per account its app registration, service principal, the app-role assignment on the Airflow
    application's service principal, and a federated credential (GitHub) or a rotated password."""
    import pulumi
    import pulumi_azuread as azuread

    from components.service_accounts import ServiceAccountIdentities

    guarded = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(protect=spec.is_prod))
    generation = secret_generation(today, spec.clientSecret.rotationDays)
    identities: dict[str, Any] = {}
    credentials: dict[str, Any] = {}
    client_ids: dict[str, Any] = {}
    for account in spec.serviceAccounts:
        role_id = service_account_app_role_id(stack, account.name)
        app = azuread.Application(
            f"{name}-sa-{account.name}",
            display_name=f"Airflow ({spec.name}) service account {account.name}",
            description=account.description,
            sign_in_audience="AzureADMyOrg",
            # What it may call: the Airflow application, as this one application permission.
            required_resource_accesses=[
                azuread.ApplicationRequiredResourceAccessArgs(
                    resource_app_id=airflow_client_id,
                    resource_accesses=[
                        azuread.ApplicationRequiredResourceAccessResourceAccessArgs(id=role_id, type="Role")
                    ],
                )
            ],
            opts=guarded,
        )
        principal = azuread.ServicePrincipal(
            f"{name}-sa-{account.name}-principal", client_id=app.client_id, opts=guarded
        )
        # The grant itself (admin consent of the application permission).
        azuread.AppRoleAssignment(
            f"{name}-sa-{account.name}-grant",
            app_role_id=role_id,
            principal_object_id=principal.object_id,
            resource_object_id=airflow_service_principal_object_id,
            opts=opts,
        )
        if account.githubRepository:
            azuread.ApplicationFederatedIdentityCredential(
                f"{name}-sa-{account.name}-github",
                application_id=app.id,
                # Entra allows letters, digits, dashes and underscores here (120 at most).
                display_name=re.sub(r"[^A-Za-z0-9_-]", "-", f"github-{account.githubRepository}")[:120],
                description=f"GitHub Actions of {account.githubRepository} sign in as {account.name}",
                audiences=[FEDERATION_AUDIENCE],
                issuer=GITHUB_ACTIONS_ISSUER,
                subject=github_subject(account),
                opts=opts,
            )
        else:
            password = azuread.ApplicationPassword(
                f"{name}-sa-{account.name}-secret",
                application_id=app.id,
                display_name=f"airflow-oidc rotation {generation}",
                # Beyond the next rotation, from the period (not now(): that would replace it every run);
                # without one Graph gives two years, which a long rotationDays outlives.
                end_date=credential_end_date(generation, spec.clientSecret.rotationDays),
                rotate_when_changed={"period": str(generation)},
                opts=opts,  # the SDK marks `value` secret
            )
            credentials[account.name] = {"client-secret": password.value}
        identities[account.name] = service_account_app_role_value(account.name)
        client_ids[account.name] = app.client_id
    return ServiceAccountIdentities(
        identities=identities,
        credentials=credentials,
        outputs={"serviceAccountClientIds": client_ids},
        audience=airflow_client_id,
    )
