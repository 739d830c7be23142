"""Keycloak (`idp.kind: keycloak`), the Pulumi side: the realm (optionally), the groups at their paths,
the OpenID client and its groups mapper, the service accounts' clients.

The kind's resources hooks (`components/idp/base/resources.py`, `KindResources`): `lookup`, `provision`,
`provision_service_accounts`.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from components.idp.base.contract import ClientContract, slug
from components.idp.base.model import ProviderConfig, ProviderConfigError, secret_generation
from components.idp.base.resources import IdpClient, explicit_provider, program_secret
from components.idp.keycloak.model import (
    ExistingGroup,
    KeycloakIdp,
    keycloak_client_id,
    keycloak_client_settings,
    keycloak_groups,
    keycloak_parent_path,
)
from components.model import key_text

if TYPE_CHECKING:
    import pulumi

    from components.idp.base.context import BuildContext
    from components.service_accounts import ServiceAccountContract, ServiceAccountIdentities
    from components.spec_base import Spec


def lookup(spec: Spec, provider: ProviderConfig) -> None:
    """The groups that must exist already (createGroups false: every group; createGroups true: the
    parents of subgroups this stack does not create) are looked up by exact path (plain invokes,
    through the provider bound to the spec, before anything is declared)."""
    idp = spec.idp
    assert isinstance(idp, KeycloakIdp)
    idp.record_found(
        lookup_groups(idp.realm, keycloak_groups(spec).existing, provider=explicit_provider(spec, provider))
    )


def provision(ctx: BuildContext) -> IdpClient:
    """The stack's client (`KeycloakClient`), its groups created under the ones the lookups found."""
    import pulumi

    idp = ctx.spec.idp
    assert isinstance(idp, KeycloakIdp)
    found = idp.found
    if found is None:
        # Not through the program's lookup (a caller building the component itself):
        # look up now, still before any IdP resource is declared.
        try:
            found = lookup_groups(idp.realm, keycloak_groups(ctx.spec).existing)
        except GroupLookupError as error:
            raise pulumi.RunError(f"{ctx.stack_file}: {error}") from None
    return KeycloakClient(
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
    """Per account a confidential client with the client-credentials grant only (`service_accounts.py`)."""
    from components.idp.keycloak.service_accounts import provision_keycloak_service_accounts

    assert isinstance(client, KeycloakClient)
    return provision_keycloak_service_accounts(
        ctx.name,
        spec=ctx.spec,
        realm_id=client.realm_id,
        airflow_client_id=keycloak_client_id(ctx.stack),
        access_token_lifespan=keycloak_client_settings(ctx.spec, ctx.contract, ctx.stack).access_token_lifespan,
        today=ctx.today,
        opts=ctx.opts,
    )


class GroupLookupError(ProviderConfigError):
    """A group that must exist is not at its path in the realm (names the key)."""


def lookup_groups(
    realm: str, existing: Sequence[ExistingGroup], *, provider: pulumi.ProviderResource | None = None
) -> dict[str, str]:
    """Path -> id of each group that must exist, looked up by EXACT path: the provider's `group_path`
    (Keycloak's `/group-by-path`). Paths are unique in a realm, so no lookup can be ambiguous; the
    provider's `name` lookup (a search taking the first match at any depth) is never used.
    Plain invokes, so this can run before anything is declared."""
    if not existing:
        return {}
    import pulumi
    import pulumi_keycloak as keycloak

    opts = pulumi.InvokeOptions(provider=provider)
    found: dict[str, str] = {}
    for group in existing:
        try:
            found[group.path] = str(keycloak.get_group(realm_id=realm, group_path=group.path, opts=opts).id)
        except Exception as error:  # noqa: BLE001 - the provider's error: not found, or the server unreachable
            what = (
                f"the group {group.path}"
                if group.needed_by == group.path
                else f"{group.path}, the parent of {group.needed_by},"
            )
            fix = (
                "create it in Keycloak first, or set idp.createGroups: true"
                if group.needed_by == group.path
                else "create it in Keycloak first (the program creates only the groups the spec names)"
            )
            reason = " ".join(str(error).split()).removesuffix(" ()")[-300:]
            raise GroupLookupError(
                f"{key_text(group.loc)}: {what} was not found in realm {realm}: {fix} ({reason})"
            ) from None
    return found


class KeycloakClient(IdpClient):
    """A confidential Keycloak OpenID client for Airflow: authorization code + PKCE S256 only, exactly
    Airflow's redirect URI, a group-membership mapper emitting full group paths, the groups."""

    def __init__(
        self,
        name: str,
        *,
        spec: Spec,
        contract: ClientContract,
        stack: str,
        today: datetime.date,
        found_groups: Mapping[str, str] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        import pulumi
        import pulumi_keycloak as keycloak

        super().__init__("airflow-oidc:idp:KeycloakClient", name, None, opts)
        assert isinstance(spec.idp, KeycloakIdp)
        settings = keycloak_client_settings(spec, contract, stack)
        # Replacing an identity resource logs everyone out or loses memberships: protected in prod.
        guarded = pulumi.ResourceOptions(parent=self, protect=spec.is_prod)
        # Keycloak holds one secret per client: the program's secret is replaced in place every period
        # (the client first, then the Kubernetes Secret and the api-server roll: logins fail in between).
        generation = secret_generation(today, spec.clientSecret.rotationDays)
        client_secret = program_secret(self, f"{name}-client-secret", generation=generation)

        realm_id: pulumi.Input[str] = settings.realm
        if spec.idp.createRealm:
            realm = keycloak.Realm(
                f"{name}-realm",
                realm=settings.realm,
                enabled=True,
                ssl_required="external",
                security_defenses=keycloak.RealmSecurityDefensesArgs(
                    brute_force_detection=keycloak.RealmSecurityDefensesBruteForceDetectionArgs(
                        permanent_lockout=False, max_login_failures=5
                    )
                ),
                opts=guarded,
            )
            realm_id = realm.id
        self._groups(keycloak, name, spec, realm_id, found_groups or {}, guarded)
        client = keycloak.openid.Client(
            f"{name}-client",
            realm_id=realm_id,
            client_id=settings.client_id,
            name=settings.name,
            enabled=True,
            access_type="CONFIDENTIAL",
            client_authenticator_type="client-secret",
            client_secret=client_secret,
            standard_flow_enabled=True,
            implicit_flow_enabled=False,
            direct_access_grants_enabled=False,
            service_accounts_enabled=False,
            pkce_code_challenge_method="S256",
            valid_redirect_uris=settings.redirect_uris,
            valid_post_logout_redirect_uris=settings.post_logout_redirect_uris,
            web_origins=[],
            access_token_lifespan=settings.access_token_lifespan,
            opts=pulumi.ResourceOptions.merge(
                guarded, pulumi.ResourceOptions(additional_secret_outputs=["client_secret"])
            ),
        )
        keycloak.openid.GroupMembershipProtocolMapper(
            f"{name}-groups-mapper",
            realm_id=realm_id,
            client_id=client.id,
            name="airflow-groups",
            claim_name=settings.claim,
            # Paths (`/parent/child`): off, a same-named subgroup anywhere would match (names are
            # unique among siblings only). On is also the provider's default.
            full_path=True,
            add_to_id_token=True,
            add_to_userinfo=True,
            add_to_access_token=False,
            opts=guarded,
        )
        # Annotated here, not on the class: Pulumi evaluates class annotations, and this module has
        # no `pulumi` at import time (the Airflow venv imports it without Pulumi).
        self.client_internal_id: pulumi.Output[str] = client.id
        """Keycloak's internal id of the client (not the OAuth client id)."""
        self.realm_id: pulumi.Input[str] = realm_id
        """The realm (the created realm's id, so what uses it waits for it)."""
        self.finish(client_id=client.client_id, client_secret=client_secret, secret_version=str(generation))

    def _groups(
        self,
        keycloak: Any,
        name: str,
        spec: Spec,
        realm_id: pulumi.Input[str],
        found: Mapping[str, str],
        opts: pulumi.ResourceOptions,
    ) -> dict[str, pulumi.Input[str]]:
        """Create the groups the spec's plan creates (parents first, each under its parent: one this
        stack creates, or one looked up by path); path -> group id."""
        ids: dict[str, pulumi.Input[str]] = dict(found)
        for path in keycloak_groups(spec).created:
            parent = keycloak_parent_path(path)
            created = keycloak.Group(
                f"{name}-group-{group_resource_suffix(path)}",
                realm_id=realm_id,
                name=path.rsplit("/", 1)[-1],
                parent_id=ids[parent] if parent else None,
                opts=opts,
            )
            ids[path] = created.id
        return ids


def group_resource_suffix(path: str) -> str:
    """The group resource's name suffix: a top-level group's is its name's slug (as before paths), a
    subgroup's its segments' slugs joined by `__` (never a top-level slug: those have no `__`)."""
    return "__".join(slug(segment) for segment in path[1:].split("/"))
