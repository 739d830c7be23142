"""A generic OpenID provider (`idp.kind: oidc`), registered by hand: no IdP-side resources.

The claim values are whatever the provider puts in `groupsClaim` (group names, as registered).
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, SecretStr, field_validator

from components.contract import ClientContract, common_contract
from components.idp.base import IdpClient, IdpModel, ProviderConfig, program_secret
from components.model import require_url

if TYPE_CHECKING:
    import pulumi

    from components.spec import Spec


class OidcIdp(IdpModel):
    """Any standards-compliant OpenID provider, registered by hand: no IdP-side resources."""

    kind: Literal["oidc"]
    issuer: str = Field(description="Issuer URL; discovery is read from `<issuer>/.well-known/openid-configuration`.")
    clientId: str = Field(min_length=1, description="Client id registered at the provider.")  # noqa: N815
    clientSecret: SecretStr | None = Field(  # noqa: N815
        default=None,
        description="Client secret (set it with `pulumi config set --secret --path`); "
        "unset: the program generates one, to register at the provider (secret output `clientSecret`).",
    )
    groupsClaim: str = Field(default="groups", min_length=1, description="Claim that carries the user's groups.")  # noqa: N815
    usernameClaim: str = Field(  # noqa: N815
        default="sub", min_length=1, description="Stable claim that names the Airflow user (never the email)."
    )
    scopes: list[str] = Field(
        default_factory=lambda: ["openid", "email", "profile"],
        description="Scopes to request; must include `openid`.",
    )

    @field_validator("issuer")
    @classmethod
    def _issuer_url(cls, value: str) -> str:
        require_url(value, what="issuer")
        return value.rstrip("/")

    @field_validator("scopes")
    @classmethod
    def _scopes_have_openid(cls, value: list[str]) -> list[str]:
        if "openid" not in value:
            raise ValueError("scopes must include 'openid'")
        return value

    def fleet_names(self, spec: Spec, *, stack: str, provider: ProviderConfig) -> Mapping[str, str]:
        return {f"client id at {self.issuer}": self.clientId}

    def contract(self, spec: Spec, *, stack: str, provider: ProviderConfig) -> ClientContract:
        return ClientContract(
            issuer=self.issuer,
            scopes=tuple(self.scopes),
            role_claim=self.groupsClaim,
            role_claim_scope=None,
            username_claim=self.usernameClaim,
            **common_contract(spec, provider="oidc"),
        )

    def provision(
        self,
        name: str,
        *,
        spec: Spec,
        contract: ClientContract,
        stack: str,
        today: datetime.date,
        opts: pulumi.ResourceOptions,
    ) -> IdpClient:
        return ExternalOidcClient(name, idp=self, contract=contract, opts=opts)


def registration_instructions(contract: ClientContract, client_id: str) -> dict[str, Any]:
    """What to register at the provider by hand, exactly as Airflow will use it (pure)."""
    return {
        "clientId": client_id,
        "clientType": "confidential (client_secret_basic)",
        "grantTypes": ["authorization_code"],
        "responseTypes": ["code"],
        "pkce": "S256",
        "redirectUris": list(contract.redirect_uris),
        "postLogoutRedirectUris": list(contract.post_logout_redirect_uris),
        "scopes": list(contract.scopes),
        "groupsClaim": contract.role_claim,
        "groupsClaimMustContain": list(contract.claim_values),
        "usernameClaim": contract.username_claim,
        "issuer": contract.issuer,
    }


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
