"""Keycloak service accounts (`serviceAccounts` with `idp.kind: keycloak`), used by `model.py` and `resources.py`.

Per account a confidential client with service accounts on and the client-credentials grant only
(no browser flow, no implicit flow, no password grant), and an audience mapper that puts the Airflow
client in its access tokens' `aud`. Keycloak names the client of a token in `azp`; people's tokens
for Airflow carry the Airflow client's own id there, so they never pass as a service account.
"""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING, Any

from components.idp.base.model import secret_generation
from components.idp.base.resources import program_secret
from components.idp.keycloak.model import keycloak_service_account_client_id as keycloak_service_account_client_id
from components.idp.keycloak.model import keycloak_service_account_contract as keycloak_service_account_contract

if TYPE_CHECKING:
    import pulumi

    from components.service_accounts import ServiceAccountIdentities
    from components.spec_base import Spec


def provision_keycloak_service_accounts(
    name: str,
    *,
    spec: Spec,
    realm_id: pulumi.Input[str],
    airflow_client_id: str,
    access_token_lifespan: str,
    today: datetime.date,
    opts: pulumi.ResourceOptions,
) -> ServiceAccountIdentities:
    """The clients, their audience mappers and their secrets (rotated, to the stack's secret store)."""
    import pulumi
    import pulumi_keycloak as keycloak

    from components.service_accounts import ServiceAccountIdentities

    guarded = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(protect=spec.is_prod))
    generation = secret_generation(today, spec.clientSecret.rotationDays)
    identities: dict[str, Any] = {}
    credentials: dict[str, Any] = {}
    for account in spec.serviceAccounts:
        client_id = keycloak_service_account_client_id(airflow_client_id, account.name)
        secret = program_secret(opts.parent, f"{name}-sa-{account.name}-secret", generation=generation)  # type: ignore[arg-type]
        client = keycloak.openid.Client(
            f"{name}-sa-{account.name}",
            realm_id=realm_id,
            client_id=client_id,
            name=f"Airflow ({spec.name}) service account {account.name}",
            description=account.description,
            enabled=True,
            access_type="CONFIDENTIAL",
            client_authenticator_type="client-secret",
            client_secret=secret,
            service_accounts_enabled=True,
            standard_flow_enabled=False,
            implicit_flow_enabled=False,
            direct_access_grants_enabled=False,
            valid_redirect_uris=[],
            web_origins=[],
            access_token_lifespan=access_token_lifespan,
            opts=pulumi.ResourceOptions.merge(
                guarded, pulumi.ResourceOptions(additional_secret_outputs=["client_secret"])
            ),
        )
        keycloak.openid.AudienceProtocolMapper(
            f"{name}-sa-{account.name}-audience",
            realm_id=realm_id,
            client_id=client.id,
            name="airflow-api-audience",
            included_client_audience=airflow_client_id,
            add_to_access_token=True,
            add_to_id_token=False,
            opts=guarded,
        )
        identities[account.name] = client_id
        credentials[account.name] = {"client-secret": secret}
    return ServiceAccountIdentities(identities=identities, credentials=credentials)
