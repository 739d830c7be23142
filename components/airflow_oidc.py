"""The composing component: one spec in, the IdP side and the Airflow side out, wired together."""

from __future__ import annotations

import datetime
from typing import Any

import pulumi
import pulumi_random as random

from components.airflow import AirflowDeployment
from components.contract import ClientContract, client_contract
from components.oidc_client import ExternalOidcClient
from components.okta import OktaApplication
from components.spec import OidcIdp, OktaIdp, Spec

ROTATION_EPOCH = datetime.date(2024, 1, 1)


def secret_generation(today: datetime.date, rotation_days: int) -> int:
    """Which rotation period `today` falls in: the client secret is replaced when this changes."""
    return (today - ROTATION_EPOCH).days // rotation_days


def access_output(spec: Spec) -> list[dict[str, str]]:
    """The access mapping as plain data, for policies and previews."""
    return [{"group": rule.group, "role": rule.role} for rule in spec.access]


class AirflowOidc(pulumi.ComponentResource):
    """Airflow 3 with single sign-on: the IdP application and the Airflow deployment, both derived
    from one `ClientContract` so the redirect URI, claims and groups can never drift apart."""

    url: pulumi.Output[str]
    """The UI's public URL."""
    client_id: pulumi.Output[str]
    """The OIDC client id."""
    issuer: pulumi.Output[str]
    """The OIDC issuer Airflow trusts."""
    redirect_uris: pulumi.Output[list[str]]
    """Redirect URIs registered at the IdP (exactly what Airflow sends)."""
    post_logout_redirect_uris: pulumi.Output[list[str]]
    access: pulumi.Output[list[dict[str, str]]]
    """IdP group -> Airflow role."""
    client_secret: pulumi.Output[str]
    """The client secret (a Pulumi secret)."""
    contract: ClientContract

    def __init__(
        self,
        name: str,
        *,
        spec: Spec,
        stack: str,
        okta_org: str | None = None,
        today: datetime.date | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("airflow-oidc:index:AirflowOidc", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        contract = client_contract(spec, stack=stack, okta_org=okta_org)
        idp = spec.idp
        outputs: dict[str, Any] = {}
        # Only a secret the program also sets at the IdP rotates: one registered by hand would lock
        # everyone out if it changed silently.
        rotates = isinstance(idp, OktaIdp)
        today = today or datetime.date.today()
        generation = secret_generation(today, spec.clientSecret.rotationDays) if rotates else 0
        if isinstance(idp, OidcIdp) and idp.clientSecret is not None:
            client_secret = pulumi.Output.secret(idp.clientSecret.get_secret_value())
        else:
            keepers = {"generation": str(generation)} if rotates else None
            password = random.RandomPassword(
                f"{name}-client-secret", length=64, special=False, keepers=keepers, opts=child
            )
            client_secret = pulumi.Output.secret(password.result)

        client_id: pulumi.Output[str]
        if isinstance(idp, OktaIdp):
            app = OktaApplication(
                f"{name}-okta", spec=spec, contract=contract, client_secret=client_secret, stack=stack, opts=child
            )
            client_id = app.client_id
        else:
            external = ExternalOidcClient(f"{name}-oidc", client_id=idp.clientId, contract=contract, opts=child)
            client_id = external.client_id
            outputs["registration"] = external.registration

        deployment = AirflowDeployment(
            f"{name}-airflow",
            spec=spec,
            contract=contract,
            client_id=client_id,
            client_secret=client_secret,
            secret_generation=generation,
            opts=child,
        )
        self.contract = contract
        self.url = pulumi.Output.from_input(spec.public_url)
        self.client_id = client_id
        self.issuer = pulumi.Output.from_input(contract.issuer)
        self.redirect_uris = pulumi.Output.from_input(list(contract.redirect_uris))
        self.post_logout_redirect_uris = pulumi.Output.from_input(list(contract.post_logout_redirect_uris))
        self.access = pulumi.Output.from_input(access_output(spec))
        self.client_secret = client_secret
        self.config_version = deployment.config_version
        self.registration = outputs.get("registration")
        self.register_outputs(
            {
                "url": self.url,
                "client_id": self.client_id,
                "issuer": self.issuer,
                "redirect_uris": self.redirect_uris,
                "post_logout_redirect_uris": self.post_logout_redirect_uris,
                "access": self.access,
                "config_version": self.config_version,
                **outputs,
            }
        )
