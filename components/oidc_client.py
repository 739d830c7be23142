"""A generic OpenID provider (`idp.kind: oidc`), registered by hand: no IdP-side resources."""

from __future__ import annotations

from typing import Any

import pulumi

from components.contract import ClientContract


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
        "groupsClaim": contract.groups_claim,
        "groupsClaimMustContain": list(contract.claimed_groups),
        "usernameClaim": contract.username_claim,
        "issuer": contract.issuer,
    }


class ExternalOidcClient(pulumi.ComponentResource):
    """A client registered by hand at a standards-compliant provider. It creates nothing; its
    outputs are the registration to make, so the README and previews never parse Python."""

    client_id: pulumi.Output[str]
    """The client id, as registered."""
    registration: pulumi.Output[dict[str, Any]]
    """What to register at the provider."""

    def __init__(
        self,
        name: str,
        *,
        client_id: str,
        contract: ClientContract,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("airflow-oidc:idp:ExternalOidcClient", name, None, opts)
        self.client_id = pulumi.Output.from_input(client_id)
        self.registration = pulumi.Output.from_input(registration_instructions(contract, client_id))
        self.register_outputs({"client_id": self.client_id, "registration": self.registration})
