"""A generic OpenID provider (`idp.kind: oidc`), registered by hand, the pure side (`resources.py`: the secret).

The claim values are whatever the provider puts in `groupsClaim` (group names, as registered).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field, SecretStr, field_validator

from components.idp.base.contract import ClientContract, common_contract
from components.idp.base.model import IdpModel, ProviderConfig
from components.model import require_url

if TYPE_CHECKING:
    from components.access import ServiceAccountGrant
    from components.service_accounts import ServiceAccountContract
    from components.spec_base import ServiceAccount, Spec


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

    serviceAccountAudience: str | None = Field(  # noqa: N815
        default=None,
        description="`aud` of the service accounts' access tokens (the Airflow API as a resource, RFC 8707 "
        "`resource`); default the public URL (`https://<hostname>`).",
    )
    serviceAccountClaim: str = Field(  # noqa: N815
        default="client_id",
        min_length=1,
        description="Access-token claim naming the service account's client (RFC 9068: `client_id`; "
        "some providers: `azp` or `cid`).",
    )

    SERVICE_ACCOUNT_KEYS: ClassVar[frozenset[str]] = frozenset({"clientId"})

    @field_validator("issuer")
    @classmethod
    def _issuer_url(cls, value: str) -> str:
        require_url(value, what="issuer")
        # Kept exactly as given: the ID token's `iss` and discovery's `issuer` must equal it byte for
        # byte (some providers' issuers end in `/`); only the discovery URL drops the slash.
        return value

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

    # --- service accounts: registered by hand, like the web client ----------------------------

    def service_account_grant(
        self, spec: Spec, account: ServiceAccount, *, key: str, stack: str, provider: ProviderConfig
    ) -> ServiceAccountGrant:
        from components.access import ServiceAccountGrant

        return ServiceAccountGrant(
            name=account.name,
            role=account.role,
            subject=oidc_service_account_client_id(spec, account.name),
            trust=f"client credentials of the client registered by hand at {self.issuer}; its tokens name it "
            f"in `{self.serviceAccountClaim}`",
            key=key,
        )

    def service_accounts_refusal(self, spec: Spec) -> str | None:
        return None

    def service_account_contract(
        self, spec: Spec, contract: ClientContract, *, stack: str, provider: ProviderConfig
    ) -> ServiceAccountContract:
        from components.service_accounts import ServiceAccountContract

        return ServiceAccountContract(
            issuer=self.issuer,
            discovery_url=self.issuer.rstrip("/") + "/.well-known/openid-configuration",
            audience=self.serviceAccountAudience or spec.public_url,
            identity_claim=self.serviceAccountClaim,
            credential="registered by hand",
        )


def oidc_service_account_client_id(spec: Spec, account: str) -> str:
    """The client id of one service account: `clientId` from the spec, else `airflow-<team-env>-<name>`."""
    for entry in spec.serviceAccounts:
        if entry.name == account and entry.clientId:
            return entry.clientId
    return f"airflow-{spec.name}-{account}"


def service_account_registration(
    spec: Spec, accounts: ServiceAccountContract, client_ids: dict[str, str]
) -> list[dict[str, Any]]:
    """What to register at the provider per service account, exactly as Airflow will verify it (pure)."""
    return [
        {
            "name": account.name,
            "role": account.role,
            "clientId": client_ids[account.name],
            "clientType": "confidential, no redirect URIs, no user: a machine client",
            "grantTypes": ["client_credentials"],
            "tokenEndpointAuthMethod": "private_key_jwt (the CI job holds the key) or client_secret_basic",
            "resource": accounts.audience,
            "accessToken": {
                "format": "JWT (RFC 9068), signed with the keys at the issuer's jwks_uri",
                "iss": accounts.issuer,
                "aud": accounts.audience,
                accounts.identity_claim: client_ids[account.name],
            },
            "description": account.description or "",
        }
        for account in spec.serviceAccounts
    ]


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
