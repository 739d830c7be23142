"""Service accounts (`serviceAccounts`): machine identities for automation, and how Airflow knows them.

Each account is an IdP client that gets access tokens with the client-credentials grant (no person,
no password). Airflow's `POST /auth/token` exchanges such a token for an Airflow API token of a user
named after the account, holding exactly the account's role: the auth-manager module the program
ships (`components/airflow_auth_manager.py`, `airflow_oidc_auth.py` in the pods) verifies it with
what this module renders (`airflow_oidc_auth.json`, no secrets). What the token looks like is the
kind's business: each kind answers `IdpModel.service_account_contract` and its resources'
`provision_service_accounts` (`components/idp/<kind>/resources.py`). Pure derivations only, no Pulumi at import.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

# Defined with the chart keys the program owns (the spec refuses them in `airflow.values`).
from components.spec_airflow import AUTH_VERSION_ANNOTATION as AUTH_VERSION_ANNOTATION
from components.spec_airflow import ROLLED_COMPONENTS as ROLLED_COMPONENTS

if TYPE_CHECKING:
    import pulumi

    from components.spec_base import Spec

AUTH_MODULE = "airflow_oidc_auth"
"""The module's name in the pods: `[core] auth_manager = airflow_oidc_auth.OidcAuthManager`."""
AUTH_MANAGER_CLASS = f"{AUTH_MODULE}.OidcAuthManager"
AUTH_MODULE_SOURCE = Path(__file__).with_name("airflow_auth_manager.py")
AUTH_MODULE_FILE = f"{AUTH_MODULE}.py"
AUTH_SETTINGS_FILE = f"{AUTH_MODULE}.json"
AUTH_MOUNT_PATH = "/opt/airflow/airflow-oidc"
"""Where the ConfigMap is mounted in every Airflow container (and put on PYTHONPATH)."""
AUTH_VOLUME = "airflow-oidc-auth"
SETTINGS_VERSION = 1


@dataclass(frozen=True)
class ServiceAccountContract:
    """How Airflow recognises a service account's access token (the kind's answer; pure)."""

    issuer: str
    """The `iss` the access tokens carry."""
    discovery_url: str
    """Where the verifier reads `jwks_uri` (the IdP's signing keys)."""
    audience: str
    """The `aud` the tokens must carry: the Airflow API as a resource at the IdP."""
    identity_claim: str
    """The claim naming the account: the client id (`client_id`, Okta `cid`, Keycloak `azp`) or an
    app-role value (Entra `roles`)."""
    scope_claim: str | None = None
    """The claim listing granted scopes (`scp`, `scope`), when a scope is required."""
    required_scope: str | None = None
    """A scope every token must carry (Okta: this stack's Airflow API scope)."""
    required_claims: dict[str, Any] = field(default_factory=dict)
    """Claims with exactly these values (Entra: the tenant `tid`)."""
    algorithms: tuple[str, ...] = ("RS256",)
    credential: str = "none"
    """What the CI job presents to the IdP: `client_secret_basic` (a secret in the stack's secret
    store), `federated` (a GitHub Actions OIDC token: no secret) or `registered by hand`."""


@dataclass
class ServiceAccountIdentities:
    """What a kind declared for the accounts: each account's identity value (the `identity_claim`
    value its tokens carry, maybe a Pulumi output), credentials for the secret store, outputs."""

    identities: dict[str, Any]
    """Account name -> identity value (a client id or an app-role value)."""
    credentials: dict[str, Any] = field(default_factory=dict)
    """Account name -> {key: value} for the stack's secret store (a Kubernetes Secret); never outputs."""
    outputs: dict[str, Any] = field(default_factory=dict)
    """Non-secret stack outputs (e.g. `serviceAccountRegistration`: what to register by hand)."""
    audience: Any = None
    """The tokens' `aud` when the IdP assigns it (Entra: the Airflow application's client id), else None:
    the contract's."""


def service_accounts_output(spec: Spec) -> list[dict[str, str]]:
    """Names and roles, for `plan`, policies and `pulumi stack output serviceAccounts`."""
    return [{"name": account.name, "role": account.role} for account in spec.serviceAccounts]


def credential_secret_name(spec: Spec, account: str) -> str:
    """The Kubernetes Secret holding one account's IdP credentials (read by whoever runs the CI job)."""
    return f"{spec.airflow.releaseName}-sa-{account}"


def auth_module_source() -> str:
    """The auth-manager module as shipped (the file itself: it reads its settings from the JSON)."""
    return AUTH_MODULE_SOURCE.read_text()


def render_auth_settings(
    spec: Spec,
    contract: ServiceAccountContract | None,
    identities: Mapping[str, str] | None,
    *,
    audience: str | None = None,
) -> str:
    """`airflow_oidc_auth.json`: verification constants and the accounts (identity -> name, role).

    No secrets: issuer, audience, claim names and client ids are public. With no service accounts
    the verifier refuses every bearer token.
    """
    settings: dict[str, Any] = {"version": SETTINGS_VERSION, "serviceAccounts": None}
    if contract is not None and spec.serviceAccounts:
        found = dict(identities or {})
        missing = [account.name for account in spec.serviceAccounts if not found.get(account.name)]
        if missing:
            raise ValueError(f"no identity value was declared for service accounts {missing}")
        accounts: dict[str, dict[str, str]] = {}
        for account in spec.serviceAccounts:
            value = str(found[account.name])
            if value in accounts:
                raise ValueError(f"service accounts {accounts[value]['name']} and {account.name} share {value!r}")
            accounts[value] = {"name": account.name, "role": account.role}
        settings["serviceAccounts"] = {
            "issuer": contract.issuer,
            "discoveryUrl": contract.discovery_url,
            "audience": audience or contract.audience,
            "identityClaim": contract.identity_claim,
            "scopeClaim": contract.scope_claim,
            "requiredScope": contract.required_scope,
            "requiredClaims": dict(contract.required_claims),
            "algorithms": list(contract.algorithms),
            "leewaySeconds": 30,
            "accounts": accounts,
        }
    return json.dumps(settings, indent=2, sort_keys=True) + "\n"


def auth_version(module_source: str, settings: str) -> str:
    """A fingerprint of the module and its settings: on every Airflow pod, so they roll when it changes."""
    return hashlib.sha256(f"{module_source}\0{settings}".encode()).hexdigest()[:16]


def auth_settings_output(
    spec: Spec, contract: ServiceAccountContract | None, identities: ServiceAccountIdentities | None
) -> pulumi.Output[str]:
    """`render_auth_settings` once every identity value is known (they may be provider outputs)."""
    import pulumi

    values = dict(identities.identities) if identities else {}
    names = list(values)
    audience = identities.audience if identities else None

    def render(resolved: list[Any]) -> str:
        found = dict(zip(names, [str(value) for value in resolved[1:]], strict=True))
        return render_auth_settings(spec, contract, found, audience=str(resolved[0]) if resolved[0] else None)

    return pulumi.Output.all(audience, *[values[name] for name in names]).apply(render)
