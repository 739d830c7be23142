"""Microsoft Entra ID (`idp.kind: azuread`): the app registration, its app roles, their group
assignments and two rotating client secrets.

The claim values are app-role values (`Airflow.<Role>`, in the `roles` claim), not group names:
Entra puts the app roles assigned to a user (directly or through a group) in the ID token. The
username is `azuread_<oid>` (`oid` is stable in the tenant; `sub` differs per app), and a token
from another tenant (`tid`) is refused by the rendered webserver_config.py.
"""

from __future__ import annotations

import contextlib
import datetime
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field, PrivateAttr, field_validator

from components.idp.base import (
    ROTATION_EPOCH,
    IdpClient,
    IdpModel,
    ProviderConfig,
    ProviderConfigError,
    credential_end_date,
    explicit_provider,
    secret_generation,
)
from components.idp.base.contract import ClientContract, common_contract, slug
from components.model import CONFIG_KEY, GUID, at, key_text

if TYPE_CHECKING:
    import pulumi

    from components.access import GroupGrant, ServiceAccountGrant
    from components.idp.base.context import BuildContext
    from components.service_accounts import ServiceAccountContract, ServiceAccountIdentities
    from components.spec_base import ServiceAccount, Spec
else:
    # Pulumi resolves a component's output annotations at run time; the Airflow venv has no Pulumi.
    with contextlib.suppress(ImportError):
        import pulumi

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

    # What the lookups found (in `lookup`): the program calls lookup before it
    # declares anything, so a bad lookup declares nothing; provision reuses the answer.
    _found_groups: dict[str, str] | None = PrivateAttr(default=None)

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

    def lookup(self, spec: Spec, provider: ProviderConfig) -> None:
        """With `createGroups: false`, each group named by display name must match exactly one group in the
        tenant (plain invokes: the program has declared nothing yet)."""
        if not self.createGroups:
            # Through the provider bound to the spec's tenant, as the app will be.
            self._found_groups = lookup_groups(
                tuple(group_bindings(spec)), tenant=self.tenant(provider), provider=explicit_provider(spec, provider)
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
        from components.idp.azuread_service_accounts import (
            GITHUB_ACTIONS_ISSUER,
            github_subject,
            service_account_app_role_value,
        )

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

    # --- service accounts (components/idp/azuread_service_accounts.py) ---------------------------

    SERVICE_ACCOUNT_KEYS: ClassVar[frozenset[str]] = frozenset({"githubRepository", "githubEnvironment"})

    def service_accounts_refusal(self, spec: Spec) -> str | None:
        return None

    def service_account_contract(
        self, spec: Spec, contract: ClientContract, *, stack: str, provider: ProviderConfig
    ) -> ServiceAccountContract:
        from components.idp.azuread_service_accounts import entra_service_account_contract

        return entra_service_account_contract(self.tenant(provider))

    def provision_service_accounts(
        self, ctx: BuildContext, *, accounts: ServiceAccountContract, client: IdpClient
    ) -> ServiceAccountIdentities:
        from components.idp.azuread_service_accounts import provision_entra_service_accounts

        assert isinstance(client, EntraApplication)
        return provision_entra_service_accounts(
            ctx.name,
            spec=ctx.spec,
            airflow_client_id=client.client_id,
            airflow_service_principal_object_id=client.service_principal_object_id,
            stack=ctx.stack,
            today=ctx.today,
            opts=ctx.opts,
        )

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

    def provision(self, ctx: BuildContext) -> IdpClient:
        import pulumi

        found = self._found_groups or {}
        if not self.createGroups and self._found_groups is None:
            # Not through the program's check_provider (a caller building the component itself):
            # look up now, still before any IdP resource is declared.
            try:
                tenant = str(ctx.contract.required_claims["tid"])
                found = lookup_groups(tuple(group_bindings(ctx.spec)), tenant=tenant)
            except GroupLookupError as error:
                raise pulumi.RunError(f"{ctx.stack_file}: {error}") from None
        return EntraApplication(
            ctx.name,
            spec=ctx.spec,
            contract=ctx.contract,
            stack=ctx.stack,
            today=ctx.today,
            found_groups=found,
            opts=ctx.opts,
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


class GroupLookupError(ProviderConfigError):
    """A group named by display name matches no group or several in the tenant (names the key)."""


def lookup_groups(
    bindings: Sequence[GroupBinding], *, tenant: str, provider: pulumi.ProviderResource | None = None
) -> dict[str, str]:
    """Display name -> object id of each existing group named (GUIDs are used as is, not looked up).

    Entra display names are not unique: a name matching no group or several is refused, naming the
    key. Plain (non-Output) invokes, so this can run before anything is declared.
    """
    import pulumi
    import pulumi_azuread as azuread

    found: dict[str, str] = {}
    for binding in bindings:
        if is_guid(binding.group) or binding.group in found:
            continue
        result = azuread.get_groups(display_name_prefix=binding.group, opts=pulumi.InvokeOptions(provider=provider))
        matches = [
            group_field(group, "object_id")
            for group in result.groups or []
            if group_field(group, "display_name") == binding.group
        ]
        if len(matches) != 1:
            what = "no group" if not matches else f"{len(matches)} groups ({', '.join(sorted(matches))})"
            raise GroupLookupError(
                f"{key_text(binding.key_path)}: {binding.group!r} matches {what} in tenant {tenant}: "
                "display names are not unique in Entra ID; give the group's object id instead"
            )
        found[binding.group] = matches[0]
    return found


def group_field(group: Any, name: str) -> str:
    """A field of a `get_groups` result's group (typed by the SDK, a mapping under some engines)."""
    if isinstance(group, Mapping):
        camel = name.split("_")[0] + "".join(part.capitalize() for part in name.split("_")[1:])
        return str(group.get(name, group.get(camel, "")))
    return str(getattr(group, name))


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


class EntraApplication(IdpClient):
    """An Entra app registration for Airflow: this tenant only, exactly Airflow's redirect URI, one
    app role per Airflow role, the groups (created or found) assigned to them, assignment required,
    tenant-wide consent for sign-in, and two client secrets replaced in turn."""

    application_object_id: pulumi.Output[str]
    """The application's object id."""
    service_principal_object_id: pulumi.Output[str]
    """The service principal's (enterprise application's) object id."""

    def __init__(
        self,
        name: str,
        *,
        spec: Spec,
        contract: ClientContract,
        stack: str,
        today: datetime.date,
        found_groups: Mapping[str, str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        import pulumi
        import pulumi_azuread as azuread

        from components.idp.azuread_service_accounts import service_account_app_roles

        super().__init__("airflow-oidc:idp:EntraApplication", name, None, opts)
        assert isinstance(spec.idp, AzureadIdp)
        idp = spec.idp
        child = pulumi.ResourceOptions(parent=self)
        # Replacing an identity resource logs everyone out or loses memberships: protected in prod.
        guarded = pulumi.ResourceOptions(parent=self, protect=spec.is_prod)
        role_of_value = {**contract.role_by_claim_value}
        if DEFAULT_APP_ROLE in contract.default_role_claim_values and contract.default_role:
            role_of_value[DEFAULT_APP_ROLE] = contract.default_role
        role_ids = {value: app_role_id(stack, value) for value in role_of_value}

        app = azuread.Application(
            f"{name}-app",
            display_name=entra_app_display_name(spec),
            sign_in_audience="AzureADMyOrg",
            web=azuread.ApplicationWebArgs(
                # Entra sends users back after logout only to a registered redirect URI: without the
                # post-logout URI here it shows its own signed-out page and the user stays there.
                redirect_uris=entra_redirect_uris(contract),
                logout_url=f"{spec.public_url}/auth/logout",
                implicit_grant=azuread.ApplicationWebImplicitGrantArgs(
                    access_token_issuance_enabled=False, id_token_issuance_enabled=False
                ),
            ),
            optional_claims=azuread.ApplicationOptionalClaimsArgs(
                id_tokens=[
                    azuread.ApplicationOptionalClaimsIdTokenArgs(name=claim) for claim in ID_TOKEN_OPTIONAL_CLAIMS
                ]
            ),
            app_roles=[
                azuread.ApplicationAppRoleArgs(
                    id=role_ids[value],
                    value=value,
                    display_name=f"Airflow {role}" + (" (default role)" if value == DEFAULT_APP_ROLE else ""),
                    description=f"Airflow ({spec.name}): signs in as {role}",
                    allowed_member_types=["User"],
                    enabled=True,
                )
                for value, role in role_of_value.items()
            ]
            # Service accounts: one application-only app role each (components/idp/azuread_service_accounts.py).
            + [azuread.ApplicationAppRoleArgs(**role) for role in service_account_app_roles(spec, stack)],
            # v2 access tokens for this API: the issuer and audience service accounts' tokens are checked against.
            api=azuread.ApplicationApiArgs(requested_access_token_version=2) if spec.serviceAccounts else None,
            required_resource_accesses=[
                azuread.ApplicationRequiredResourceAccessArgs(
                    resource_app_id=GRAPH_APP_ID,
                    resource_accesses=[
                        azuread.ApplicationRequiredResourceAccessResourceAccessArgs(id=scope_id, type="Scope")
                        for scope_id in GRAPH_SIGN_IN_SCOPES.values()
                    ],
                )
            ],
            opts=guarded,
        )
        service_principal = azuread.ServicePrincipal(
            f"{name}-service-principal",
            client_id=app.client_id,
            # Only users assigned an app role (through their group) may sign in, unless everyone may.
            app_role_assignment_required=not spec.signIn.everyone,
            opts=guarded,
        )
        if idp.adminConsent:
            graph = azuread.get_service_principal_output(client_id=GRAPH_APP_ID, opts=pulumi.InvokeOptions(parent=self))
            azuread.ServicePrincipalDelegatedPermissionGrant(
                f"{name}-admin-consent",
                service_principal_object_id=service_principal.object_id,
                resource_service_principal_object_id=graph.object_id,
                claim_values=list(GRAPH_SIGN_IN_SCOPES),
                opts=child,
            )

        group_ids: dict[str, pulumi.Input[str]] = {}
        for binding in group_bindings(spec):
            if binding.group in group_ids:
                continue
            if is_guid(binding.group):
                group_ids[binding.group] = binding.group
            elif idp.createGroups:
                group_ids[binding.group] = azuread.Group(
                    f"{name}-group-{slug(binding.group)}",
                    display_name=binding.group,
                    description=f"Airflow {spec.name}: managed by airflow-oidc",
                    security_enabled=True,
                    mail_enabled=False,
                    # Display names are not unique in Entra: refuse to create a second group of this name.
                    prevent_duplicate_names=True,
                    opts=guarded,
                ).object_id
            else:
                group_ids[binding.group] = found_groups[binding.group]
            azuread.AppRoleAssignment(
                f"{name}-assignment-{slug(binding.group)}",
                app_role_id=role_ids[binding.app_role],
                principal_object_id=group_ids[binding.group],
                resource_object_id=service_principal.object_id,
                # The app role must exist on the app first (a role added in the same update included).
                opts=pulumi.ResourceOptions(parent=self, depends_on=[app]),
            )

        slots, newest = secret_slots(today, spec.clientSecret.rotationDays)
        passwords = [
            azuread.ApplicationPassword(
                f"{name}-secret-slot-{slot.slot}",
                application_id=app.id,
                display_name=slot.display_name,
                end_date=slot.end_date,
                rotate_when_changed={"period": str(slot.generation)},
                opts=child,  # the SDK marks `value` secret
            )
            for slot in slots
        ]
        self.application_object_id = app.object_id
        self.service_principal_object_id = service_principal.object_id
        self.finish(
            client_id=app.client_id,
            # The newest slot's value: an output of that password, so the Secret follows it only once it exists.
            client_secret=passwords[newest].value,
            secret_version=str(slots[newest].generation),
            outputs={"tenantId": contract.required_claims["tid"]},
        )
