"""The composing component: one spec in, the IdP side and the Airflow side out, wired together."""

from __future__ import annotations

import datetime
import os
from collections.abc import Mapping
from typing import Any

import pulumi

from components.access import AccessModel
from components.airflow import AirflowDeployment
from components.contract import ClientContract, client_contract
from components.idp import kind_resources
from components.idp.base.context import BuildContext
from components.idp.base.resources import explicit_provider
from components.service_accounts import service_accounts_output
from components.spec import Spec

TODAY_ENV = "AIRFLOW_OIDC_TODAY"
"""The program's clock, when set (YYYY-MM-DD): which rotation period a preview or up is in."""


def program_today() -> datetime.date:
    """Today, or the date in AIRFLOW_OIDC_TODAY: `AIRFLOW_OIDC_TODAY=2027-01-01 pulumi preview` shows what the
    rotation period of that day replaces (the engine tier rehearses a rotation with it)."""
    text = os.environ.get(TODAY_ENV)
    if not text:
        return datetime.date.today()
    try:
        return datetime.date.fromisoformat(text)
    except ValueError:
        raise pulumi.RunError(f"{TODAY_ENV}={text!r} is not a date (YYYY-MM-DD)") from None


def access_output(spec: Spec) -> list[dict[str, str]]:
    """The access mapping as plain data, for policies and previews."""
    return [{"group": rule.group, "role": rule.role} for rule in spec.access]


class AirflowOidc(pulumi.ComponentResource):
    """Airflow 3 with single sign-on: the IdP side (the spec's kind, `components/idp/`) and the Airflow
    deployment, both derived from one `ClientContract` so the redirect URI, claims and role mapping can
    never drift apart."""

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
    idp_outputs: dict[str, pulumi.Output[Any]]
    """The kind's own outputs (e.g. `registration`: what to register by hand)."""
    access_model: pulumi.Output[dict[str, Any]]
    """The effective-access model (components/access.py), non-secret: who may sign in and as what."""
    contract: ClientContract
    model: AccessModel

    def __init__(
        self,
        name: str,
        *,
        spec: Spec,
        stack: str,
        provider: Mapping[str, str] | None = None,
        today: datetime.date | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("airflow-oidc:index:AirflowOidc", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        contract = client_contract(spec, stack=stack, provider=provider)
        model = spec.idp.access_model(spec, stack=stack, provider=provider or {})
        # One date for the whole run: the web client's and the service accounts' rotation periods agree.
        today = today or program_today()
        # The kind's resources (and lookups) go through a provider bound to what the spec says (the Keycloak
        # server, the Entra tenant, the Okta org), never the default provider, which reads stack config alone.
        idp_provider = explicit_provider(spec, provider or {})
        ctx = BuildContext(
            name=f"{name}-{contract.provider}",
            spec=spec,
            contract=contract,
            stack=stack,
            provider=dict(provider or {}),
            today=today,
            opts=pulumi.ResourceOptions(parent=self, providers=[idp_provider] if idp_provider else None),
        )
        resources = kind_resources(spec.idp)
        client = resources.provision(ctx)
        accounts = identities = None
        if spec.serviceAccounts:
            # Machine identities at the IdP (children of the kind's component) and how Airflow knows them.
            accounts = spec.idp.service_account_contract(spec, contract, stack=stack, provider=provider or {})
            identities = resources.provision_service_accounts(
                ctx.under(pulumi.ResourceOptions(parent=client)), accounts=accounts, client=client
            )
        deployment = AirflowDeployment(
            f"{name}-airflow",
            spec=spec,
            contract=contract,
            client_id=client.client_id,
            client_secret=client.client_secret,
            secret_version=client.secret_version,
            api_server_annotations=client.api_server_annotations,
            provider=provider,
            service_accounts=accounts,
            service_account_identities=identities,
            access_model=model,
            opts=child,
        )
        self.contract = contract
        self.model = model
        self.access_model = pulumi.Output.from_input(model.to_json())
        self.url = pulumi.Output.from_input(spec.public_url)
        self.client_id = client.client_id
        self.issuer = pulumi.Output.from_input(contract.issuer)
        self.redirect_uris = pulumi.Output.from_input(list(contract.redirect_uris))
        self.post_logout_redirect_uris = pulumi.Output.from_input(list(contract.post_logout_redirect_uris))
        self.access = pulumi.Output.from_input(access_output(spec))
        self.client_secret = client.client_secret
        self.config_version = deployment.config_version
        self.idp_outputs = dict(client.outputs)
        if spec.serviceAccounts:
            # Names and roles (reviewers and `plan` read them); the kind's registration, never a credential.
            self.idp_outputs["serviceAccounts"] = pulumi.Output.from_input(service_accounts_output(spec))
            self.idp_outputs.update(identities.outputs if identities else {})
        self.register_outputs(
            {
                "url": self.url,
                "client_id": self.client_id,
                "issuer": self.issuer,
                "redirect_uris": self.redirect_uris,
                "post_logout_redirect_uris": self.post_logout_redirect_uris,
                "access": self.access,
                "access_model": self.access_model,
                "config_version": self.config_version,
                **self.idp_outputs,
            }
        )
