"""Okta (`idp.kind: okta`), the Pulumi side: the OIDC web app, its groups and assignments, the groups claim
(the org server's, or a custom server's scope, claim and access policy), and the service apps.

The kind's resources hooks (`components/idp/base/resources.py`, `KindResources`): `lookup`, `provision`,
`provision_service_accounts`.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from components.idp.base.contract import slug
from components.idp.base.model import ProviderConfig, ProviderConfigError, secret_generation
from components.idp.base.resources import IdpClient, explicit_provider, program_secret
from components.idp.okta.model import (
    CustomAuthorizationServer,
    GroupBinding,
    OktaAppSettings,
    OktaGroup,
    OktaIdp,
    group_bindings,
    okta_app_settings,
    okta_groups_expression,
    okta_policy_name,
    okta_policy_priorities,
)
from components.model import key_text

if TYPE_CHECKING:
    import pulumi

    from components.idp.base.context import BuildContext
    from components.idp.base.contract import ClientContract
    from components.service_accounts import ServiceAccountContract, ServiceAccountIdentities
    from components.spec_base import Spec


def lookup(spec: Spec, provider: ProviderConfig) -> None:
    """The groups not created here are looked up (plain invokes, through the provider bound to the
    spec's org, before anything is declared): by exact name among OKTA_GROUPs, or by the id given."""
    idp = spec.idp
    assert isinstance(idp, OktaIdp)
    idp.record_found(
        lookup_groups(spec, org=idp.org_url(provider) or "the Okta org", provider=explicit_provider(spec, provider))
    )


def provision(ctx: BuildContext) -> IdpClient:
    """The Okta app for the stack (`OktaApplication`), its groups bound as the lookups found them."""
    import pulumi

    idp = ctx.spec.idp
    assert isinstance(idp, OktaIdp)
    found = idp.found
    if found is None:
        # Not through the program's lookup (a caller building the component itself):
        # look up now, still before any IdP resource is declared.
        try:
            found = lookup_groups(ctx.spec, org=ctx.contract.issuer)
        except GroupLookupError as error:
            raise pulumi.RunError(f"{ctx.stack_file}: {error}") from None
    return OktaApplication(
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
    """Service apps on the custom authorization server (`okta_service_accounts`)."""
    return okta_service_accounts(
        ctx.name, spec=ctx.spec, accounts=accounts, stack=ctx.stack, today=ctx.today, opts=ctx.opts
    )


class GroupLookupError(ProviderConfigError):
    """A group named by name matches no OKTA_GROUP or several, or a group id names none (names the key)."""


def lookup_groups(spec: Spec, *, org: str, provider: pulumi.ProviderResource | None = None) -> dict[str, OktaGroup]:
    """Spec group -> the Okta group, for every group not created here (plain invokes, so this can run
    before anything is declared).

    By name: `okta.get_groups(q=…, type="OKTA_GROUP")` and exactly one OKTA_GROUP named exactly so
    (the provider's own `get_group` takes a single starts-with match: `payments-oncall` would bind
    `payments-oncall-secondary`); APP_GROUPs, whose names are not unique, are bound only by id. By id:
    `okta.group.get_group(id=…)`, any type. Then no two bound groups may emit one name in the claim.
    """
    bindings = [binding for binding in group_bindings(spec) if binding.how != "created"]
    found: dict[str, OktaGroup] = {}
    if bindings:
        import pulumi
        import pulumi_okta as okta

        opts = pulumi.InvokeOptions(provider=provider)
        for binding in bindings:
            found[binding.group] = (
                _group_by_id(okta, binding, org, opts)
                if binding.how == "id"
                else _group_by_name(okta, binding, org, opts)
            )
    _check_distinct(spec, found)
    return found


def _group_by_name(okta: Any, binding: GroupBinding, org: str, opts: pulumi.InvokeOptions) -> OktaGroup:
    result = okta.get_groups(q=binding.group, type="OKTA_GROUP", opts=opts)
    candidates = [_okta_group(group) for group in result.groups or []]
    exact = [group for group in candidates if group.name == binding.group and group.type == "OKTA_GROUP"]
    if len(exact) == 1:
        return exact[0]
    if exact:
        what = f"{len(exact)} OKTA_GROUPs ({', '.join(sorted(group.id for group in exact))})"
    else:
        others = sorted(group.name for group in candidates)
        what = "no OKTA_GROUP" + (f" (only names starting so: {', '.join(others)})" if others else "")
    raise GroupLookupError(
        f"{key_text(binding.loc)}: {binding.group!r} matches {what} at {org}: a group is bound by its exact "
        "name among OKTA_GROUPs; give the group's id (00g…) instead, e.g. for an APP_GROUP imported from a directory"
    )


def _group_by_id(okta: Any, binding: GroupBinding, org: str, opts: pulumi.InvokeOptions) -> OktaGroup:
    try:
        group = okta.group.get_group(id=binding.group, opts=opts)
    except Exception as error:  # noqa: BLE001 - the provider's error: no such group, or Okta unreachable
        reason = " ".join(str(error).split()).removesuffix(" ()")[-300:]
        raise GroupLookupError(
            f"{key_text(binding.loc)}: no group with id {binding.group} at {org} ({reason})"
        ) from None
    return OktaGroup(id=str(group.id), name=str(group.name), type=str(group.type))


def _okta_group(group: Any) -> OktaGroup:
    """A `get_groups` result's group (typed by the SDK, a mapping under some engines)."""
    if isinstance(group, Mapping):
        return OktaGroup(id=str(group["id"]), name=str(group["name"]), type=str(group.get("type", "")))
    return OktaGroup(id=str(group.id), name=str(group.name), type=str(group.type))


def _check_distinct(spec: Spec, found: Mapping[str, OktaGroup]) -> None:
    """Two bindings must not be one group (by id), nor emit one name (Airflow could not tell them apart)."""
    by_id: dict[str, GroupBinding] = {}
    by_name: dict[str, GroupBinding] = {}
    for binding in group_bindings(spec):
        group = found.get(binding.group)
        name = group.name if group else binding.group
        if group is not None:
            other = by_id.setdefault(group.id, binding)
            if other is not binding:
                raise GroupLookupError(
                    f"{key_text(binding.loc)}: {binding.group!r} is the group {group.id} again "
                    f"(also {key_text(other.loc)}): keep one entry"
                )
        other = by_name.setdefault(name, binding)
        if other is not binding:
            raise GroupLookupError(
                f"{key_text(binding.loc)}: {binding.group!r} is a group named {name!r}, as {key_text(other.loc)} "
                "is: the claim carries names, so Airflow could not tell their members apart; bind one of them"
            )


class OktaApplication(IdpClient):
    """An Okta OIDC web app for Airflow: authorization code + PKCE, exactly Airflow's redirect URI,
    the `access` groups (created or bound) assigned to it, and a groups claim selecting them by id."""

    def __init__(
        self,
        name: str,
        *,
        spec: Spec,
        contract: ClientContract,
        stack: str,
        today: datetime.date,
        found_groups: Mapping[str, OktaGroup] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        import pulumi
        import pulumi_okta as okta

        super().__init__("airflow-oidc:idp:OktaApplication", name, None, opts)
        assert isinstance(spec.idp, OktaIdp)
        settings = okta_app_settings(spec, contract)
        child = pulumi.ResourceOptions(parent=self)
        # Replacing an identity resource logs everyone out or loses memberships: protected in prod.
        guarded = pulumi.ResourceOptions(parent=self, protect=spec.is_prod)
        # Okta has no second-secret resource: the program's secret is replaced in place every period.
        generation = secret_generation(today, spec.clientSecret.rotationDays)
        composer = opts.parent if opts else None
        client_secret = program_secret(
            self,
            f"{name}-client-secret",
            generation=generation,
            # Declared by the composer before kinds were plug-ins: same resource, not a new secret.
            aliases=[pulumi.Alias(name="airflow-oidc-client-secret", parent=composer)] if composer else None,
        )

        group_ids = self._groups(okta, name, spec, found_groups or {}, guarded)
        # By id: a same-named group from any other source (an APP_GROUP) is not in the allowlist.
        claim_value = pulumi.Output.all(*group_ids.values()).apply(lambda ids: okta_groups_expression(list(ids)))
        groups_claim: Any = None
        if settings.custom_server is None:
            # The org server reads the claim from the app (works only with an API-token provider).
            groups_claim = okta.app.OAuthGroupsClaimArgs(type="EXPRESSION", name=settings.claim, value=claim_value)
        app = okta.app.OAuth(
            f"{name}-app",
            label=settings.label,
            type="web",
            grant_types=["authorization_code"],
            response_types=["code"],
            redirect_uris=settings.redirect_uris,
            post_logout_redirect_uris=settings.post_logout_redirect_uris,
            wildcard_redirect="DISABLED",
            pkce_required=True,
            token_endpoint_auth_method="client_secret_basic",
            client_basic_secret=client_secret,
            consent_method="TRUSTED",
            implicit_assignment=False,
            login_mode="SPEC",
            login_uri=settings.login_uri,
            login_scopes=list(contract.scopes),
            groups_claim=groups_claim,
            issuer_mode=settings.issuer_mode,
            opts=pulumi.ResourceOptions.merge(
                guarded, pulumi.ResourceOptions(additional_secret_outputs=["client_secret"])
            ),
        )
        assigned = list(group_ids.values())
        if spec.signIn.everyone:
            everyone = okta.group.get_group_output(
                name="Everyone", type="BUILT_IN", opts=pulumi.InvokeOptions(parent=self)
            )
            assigned.append(everyone.id)
        okta.AppGroupAssignments(
            f"{name}-assignments",
            app_id=app.id,
            groups=[
                okta.AppGroupAssignmentsGroupArgs(id=group_id, priority=index, profile="{}")
                for index, group_id in enumerate(assigned)
            ],
            opts=child,
        )
        if settings.custom_server is not None:
            self._custom_server(okta, name, stack, settings, contract, app, claim_value, child)

        # Annotated here, not on the class: Pulumi evaluates class annotations, and this module has
        # no `pulumi` at import time (the Airflow venv imports it without Pulumi).
        self.app_id: pulumi.Output[str] = app.id
        """The Okta app id."""
        self.finish(client_id=app.client_id, client_secret=client_secret, secret_version=str(generation))

    def _groups(
        self, okta: Any, name: str, spec: Spec, found: Mapping[str, OktaGroup], opts: pulumi.ResourceOptions
    ) -> dict[str, pulumi.Input[str]]:
        """Spec group -> its Okta group id: created here (an OKTA_GROUP), or as the lookups found it."""
        ids: dict[str, pulumi.Input[str]] = {}
        for binding in group_bindings(spec):
            if binding.how == "created":
                created = okta.group.Group(
                    f"{name}-group-{slug(binding.group)}",
                    name=binding.group,
                    description=f"Airflow {spec.name}: managed by airflow-oidc",
                    opts=opts,
                )
                ids[binding.group] = created.id
            else:
                ids[binding.group] = found[binding.group].id
        return ids

    def _custom_server(
        self,
        okta: Any,
        name: str,
        stack: str,
        settings: OktaAppSettings,
        contract: ClientContract,
        app: Any,
        claim_value: pulumi.Output[str],
        opts: pulumi.ResourceOptions,
    ) -> None:
        server_id = settings.custom_server
        assert server_id is not None
        scope = okta.auth.ServerScope(
            f"{name}-scope",
            auth_server_id=server_id,
            name=settings.scope,
            description=f"Groups for Airflow ({stack})",
            consent="IMPLICIT",
            metadata_publish="NO_CLIENTS",
            opts=opts,
        )
        okta.auth.ServerClaim(
            f"{name}-claim",
            auth_server_id=server_id,
            name=settings.claim,
            claim_type="IDENTITY",
            # An Okta Expression Language value selecting groups by id (not GROUPS: a name filter).
            value_type="EXPRESSION",
            value=claim_value,
            scopes=[scope.name],
            always_include_in_token=True,
            opts=opts,
        )
        server_policy(
            okta,
            name,
            server_id=server_id,
            policy_name=okta_policy_name(stack),
            description=f"Airflow ({stack}): this client only",
            clients=[app.client_id],
            priority=okta_policy_priorities(settings.policy_slot)[0],
            grant="authorization_code",
            scopes=list(contract.scopes),
            lifetime_minutes=settings.access_token_minutes,
            opts=opts,
        )


def server_policy(
    okta: Any,
    name: str,
    *,
    server_id: str,
    policy_name: str,
    description: str,
    clients: list[Any],
    priority: int,
    grant: str,
    scopes: list[Any],
    lifetime_minutes: int,
    opts: pulumi.ResourceOptions,
) -> None:
    """An access policy on a custom authorization server for exactly `clients`, with one rule
    allowing one grant for these scopes (`<name>-policy`, `<name>-policy-rule`).

    `priority` is asked for at creation only. Okta renumbers a server's policies as others are added
    or removed (a priority beyond their count becomes the last), and the provider reads the new number
    back: declaring it again would show drift on every refresh and, applied, re-shuffle other stacks'
    policies. The order among stacks does not matter (each policy names its own clients); created
    with small, distinct priorities they stay ahead of the server's catch-all policies."""
    import pulumi

    policy = okta.auth.ServerPolicy(
        f"{name}-policy",
        auth_server_id=server_id,
        name=policy_name,
        description=description,
        client_whitelists=clients,
        priority=priority,
        status="ACTIVE",
        opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(ignore_changes=["priority"])),
    )
    okta.auth.ServerPolicyRule(
        f"{name}-policy-rule",
        auth_server_id=server_id,
        policy_id=policy.id,
        name=grant.replace("_", "-"),
        priority=1,
        status="ACTIVE",
        grant_type_whitelists=[grant],
        # Okta wants the rule's people condition even for client credentials (no user in that grant).
        group_whitelists=["EVERYONE"],
        scope_whitelists=scopes,
        access_token_lifetime_minutes=lifetime_minutes,
        opts=opts,
    )


def okta_service_accounts(
    name: str,
    *,
    spec: Spec,
    accounts: ServiceAccountContract,
    stack: str,
    today: datetime.date,
    opts: pulumi.ResourceOptions,
) -> ServiceAccountIdentities:
    """Per account an Okta service app (client credentials only), and on the custom server this stack's
    API scope and an access policy whose one rule lets exactly those apps get it.

    Authentication: `client_secret_basic` with a secret the program generates and rotates
    (`clientSecret.rotationDays`), kept in the stack's secret store; `private_key_jwt` would need the
    CI job's public key in the spec (not offered yet).
    """
    import pulumi
    import pulumi_okta as okta

    from components.service_accounts import ServiceAccountIdentities

    assert isinstance(spec.idp, OktaIdp) and isinstance(spec.idp.authorizationServer, CustomAuthorizationServer)
    server_id = spec.idp.authorizationServer.id
    parent = opts.parent
    guarded = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(protect=spec.is_prod))
    generation = secret_generation(today, spec.clientSecret.rotationDays)
    identities: dict[str, Any] = {}
    credentials: dict[str, Any] = {}
    for account in spec.serviceAccounts:
        secret = program_secret(parent, f"{name}-sa-{account.name}-secret", generation=generation)  # type: ignore[arg-type]
        app = okta.app.OAuth(
            f"{name}-sa-{account.name}",
            label=f"Airflow ({spec.name}) service account {account.name}",
            type="service",
            grant_types=["client_credentials"],
            response_types=["token"],
            token_endpoint_auth_method="client_secret_basic",
            client_basic_secret=secret,
            implicit_assignment=False,
            opts=pulumi.ResourceOptions.merge(
                guarded, pulumi.ResourceOptions(additional_secret_outputs=["client_secret"])
            ),
        )
        identities[account.name] = app.client_id
        # The client id is public (it is in the outputs and the auth module's settings); the secret is not.
        credentials[account.name] = {"client-secret": secret}
    assert accounts.required_scope is not None
    scope = okta.auth.ServerScope(
        f"{name}-sa-scope",
        auth_server_id=server_id,
        name=accounts.required_scope,
        description=f"Airflow API ({stack}): service accounts",
        consent="IMPLICIT",
        metadata_publish="NO_CLIENTS",
        opts=opts,
    )
    server_policy(
        okta,
        f"{name}-sa",
        server_id=server_id,
        policy_name=f"airflow-{slug(stack)}-automation",
        description=f"Airflow ({stack}): its service accounts only",
        clients=list(identities.values()),
        priority=okta_policy_priorities(spec.idp.authorizationServer.policySlot)[1],
        grant="client_credentials",
        scopes=[scope.name],
        lifetime_minutes=spec.access_token_minutes,
        opts=opts,
    )
    return ServiceAccountIdentities(
        identities=identities, credentials=credentials, outputs={"serviceAccountClientIds": dict(identities)}
    )
