"""A generic OpenID provider (`idp.kind: oidc`), the Pulumi side: the client secret to register (when the
spec gives none), and what to register by hand.

The kind's resources hooks (`components/idp/base/resources.py`, `KindResources`): `lookup`, `provision`,
`provision_service_accounts`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from components.idp.base.contract import ClientContract
from components.idp.base.model import ProviderConfig
from components.idp.base.resources import IdpClient, program_secret
from components.idp.oidc.model import (
    OidcIdp,
    oidc_service_account_client_id,
    registration_instructions,
    service_account_registration,
)

if TYPE_CHECKING:
    import pulumi

    from components.idp.base.context import BuildContext
    from components.service_accounts import ServiceAccountContract, ServiceAccountIdentities
    from components.spec_base import Spec


def lookup(spec: Spec, provider: ProviderConfig) -> None:
    """Nothing to look up: the client is registered by hand."""


def provision(ctx: BuildContext) -> IdpClient:
    """The client registered by hand (`ExternalOidcClient`)."""
    idp = ctx.spec.idp
    assert isinstance(idp, OidcIdp)
    return ExternalOidcClient(ctx.name, idp=idp, contract=ctx.contract, opts=ctx.opts)


def provision_service_accounts(
    ctx: BuildContext, *, accounts: ServiceAccountContract, client: IdpClient
) -> ServiceAccountIdentities:
    """Nothing to declare: the registration is printed (`serviceAccountRegistration`), and its credential stays
    between the provider and the CI job (never in this stack's state)."""
    from components.service_accounts import ServiceAccountIdentities

    spec = ctx.spec
    identities = {account.name: oidc_service_account_client_id(spec, account.name) for account in spec.serviceAccounts}
    return ServiceAccountIdentities(
        identities=dict(identities),
        outputs={"serviceAccountRegistration": service_account_registration(spec, accounts, identities)},
    )


class ExternalOidcClient(IdpClient):
    """A client registered by hand at a standards-compliant provider. It creates nothing but the
    secret to register (when the spec gives none); its `registration` output is what to register."""

    def __init__(
        self,
        name: str,
        *,
        idp: OidcIdp,
        contract: ClientContract,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        import pulumi

        super().__init__("airflow-oidc:idp:ExternalOidcClient", name, None, opts)
        if idp.clientSecret is not None:
            client_secret = pulumi.Output.secret(idp.clientSecret.get_secret_value())
        else:
            composer = opts.parent if opts else None
            # Never rotated: a secret registered by hand must not change under the person who registered it.
            client_secret = program_secret(
                self,
                f"{name}-client-secret",
                generation=None,
                aliases=[pulumi.Alias(name="airflow-oidc-client-secret", parent=composer)] if composer else None,
            )
        self.finish(
            client_id=idp.clientId,
            client_secret=client_secret,
            secret_version="0",
            outputs={"registration": registration_instructions(contract, idp.clientId)},
        )
