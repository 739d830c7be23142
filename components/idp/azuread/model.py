"""Microsoft Entra ID (`idp.kind: azuread`), the pure side of the app registration, its app roles, their
group assignments and two rotating client secrets (the Pulumi side: `resources.py`).

The claim values are app-role values (`Airflow.<Role>`, in the `roles` claim), not group names:
Entra puts the app roles assigned to a user (directly or through a group) in the ID token. The
username is `azuread_<oid>` (`oid` is stable in the tenant; `sub` differs per app), and a token
from another tenant (`tid`) is refused by the rendered webserver_config.py.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field, field_validator

from components.idp.base.contract import ClientContract, common_contract
from components.idp.base.model import (
    ROTATION_EPOCH,
    IdpModel,
    ProviderConfig,
    ProviderConfigError,
    credential_end_date,
    secret_generation,
)
from components.model import CONFIG_KEY, GUID, at

if TYPE_CHECKING:
    from components.access import GroupGrant, ServiceAccountGrant
    from components.service_accounts import ServiceAccountContract
    from components.spec_base import ServiceAccount, Spec

GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
"""Microsoft Graph's application (client) id, the same in every tenant."""
GRAPH_SIGN_IN_SCOPES: dict[str, str] = {
    # Microsoft Graph's published delegated permission ids (oauth2PermissionScopes), the same in every tenant.
    "openid": "37f7f235-527c-4136-accd-4a02d197296e",
    "profile": "14dad69e-099b-42c9-810b-d002981feec1",
    "email": "64a6cdd6-aab1-4aaf-94b8-3cc8405e90d0",
}
"""The delegated Graph permissions sign-in needs, by name -> permission id."""
APP_ROLE_PREFIX = "Airflow."
DEFAULT_APP_ROLE = "Airflow.Default"
"""The app role of the default-role audience (signIn.extraGroups): never one of the mapped values."""
ID_TOKEN_OPTIONAL_CLAIMS = ("email", "given_name", "family_name")
SLOTS = (0, 1)
"""Two client-secret slots: one is replaced per rotation period, in turn, while the other stays valid."""

MOCK_GROUP_COUNT: dict[str, int] = {}
"""For the mock engine (tests): how many groups the mocked tenant holds under a display name
(default 1). Set a name to 2 to make its lookup ambiguous, to 0 to make it missing."""


def is_guid(value: str) -> bool:
    """Whether `value` is a GUID (an Entra object id or tenant id)."""
    return GUID.fullmatch(value) is not None


class AzureadIdp(IdpModel):
    """Microsoft Entra ID: the program registers the app, its app roles, the group assignments and
    two client secrets rotated in turn."""

    SDK: ClassVar[str | None] = "pulumi_azuread"
    PROVIDER_CONFIG: ClassVar[Mapping[str, str]] = {"azuread:tenantId": "ARM_TENANT_ID"}
    GROUPS_BOUND_BY: ClassVar[str | None] = "by display name"
    DEFAULTS_FROM_PROVIDER: ClassVar[Mapping[str, tuple[str, ...]]] = {"tenantId": ("azuread:tenantId",)}
    PROVIDER_PACKAGE: ClassVar[str | None] = "azuread"
    # "Changing this forces a new resource" in the azuread provider's schema (a service principal
    # belongs to one application). The application itself updates in place: its client id never changes.
    REPLACE_ON_CHANGE: ClassVar[Mapping[str, tuple[str, ...]]] = {
        "azuread:index/servicePrincipal:ServicePrincipal": ("clientId",),
        "azuread:index/applicationPassword:ApplicationPassword": (
            "applicationId",
            "displayName",
            "endDate",
            "endDateRelative",
            "rotateWhenChanged",
            "startDate",
        ),
        "azuread:index/appRoleAssignment:AppRoleAssignment": ("appRoleId", "principalObjectId", "resourceObjectId"),
        "azuread:index/servicePrincipalDelegatedPermissionGrant:ServicePrincipalDelegatedPermissionGrant": (
            "servicePrincipalObjectId",
            "resourceServicePrincipalObjectId",
            "userObjectId",
        ),
        "azuread:index/group:Group": ("assignableToRole", "behaviors", "mailNickname", "provisioningOptions", "types"),
    }

    kind: Literal["azuread"]
    tenantId: str | None = Field(  # noqa: N815
        default=None,
        description="Entra tenant id (a GUID): Airflow trusts its issuer and the program's azuread provider "
        "registers the app in it. Default from `azuread:tenantId` (or ARM_TENANT_ID).",
    )
    createGroups: bool = Field(  # noqa: N815
        default=True,
        description="Create the groups (security groups, not mail-enabled); false looks them up by display "
        "name, which must match exactly one group. A group given as an object id (GUID) is used as is.",
    )
    adminConsent: bool = Field(  # noqa: N815
        default=True,
        description="Grant the delegated sign-in permissions (openid, profile, email) tenant-wide, "
        "so users are not asked to consent.",
    )

    @field_validator("tenantId")
    @classmethod
    def _tenant_is_guid(cls, value: str | None) -> str | None:
        if value is not None and not is_guid(value):
            raise ValueError(
                f"{value!r} is not a tenant id: use the tenant's GUID (Entra admin center, Overview), not its domain"
            )
        return value

    # --- hooks ----------------------------------------------------------------------------------

    def check_spec(self, spec: Spec) -> None:
        if spec.tokens.accessTokenMinutes is not None:
            raise at(
                ("tokens", "accessTokenMinutes"),
                "Entra ID cannot set it from here: the azuread provider has no token-lifetime policy resource "
                "(Entra's default access-token lifetime applies); remove the key",
            )

    def check_provider(self, spec: Spec, provider: ProviderConfig) -> None:
        """The tenant must be known."""
        configured = provider.get("azuread:tenantId")
        if not self.tenantId and not configured:
            raise ProviderConfigError(
                "azuread:tenantId is not set: set it (`pulumi config set azuread:tenantId <tenant GUID>`), "
                f"or ARM_TENANT_ID, or {CONFIG_KEY}.idp.tenantId"
            )
        if not self.tenantId and configured and not is_guid(configured):
            raise ProviderConfigError(f"azuread:tenantId: {configured!r} is not a tenant id (a GUID)")
        if self.tenantId and configured and configured.lower() != self.tenantId.lower():
            # Two tenants named at once: the app registered in one, Airflow trusting the other's issuer.
            raise ProviderConfigError(
                f"{CONFIG_KEY}.idp.tenantId: {self.tenantId!r} differs from azuread:tenantId (or ARM_TENANT_ID) "
                f"{configured!r}: the provider would register the app in one tenant while Airflow trusts the other's "
                f"issuer; name one tenant: remove idp.tenantId, or set azuread:tenantId to {self.tenantId}"
            )

    def provider_settings(self, spec: Spec, provider: ProviderConfig) -> Mapping[str, Any]:
        """The provider registers the app in the tenant whose issuer Airflow trusts: `idp.tenantId`, else
        `azuread:tenantId`."""
        return {"tenant_id": self.tenant(provider)}

    def fleet_names(self, spec: Spec, *, stack: str, provider: ProviderConfig) -> Mapping[str, str]:
        tenant_id = self.tenantId or provider.get("azuread:tenantId")
        tenant = f"tenant {tenant_id}" if tenant_id else "the Entra tenant"
        names = {f"Entra app display name in {tenant}": entra_app_display_name(spec)}
        if self.createGroups:
            # Display names are not unique in Entra: two stacks creating one would make it ambiguous.
            for binding in group_bindings(spec):
                if not is_guid(binding.group):
                    names[f"Entra group {binding.group!r} created in {tenant}"] = binding.group
        return names

    # --- the access model (components/access.py) ------------------------------------------------

    ACCESS_NOTES: ClassVar[tuple[str, ...]] = (
        "Entra ID: only direct members of an assigned group get its app role (nested groups are not honoured)",
    )
    ACCESS_GRANT_TYPES: ClassVar[tuple[str, ...]] = ("azuread:index/appRoleAssignment:AppRoleAssignment",)

    def group_grant(
        self,
        spec: Spec,
        group: str,
        *,
        role: str | None,
        loc: tuple[str | int, ...],
        contract: ClientContract,
        extra: bool = False,
    ) -> GroupGrant:
        from components.access import GroupGrant, key_of

        # Members get the app role assigned to the group, never the group's name: the role claim.
        value = DEFAULT_APP_ROLE if extra else app_role_value(str(role))
        if is_guid(group):
            how = f"the group with object id {group}"
        elif self.createGroups:
            how = f"the security group {group!r} the program creates (its object id: known after apply)"
        else:
            how = f"the one group with display name {group!r} (its object id looked up before anything is declared)"
        return GroupGrant(
            group=group,
            principal=group,
            binding=f"{how}, assigned the app role {value}",
            claim_value=value,
            role=role,
            key=key_of(loc),
        )

    def service_account_grant(
        self, spec: Spec, account: ServiceAccount, *, key: str, stack: str, provider: ProviderConfig
    ) -> ServiceAccountGrant:
        from components.access import KNOWN_AFTER_APPLY, ServiceAccountGrant

        value = service_account_app_role_value(account.name)
        if account.githubRepository:
            return ServiceAccountGrant(
                name=account.name,
                role=account.role,
                subject=github_subject(account),
                trust=f"GitHub Actions OIDC tokens ({GITHUB_ACTIONS_ISSUER}) with this subject, through the "
                f"federated credential of its app registration (app role {value})",
                key=key,
            )
        return ServiceAccountGrant(
            name=account.name,
            role=account.role,
            subject=KNOWN_AFTER_APPLY,
            trust=f"the client secret of its app registration (rotated), whose client id this is (app role {value})",
            key=key,
        )

    # --- service accounts (components/idp/azuread/service_accounts.py) ---------------------------

    SERVICE_ACCOUNT_KEYS: ClassVar[frozenset[str]] = frozenset({"githubRepository", "githubEnvironment"})

    def service_accounts_refusal(self, spec: Spec) -> str | None:
        return None

    def service_account_contract(
        self, spec: Spec, contract: ClientContract, *, stack: str, provider: ProviderConfig
    ) -> ServiceAccountContract:
        return entra_service_account_contract(self.tenant(provider))

    def tenant(self, provider: ProviderConfig) -> str:
        """The tenant: `idp.tenantId`, else `azuread:tenantId`."""
        tenant = self.tenantId or provider.get("azuread:tenantId")
        if not tenant:
            raise ValueError(f"the Entra tenant is unknown: set azuread:tenantId or {CONFIG_KEY}.idp.tenantId")
        return tenant

    def contract(self, spec: Spec, *, stack: str, provider: ProviderConfig) -> ClientContract:
        tenant = self.tenant(provider)
        fields = common_contract(spec, provider="azuread")
        fields["role_by_claim_value"] = {app_role_value(role): role for role in roles_used(spec)}
        fields["default_role_claim_values"] = (DEFAULT_APP_ROLE,) if spec.signIn.extraGroups else ()
        return ClientContract(
            issuer=f"https://login.microsoftonline.com/{tenant}/v2.0",
            scopes=("openid", "email", "profile"),
            # Entra puts the assigned app roles in `roles` whatever the scopes: no scope asks for it.
            role_claim="roles",
            role_claim_scope=None,
            username_claim="oid",  # the user's object id: stable in the tenant; `sub` differs per app
            required_claims={"tid": tenant},
            **fields,
        )

    @staticmethod
    def mock_outputs(type_: str, name: str, inputs: Mapping[str, Any]) -> dict[str, Any] | None:
        from components.mock_values import fake_guid, fake_secret

        if type_ == "azuread:index/application:Application":
            return {
                "clientId": fake_guid(f"{name}:client-id"),
                "objectId": fake_guid(f"{name}:object-id"),
                "appRoleIds": {role["value"]: role["id"] for role in inputs.get("appRoles") or []},
            }
        if type_ == "azuread:index/servicePrincipal:ServicePrincipal":
            return {"objectId": fake_guid(f"{name}:object-id")}
        if type_ == "azuread:index/group:Group":
            return {"objectId": fake_guid(f"{name}:object-id")}
        if type_ == "azuread:index/applicationPassword:ApplicationPassword":
            # Entra generates the value; a new one whenever the password is replaced (new inputs).
            generated = f"{name}:{inputs.get('displayName')}"
            return {"value": fake_secret(generated), "keyId": fake_guid(f"{generated}:key-id")}
        if type_ == "azuread:index/appRoleAssignment:AppRoleAssignment":
            return {"principalType": "Group"}
        return None

    @staticmethod
    def mock_call(token: str, args: Mapping[str, Any]) -> dict[str, Any] | None:
        from components.mock_values import fake_guid

        if token == "azuread:index/getGroups:getGroups":
            prefix = str(args.get("displayNamePrefix") or "")
            count = MOCK_GROUP_COUNT.get(prefix, 1)
            groups = [mock_group(prefix, index) for index in range(count)]
            # A longer name sharing the prefix: the lookup must match display names exactly.
            groups.append(mock_group(prefix + " (archived)", 0))
            return {"groups": groups, "objectIds": [g["objectId"] for g in groups]}
        if token == "azuread:index/getServicePrincipal:getServicePrincipal":
            client_id = str(args.get("clientId") or "")
            return {"clientId": client_id, "objectId": fake_guid(f"service-principal:{client_id}")}
        return None


def mock_group(display_name: str, index: int) -> dict[str, Any]:
    """A group of the mocked tenant."""

    return {
        "displayName": display_name,
        "objectId": mock_group_id(display_name, index),
        "securityEnabled": True,
        "mailEnabled": False,
    }


def mock_group_id(display_name: str, index: int = 0) -> str:
    """The object id the mocked tenant gives its `index`-th group named `display_name`."""
    from components.mock_values import fake_guid

    return fake_guid(f"group:{display_name}#{index}")


def entra_app_display_name(spec: Spec) -> str:
    """The app registration's display name (users see it at sign-in; team stacks must not share one)."""
    return f"Airflow ({spec.name})"


def app_role_value(role: str) -> str:
    """The app-role value of an Airflow role: `Airflow.Admin`."""
    return APP_ROLE_PREFIX + role


def roles_used(spec: Spec) -> list[str]:
    """The Airflow roles `access` uses, in order of first use."""
    roles: list[str] = []
    for rule in spec.access:
        if rule.role not in roles:
            roles.append(rule.role)
    return roles


def app_role_id(stack: str, value: str) -> str:
    """A deterministic app-role id: the same stack and value give the same id on every run, so the
    app roles never churn (a changed id would drop every assignment of the role)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"airflow-oidc:{stack}:{value}"))


@dataclass(frozen=True)
class GroupBinding:
    """One group assigned to the app: where the spec names it, and the app role its members get."""

    group: str
    """The display name or object id, as the spec gives it."""
    key_path: tuple[str | int, ...]
    """Where the spec names it (from the spec's root), for errors."""
    app_role: str


def group_bindings(spec: Spec) -> list[GroupBinding]:
    """Every group the app is assigned to: the `access` groups, then `signIn.extraGroups`."""
    bindings = [
        GroupBinding(rule.group, ("access", index, "group"), app_role_value(rule.role))
        for index, rule in enumerate(spec.access)
    ]
    bindings += [
        GroupBinding(group, ("signIn", "extraGroups", index), DEFAULT_APP_ROLE)
        for index, group in enumerate(spec.signIn.extraGroups)
    ]
    return bindings


def entra_redirect_uris(contract: ClientContract) -> list[str]:
    """The app's web redirect URIs: Airflow's callback, then the post-logout URI (Entra accepts a
    `post_logout_redirect_uri` only among the registered redirect URIs)."""
    uris = list(contract.redirect_uris)
    return uris + [uri for uri in contract.post_logout_redirect_uris if uri not in uris]


def period_start(generation: int, rotation_days: int) -> datetime.date:
    """The first day of rotation period `generation` (see `secret_generation`)."""
    return ROTATION_EPOCH + datetime.timedelta(days=generation * rotation_days)


@dataclass(frozen=True)
class SecretSlot:
    """One client-secret slot as declared in one period (pure: a function of the date)."""

    slot: int
    generation: int
    """The period the slot's current password was created in (this one or the one before)."""
    end_date: str
    """RFC 3339; three periods after creation: it outlives the next rotation and the one after."""

    @property
    def display_name(self) -> str:
        return f"airflow-oidc slot {self.slot} (period {self.generation})"


def secret_slots(today: datetime.date, rotation_days: int) -> tuple[list[SecretSlot], int]:
    """Both slots in the period of `today`, and which slot is the newest (the one Airflow uses).

    Slot `g % 2` is recreated when period `g` begins; the other keeps the password of period `g - 1`,
    still valid, so pods that have not rolled yet keep signing in.
    """
    generation = secret_generation(today, rotation_days)
    slots = []
    for slot in SLOTS:
        created = generation if generation % 2 == slot else generation - 1
        slots.append(SecretSlot(slot=slot, generation=created, end_date=credential_end_date(created, rotation_days)))
    return slots, generation % 2


def entra_service_account_contract(tenant: str) -> ServiceAccountContract:
    """v2 access tokens of this tenant; `aud` is set at provisioning (the Airflow application's client id)."""
    from components.service_accounts import ServiceAccountContract

    issuer = f"https://login.microsoftonline.com/{tenant}/v2.0"
    return ServiceAccountContract(
        issuer=issuer,
        discovery_url=issuer + "/.well-known/openid-configuration",
        audience="the Airflow application's client id",
        identity_claim="roles",
        required_claims={"tid": tenant},
        credential="federated (githubRepository) or client_secret_basic",
    )


GITHUB_ACTIONS_ISSUER = "https://token.actions.githubusercontent.com"
FEDERATION_AUDIENCE = "api://AzureADTokenExchange"
"""The audience GitHub's OIDC token must carry for Entra's token exchange (Microsoft's documented value)."""
SERVICE_ACCOUNT_ROLE_PREFIX = "Airflow.ServiceAccount."


def service_account_app_role_value(account: str) -> str:
    """The app role naming one account in the `roles` claim (never a people's role value: those are
    `Airflow.<Role>`, and this one may be held by applications only)."""
    return SERVICE_ACCOUNT_ROLE_PREFIX + account


def service_account_app_role_id(stack: str, account: str) -> str:
    """A stable app role id (derived, so it never changes under the assignment)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"airflow-oidc:{stack}:service-account:{account}"))


def service_account_app_roles(spec: Spec, stack: str) -> list[dict[str, Any]]:
    """The Airflow application's app roles for the accounts (as `ApplicationAppRoleArgs` keyword arguments)."""
    return [
        {
            "id": service_account_app_role_id(stack, account.name),
            "value": service_account_app_role_value(account.name),
            "display_name": f"Airflow service account {account.name}",
            "description": account.description
            or f"Airflow ({spec.name}): the service account {account.name} ({account.role})",
            "allowed_member_types": ["Application"],
            "enabled": True,
        }
        for account in spec.serviceAccounts
    ]


def github_subject(account: ServiceAccount) -> str:
    """The `sub` of the GitHub Actions OIDC tokens this account accepts (GitHub's documented formats)."""
    if account.githubEnvironment:
        return f"repo:{account.githubRepository}:environment:{account.githubEnvironment}"
    return f"repo:{account.githubRepository}:ref:refs/heads/main"
