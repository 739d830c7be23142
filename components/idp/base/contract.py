"""The OIDC client contract: what the IdP side registers and the Airflow side uses, from one spec.

The contract's shape and the fields every kind derives alike; `components/contract.py` derives a spec's
contract (its kind's `IdpModel.contract`).

Both sides are derived from the `ClientContract` this module computes, which is what keeps them from
drifting: the redirect URI the IdP accepts is the one Airflow sends, the claim the IdP emits is the
claim Airflow reads, the claim values the IdP issues are the values Airflow maps to roles. What the
values are is the kind's business (group names for Okta, Keycloak and `oidc`; app-role values for
Entra ID): each kind builds its contract in `components/idp/<kind>/model.py`. Pure functions only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from components.spec_base import Spec

# Airflow 3 mounts the FAB app under /auth (Airflow 2 used /oauth-authorized/... at the root).
CALLBACK_PATH = "/auth/oauth-authorized/{provider}"
LOGIN_PATH = "/auth/login/"

# Environment variables the rendered webserver_config.py reads (set by the chart's apiServer.env).
CLIENT_ID_ENV = "AIRFLOW_OIDC_CLIENT_ID"
CLIENT_SECRET_ENV = "AIRFLOW_OIDC_CLIENT_SECRET"

ROLE_SOURCES = ("token", "cloud-identity")
"""Where the role claim values come from: the verified ID token (or userinfo), or Google's Cloud
Identity Groups API asked at login (Google ID tokens carry no groups)."""


@dataclass(frozen=True)
class ClientContract:
    """Everything both sides of one OIDC client must agree on."""

    provider: str
    """FAB provider name (the kind): in the callback path, the login button id and the username prefix."""
    issuer: str
    """Issuer URL; discovery at `<issuer>/.well-known/openid-configuration`."""
    redirect_uris: tuple[str, ...]
    post_logout_redirect_uris: tuple[str, ...]
    scopes: tuple[str, ...]
    role_claim: str
    """Claim whose values map to roles (`groups`; Entra: `roles`), in the ID token or at userinfo."""
    role_claim_scope: str | None
    """Scope that makes the IdP emit `role_claim` (None: the IdP always emits it)."""
    username_claim: str
    """Stable claim naming the Airflow user: survives email changes and IdP app replacement."""
    role_by_claim_value: dict[str, str]
    """Claim value -> Airflow role (group names for most kinds, app-role values for Entra)."""
    default_role: str | None
    default_role_claim_values: tuple[str, ...]
    """Claim values whose holders (matching no mapped value) get `default_role`."""
    default_role_everyone: bool
    """Every signed-in user matching no mapped value gets `default_role`."""
    required_claims: dict[str, Any] = field(default_factory=dict)
    """Claims the verified ID token must carry with exactly these values (Entra: the tenant `tid`)."""
    role_source: str = "token"
    """One of `ROLE_SOURCES`: `token` reads `role_claim` from the ID token (or userinfo);
    `cloud-identity` asks the Cloud Identity Groups API for the user's groups (by `role_lookup`)."""
    role_lookup: dict[str, Any] = field(default_factory=dict)
    """What a `role_source` other than `token` needs (API URL, the env var overriding it, member claim)."""

    @property
    def secure_cookies(self) -> bool:
        """Airflow's cookies are `Secure` when the UI is served over https (every host but loopback http)."""
        return all(uri.startswith("https://") for uri in self.redirect_uris)

    @property
    def claim_values(self) -> tuple[str, ...]:
        """The values the IdP must be able to put in the claim: mapped ones, then default-role ones."""
        return tuple(self.role_by_claim_value) + tuple(
            value for value in self.default_role_claim_values if value not in self.role_by_claim_value
        )


def common_contract(spec: Spec, *, provider: str) -> dict[str, Any]:
    """The contract fields every kind derives the same way (callback URIs, the group -> role mapping)."""
    return {
        "provider": provider,
        "redirect_uris": (spec.public_url + CALLBACK_PATH.format(provider=provider),),
        "post_logout_redirect_uris": (spec.public_url + LOGIN_PATH,),
        "role_by_claim_value": {rule.group: rule.role for rule in spec.access},
        "default_role": spec.defaultRole,
        "default_role_claim_values": tuple(spec.signIn.extraGroups),
        "default_role_everyone": spec.signIn.everyone,
    }


def api_server_service_account(spec: Spec) -> str:
    """The Kubernetes service account the chart's api-server runs as (the chart's default name,
    set explicitly so a Workload Identity binding can name it)."""
    return f"{spec.airflow.releaseName}-api-server"


def slug(value: str) -> str:
    """Lower-case letters, digits and underscores: safe in scope, claim and resource names."""
    return re.sub(r"[^a-z0-9]+", "_", value.lower()).strip("_")
