"""The Okta side: the OIDC web app, its groups and assignments, and the groups claim."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_okta as okta

from components.contract import ClientContract, okta_group_filter, slug
from components.spec import CustomAuthorizationServer, OktaIdp, Spec


@dataclass(frozen=True)
class OktaAppSettings:
    """The app's settings, derived from the spec and the contract (pure, testable without Pulumi)."""

    label: str
    redirect_uris: list[str]
    post_logout_redirect_uris: list[str]
    login_uri: str
    group_filter: str
    custom_server: str | None
    """Custom authorization server id, or None for the org server."""
    scope: str
    claim: str
    access_token_minutes: int


def okta_app_settings(spec: Spec, contract: ClientContract) -> OktaAppSettings:
    assert isinstance(spec.idp, OktaIdp)
    server = spec.idp.authorizationServer
    return OktaAppSettings(
        label=f"Airflow ({spec.name})",
        redirect_uris=list(contract.redirect_uris),
        post_logout_redirect_uris=list(contract.post_logout_redirect_uris),
        login_uri=f"{spec.public_url}/auth/login/{contract.provider}",
        group_filter=okta_group_filter(contract.claimed_groups),
        custom_server=server.id if isinstance(server, CustomAuthorizationServer) else None,
        scope=contract.groups_scope or "groups",
        claim=contract.groups_claim,
        access_token_minutes=spec.access_token_minutes,
    )


class OktaApplication(pulumi.ComponentResource):
    """An Okta OIDC web app for Airflow: authorization code + PKCE, exactly Airflow's redirect URI,
    the `access` groups (created or bound) assigned to it, and a groups claim filtered to them."""

    client_id: pulumi.Output[str]
    """The app's OAuth client id."""
    app_id: pulumi.Output[str]
    """The Okta app id."""

    def __init__(
        self,
        name: str,
        *,
        spec: Spec,
        contract: ClientContract,
        client_secret: pulumi.Output[str],
        stack: str,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("airflow-oidc:idp:OktaApplication", name, None, opts)
        assert isinstance(spec.idp, OktaIdp)
        settings = okta_app_settings(spec, contract)
        child = pulumi.ResourceOptions(parent=self)
        # Replacing an identity resource logs everyone out or loses memberships: protected in prod.
        guarded = pulumi.ResourceOptions(parent=self, protect=spec.is_prod)

        group_ids = self._groups(name, spec, contract.claimed_groups, guarded)
        groups_claim: okta.app.OAuthGroupsClaimArgs | None = None
        if settings.custom_server is None:
            # The org server reads the claim from the app (works only with an API-token provider).
            groups_claim = okta.app.OAuthGroupsClaimArgs(
                type="FILTER", filter_type="REGEX", name=settings.claim, value=settings.group_filter
            )
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
            # Okta has no second-secret resource: rotation replaces this value in place.
            client_basic_secret=pulumi.Output.secret(client_secret),  # type: ignore[arg-type]
            consent_method="TRUSTED",
            implicit_assignment=False,
            login_mode="SPEC",
            login_uri=settings.login_uri,
            login_scopes=list(contract.scopes),
            groups_claim=groups_claim,
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
            self._custom_server(name, stack, settings, contract, app, child)

        self.client_id = app.client_id
        self.app_id = app.id
        self.register_outputs({"client_id": self.client_id, "app_id": self.app_id})

    def _groups(
        self, name: str, spec: Spec, groups: tuple[str, ...], opts: pulumi.ResourceOptions
    ) -> dict[str, pulumi.Output[str]]:
        assert isinstance(spec.idp, OktaIdp)
        ids: dict[str, pulumi.Output[str]] = {}
        for group in groups:
            if spec.idp.createGroups:
                created = okta.group.Group(
                    f"{name}-group-{slug(group)}",
                    name=group,
                    description=f"Airflow {spec.name}: managed by airflow-oidc",
                    opts=opts,
                )
                ids[group] = created.id
            else:
                found = okta.group.get_group_output(
                    name=group, type="OKTA_GROUP", opts=pulumi.InvokeOptions(parent=self)
                )
                ids[group] = found.id
        return ids

    def _custom_server(
        self,
        name: str,
        stack: str,
        settings: OktaAppSettings,
        contract: ClientContract,
        app: okta.app.OAuth,
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
            value_type="GROUPS",
            group_filter_type="REGEX",
            value=settings.group_filter,
            scopes=[scope.name],
            always_include_in_token=True,
            opts=opts,
        )
        policy = okta.auth.ServerPolicy(
            f"{name}-policy",
            auth_server_id=server_id,
            name=f"airflow-{slug(stack)}",
            description=f"Airflow ({stack}): this client only",
            client_whitelists=[app.client_id],
            priority=1,
            status="ACTIVE",
            opts=opts,
        )
        okta.auth.ServerPolicyRule(
            f"{name}-policy-rule",
            auth_server_id=server_id,
            policy_id=policy.id,
            name="authorization-code",
            priority=1,
            status="ACTIVE",
            grant_type_whitelists=["authorization_code"],
            group_whitelists=["EVERYONE"],
            scope_whitelists=list(contract.scopes),
            access_token_lifetime_minutes=settings.access_token_minutes,
            opts=opts,
        )
