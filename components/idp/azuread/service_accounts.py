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
from typing import TYPE_CHECKING, Any

from components.idp.azuread.model import FEDERATION_AUDIENCE as FEDERATION_AUDIENCE
from components.idp.azuread.model import GITHUB_ACTIONS_ISSUER as GITHUB_ACTIONS_ISSUER
from components.idp.azuread.model import SERVICE_ACCOUNT_ROLE_PREFIX as SERVICE_ACCOUNT_ROLE_PREFIX
from components.idp.azuread.model import entra_service_account_contract as entra_service_account_contract
from components.idp.azuread.model import github_subject as github_subject
from components.idp.azuread.model import service_account_app_role_id as service_account_app_role_id
from components.idp.azuread.model import service_account_app_role_value as service_account_app_role_value
from components.idp.azuread.model import service_account_app_roles as service_account_app_roles
from components.idp.base.model import credential_end_date, secret_generation

if TYPE_CHECKING:
    import pulumi

    from components.service_accounts import ServiceAccountIdentities
    from components.spec_base import Spec


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
