"""Microsoft Entra ID (`idp.kind: azuread`), the Pulumi side: the app registration, its app roles and
their group assignments, two client secrets rotated in turn, the service accounts' registrations.

The kind's resources hooks (`components/idp/base/resources.py`, `KindResources`): `lookup`, `provision`,
`provision_service_accounts`.
"""

from __future__ import annotations

import contextlib
import datetime
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from components.idp.azuread.model import (
    DEFAULT_APP_ROLE,
    GRAPH_APP_ID,
    GRAPH_SIGN_IN_SCOPES,
    ID_TOKEN_OPTIONAL_CLAIMS,
    AzureadIdp,
    GroupBinding,
    app_role_id,
    entra_app_display_name,
    entra_redirect_uris,
    group_bindings,
    is_guid,
    secret_slots,
)
from components.idp.base.contract import ClientContract, slug
from components.idp.base.model import ProviderConfig, ProviderConfigError
from components.idp.base.resources import IdpClient, explicit_provider
from components.model import key_text

if TYPE_CHECKING:
    import pulumi

    from components.idp.base.context import BuildContext
    from components.service_accounts import ServiceAccountContract, ServiceAccountIdentities
    from components.spec_base import Spec
else:
    # Pulumi resolves a component's output annotations at run time; the Airflow venv has no Pulumi.
    with contextlib.suppress(ImportError):
        import pulumi


def lookup(spec: Spec, provider: ProviderConfig) -> None:
    """With `createGroups: false`, each group named by display name must match exactly one group in the
    tenant (plain invokes: the program has declared nothing yet)."""
    idp = spec.idp
    assert isinstance(idp, AzureadIdp)
    if not idp.createGroups:
        # Through the provider bound to the spec's tenant, as the app will be.
        idp.record_found(
            lookup_groups(
                tuple(group_bindings(spec)), tenant=idp.tenant(provider), provider=explicit_provider(spec, provider)
            )
        )


def provision(ctx: BuildContext) -> IdpClient:
    """The app registration for the stack (`EntraApplication`), its groups as created or found."""
    import pulumi

    idp = ctx.spec.idp
    assert isinstance(idp, AzureadIdp)
    found = idp.found or {}
    if not idp.createGroups and idp.found is None:
        # Not through the program's lookup (a caller building the component itself):
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


def provision_service_accounts(
    ctx: BuildContext, *, accounts: ServiceAccountContract, client: IdpClient
) -> ServiceAccountIdentities:
    """Per account an app registration holding an application permission on the Airflow application
    (`service_accounts.py`)."""
    from components.idp.azuread.service_accounts import provision_entra_service_accounts

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

        from components.idp.azuread.service_accounts import service_account_app_roles

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
            # Service accounts: one application-only app role each (components/idp/azuread/service_accounts.py).
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
