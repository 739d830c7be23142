"""Okta (`idp.kind: okta`), the pure side: the `idp` keys, the contract, the groups claim, the access model.

The claim values are Okta group names, but the claim SELECTS groups by Okta group id: an Okta
Expression Language claim `getFilteredGroups({"00g…", …}, "group.name", N)` lists the names of the
user's groups among exactly the ids of the groups this stack creates or looks up. Okta keeps names
unique only among OKTA_GROUPs: an APP_GROUP imported from AD, LDAP or another app may carry the same
name, and a claim filtered by name would map its members; selected by id, it maps nothing.
The org authorization server reads the groups claim from the app; a custom authorization server gets
a scope, a claim and an access policy of this stack's own (`resources.py`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from components.idp.base.contract import ClientContract, common_contract, slug
from components.idp.base.model import (
    IdpModel,
    MockLookupError,
    ProviderConfig,
    ProviderConfigError,
)
from components.idp.okta.mocks import GET_GROUP, GET_GROUPS, GROUP_TYPE, MOCK_GROUP_NAMES, mock_group_id, mock_groups
from components.model import Model, at

if TYPE_CHECKING:
    from components.access import GroupGrant, ServiceAccountGrant
    from components.service_accounts import ServiceAccountContract
    from components.spec_base import ServiceAccount, Spec


OKTA_GROUP_ID = re.compile(r"00g[A-Za-z0-9]{17}")
"""An Okta group id (`00g` and 17 letters or digits): a group given as such is used by id, never by name."""
GROUPS_CLAIM_LIMIT = 100
"""getFilteredGroups' limit must be 1..100 (Okta: a larger one fails the claim and no token is issued)."""


def is_okta_group_id(group: str) -> bool:
    """Whether `access[].group` gives an Okta group id (`00g…`) rather than a name."""
    return OKTA_GROUP_ID.fullmatch(group) is not None


def is_custom_domain(org_url: str | None) -> bool:
    """Whether the org URL is on a custom domain (not on one of Okta's own, `OKTA_DOMAINS`)."""
    return bool(org_url) and not okta_hosted(str(org_url))


class OrgAuthorizationServer(Model):
    """Okta's org authorization server: no paid add-on; Okta's fixed token lifetimes."""

    mode: Literal["org"]


class CustomAuthorizationServer(Model):
    """An Okta custom authorization server (needs Okta API Access Management)."""

    mode: Literal["custom"]
    id: str = Field(
        default="default", min_length=1, description="Authorization server id, e.g. `default` or `aus1a2b3c`."
    )
    audience: str | None = Field(
        default=None,
        min_length=1,
        description="The server's audience (Okta Admin > Security > API), the `aud` of its access tokens; "
        "needed for serviceAccounts. Default for the `default` server: `api://default`.",
    )
    policySlot: int = Field(  # noqa: N815
        default=1,
        ge=1,
        le=500,
        description="This stack's place among the stacks sharing the server, assigned by the platform team "
        "(1, 2, 3, …): its access policies ask Okta for priorities 2×slot−1 (sign-in) and 2×slot (service "
        "accounts) when created. `airflow-oidc validate` refuses two stacks with one slot on one server.",
    )


class OktaIdp(IdpModel):
    """Okta: the program creates the OIDC app, the groups claim and the group assignments."""

    SDK: ClassVar[str | None] = "pulumi_okta"
    PROVIDER_CONFIG: ClassVar[Mapping[str, str]] = {"okta:orgName": "OKTA_ORG_NAME", "okta:baseUrl": "OKTA_BASE_URL"}
    GROUPS_BOUND_BY: ClassVar[str | None] = "by exact name"
    DEFAULTS_FROM_PROVIDER: ClassVar[Mapping[str, tuple[str, ...]]] = {"orgUrl": ("okta:orgName", "okta:baseUrl")}
    PROVIDER_PACKAGE: ClassVar[str | None] = "okta"
    # ForceNew in the Okta provider's schema (okta_app_oauth: type, client_id; okta_app_group_assignments:
    # app_id). Scopes, claims, policies and their rules update in place; groups too.
    REPLACE_ON_CHANGE: ClassVar[Mapping[str, tuple[str, ...]]] = {
        "okta:app/oAuth:OAuth": ("type", "clientId"),
        "okta:index/appGroupAssignments:AppGroupAssignments": ("appId",),
    }

    kind: Literal["okta"]
    authorizationServer: Annotated[  # noqa: N815
        OrgAuthorizationServer | CustomAuthorizationServer, Field(discriminator="mode")
    ] = Field(default_factory=lambda: OrgAuthorizationServer(mode="org"), description="`org` or `custom`.")
    createGroups: bool = Field(  # noqa: N815
        default=True,
        description="Create the `access` and `signIn.extraGroups` groups (OKTA_GROUPs); false looks each up "
        "by its exact name among OKTA_GROUPs (none or several: refused). A group given as an Okta group id "
        "(`00g…`) is used by id either way (e.g. an APP_GROUP imported from AD).",
    )
    orgUrl: str | None = Field(  # noqa: N815
        default=None,
        description="Okta org URL (a custom domain, say); the program's Okta provider manages this org. Default "
        "from `okta:orgName` and `okta:baseUrl`.",
    )

    @field_validator("orgUrl")
    @classmethod
    def _org_url_https(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"https://[A-Za-z0-9.-]+(:\d+)?", value):
            raise ValueError(f"{value!r} is not an https origin such as https://example.okta.com")
        return value

    # --- hooks ----------------------------------------------------------------------------------

    def check_spec(self, spec: Spec) -> None:
        bindings = group_bindings(spec)
        if len(bindings) > GROUPS_CLAIM_LIMIT:
            raise at(
                bindings[GROUPS_CLAIM_LIMIT].loc,
                f"{len(bindings)} groups: Okta's groups claim (getFilteredGroups) returns at most "
                f"{GROUPS_CLAIM_LIMIT} groups; map fewer groups",
            )
        if isinstance(self.authorizationServer, OrgAuthorizationServer) and spec.tokens.accessTokenMinutes is not None:
            raise at(
                ("tokens", "accessTokenMinutes"),
                "Okta's org authorization server has a fixed 60-minute access token; "
                "use idp.authorizationServer.mode: custom to set it",
            )

    def check_provider(self, spec: Spec, provider: ProviderConfig) -> None:
        """The org must be known, and one org named."""
        if not (self.orgUrl or provider.get("okta:orgName")):
            raise ProviderConfigError(
                "okta:orgName is not set: set it (`pulumi config set okta:orgName <org>`), "
                "or OKTA_ORG_NAME, or airflow-oidc:spec.idp.orgUrl"
            )
        # Two Okta orgs named at once: the provider would manage one while Airflow trusts the other's issuer.
        # (A custom domain in idp.orgUrl is another name of the provider's org: not a split.)
        configured = okta_org_url(provider.get("okta:orgName"), provider.get("okta:baseUrl"))
        if self.orgUrl and configured and okta_hosted(self.orgUrl) and self.orgUrl.lower() != configured.lower():
            raise ProviderConfigError(
                f"airflow-oidc:spec.idp.orgUrl: {self.orgUrl!r} is another Okta org than okta:orgName/okta:baseUrl "
                f"({configured}): the provider would create the app in one org while Airflow trusts the other's "
                "issuer; name one org: remove idp.orgUrl, or set okta:orgName and okta:baseUrl (or OKTA_ORG_NAME, "
                "OKTA_BASE_URL) to it"
            )

    def setup_notes(self, spec: Spec, provider: ProviderConfig) -> list[str]:
        """What to set by hand at Okta for this stack to work (the program cannot)."""
        org = self.org_url(provider)
        server = self.authorizationServer
        if isinstance(server, CustomAuthorizationServer) and is_custom_domain(org):
            return [
                f"idp.orgUrl {org} is a custom domain: Airflow trusts the issuer {org}/oauth2/{server.id}, so "
                f"authorization server {server.id!r} must issue tokens under it: Okta Admin > Security > API > "
                f"{server.id} > Settings > Issuer: the custom URL (issuer mode CUSTOM_URL; this program does not "
                "manage the server). Left on the Okta URL, every sign-in is refused for its issuer"
            ]
        return []

    def fleet_names(self, spec: Spec, *, stack: str, provider: ProviderConfig) -> Mapping[str, str]:
        org = self.org_url(provider) or "the Okta org"
        names = {f"Okta app label at {org}": okta_app_label(spec)}
        server = self.authorizationServer
        if isinstance(server, CustomAuthorizationServer):
            names[f"Okta policy name on {org} authorization server {server.id}"] = okta_policy_name(stack)
            # Two stacks asking for one priority make Okta shift the other's policy (drift on every
            # refresh) and, created at once, answer 500 (okta/terraform-provider-okta#1198).
            names[f"Okta policy slot on {org} authorization server {server.id}"] = str(server.policySlot)
        # An Okta group name is unique among Okta groups: a second stack cannot create it again.
        for binding in group_bindings(spec):
            if binding.how == "created":
                names[f"Okta group {binding.group!r} created at {org}"] = binding.group
        return names

    def provider_settings(self, spec: Spec, provider: ProviderConfig) -> Mapping[str, Any]:
        """With `idp.orgUrl`, the provider manages that org (`https://<orgName>.<baseUrl>`), whatever `okta:orgName`
        says: the app is created in the org whose issuer Airflow trusts."""
        if not self.orgUrl:
            return {}
        org_name, _, base_url = (urlsplit(self.orgUrl).hostname or "").partition(".")
        return {"org_name": org_name, "base_url": base_url}

    def org_url(self, provider: ProviderConfig) -> str | None:
        """The org the provider talks to: `idp.orgUrl`, else from `okta:orgName` + `okta:baseUrl`."""
        return self.orgUrl or okta_org_url(provider.get("okta:orgName"), provider.get("okta:baseUrl"))

    def claim_value(self, binding: GroupBinding) -> str:
        """The value the claim carries for a group: its name. For a group given by id, the name Okta holds,
        which only the program's lookup knows; before it (`validate`, `doctor`, the pure access model) the
        id stands in, so nothing maps by a name nobody has checked."""
        if binding.how != "id":
            return binding.group
        found = (self.found or {}).get(binding.group)
        return found.name if found is not None else binding.group

    def contract(self, spec: Spec, *, stack: str, provider: ProviderConfig) -> ClientContract:
        org = self.org_url(provider)
        if not org:
            raise ValueError("the Okta org URL is unknown: set okta:orgName (and okta:baseUrl) or idp.orgUrl")
        fields = common_contract(spec, provider="okta")
        # The claim carries names: a group given by id is mapped by the name Okta holds for it.
        binding = {b.group: b for b in group_bindings(spec)}
        fields["role_by_claim_value"] = {
            self.claim_value(binding[group]): role for group, role in fields["role_by_claim_value"].items()
        }
        fields["default_role_claim_values"] = tuple(
            self.claim_value(binding[group]) for group in fields["default_role_claim_values"]
        )
        server = self.authorizationServer
        if isinstance(server, CustomAuthorizationServer):
            scope, claim = okta_scope_and_claim(stack)
            issuer = f"{org}/oauth2/{server.id}"
        else:
            # The org server emits the app's groups claim when the `groups` scope is requested.
            scope, claim = "groups", "groups"
            issuer = org
        return ClientContract(
            issuer=issuer,
            scopes=("openid", "email", "profile", scope),
            role_claim=claim,
            role_claim_scope=scope,
            username_claim="sub",  # Okta's user id: stable across email changes and app replacement
            **fields,
        )

    # --- the access model (components/access.py) ------------------------------------------------

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

        (binding,) = [b for b in group_bindings(spec) if b.group == group]
        how = {
            "created": "the OKTA_GROUP the program creates (its id: known after apply)",
            "name": f"the one OKTA_GROUP named exactly {group!r} (its id looked up before anything is declared)",
            "id": f"the Okta group with id {group} (any type, e.g. an APP_GROUP from a directory)",
        }[binding.how]
        claim_value = self.claim_value(binding)
        return GroupGrant(
            group=group,
            principal=group,
            binding=f"{how}; assigned to the app by id, and the `{contract.role_claim}` claim selects it by id "
            f"(getFilteredGroups), emitting its name {claim_value!r}",
            claim_value=claim_value,
            role=role,
            key=key_of(loc),
        )

    def service_account_grant(
        self, spec: Spec, account: ServiceAccount, *, key: str, stack: str, provider: ProviderConfig
    ) -> ServiceAccountGrant:
        from components.access import KNOWN_AFTER_APPLY, ServiceAccountGrant

        return ServiceAccountGrant(
            name=account.name,
            role=account.role,
            subject=KNOWN_AFTER_APPLY,
            trust="client credentials (client_secret_basic) of the Okta service app created for it; "
            f"its tokens name it in `cid` and carry the scope {okta_api_scope(stack)}",
            key=key,
        )

    # --- service accounts: service apps on the custom authorization server --------------------

    def service_accounts_refusal(self, spec: Spec) -> str | None:
        server = self.authorizationServer
        if isinstance(server, OrgAuthorizationServer):
            return (
                "idp.kind okta with authorizationServer.mode: org cannot offer service accounts: Okta's org "
                "authorization server mints client-credentials access tokens only for Okta's own APIs "
                "(okta.* scopes, audience the org URL), never for an API of yours such as Airflow's; set "
                "idp.authorizationServer.mode: custom (Okta API Access Management)"
            )
        if server.audience is None and server.id != "default":
            return (
                f"idp.authorizationServer.audience is not set: service accounts' tokens are verified against "
                f"the audience of authorization server {server.id!r} (Okta Admin > Security > API)"
            )
        return None

    def service_account_contract(
        self, spec: Spec, contract: ClientContract, *, stack: str, provider: ProviderConfig
    ) -> ServiceAccountContract:
        from components.service_accounts import ServiceAccountContract

        server = self.authorizationServer
        assert isinstance(server, CustomAuthorizationServer)
        return ServiceAccountContract(
            issuer=contract.issuer,
            discovery_url=contract.issuer + "/.well-known/oauth-authorization-server",
            audience=server.audience or "api://default",
            # Okta names the client of a client-credentials token in `cid` (its `sub` is the same id).
            identity_claim="cid",
            scope_claim="scp",
            # The server is shared by stacks: this stack's scope says the token is for this Airflow.
            required_scope=okta_api_scope(stack),
            credential="client_secret_basic",
        )

    # --- the mock engine (the mocked org: mocks.py) -----------------------------------------------

    @staticmethod
    def mock_outputs(type_: str, name: str, inputs: Mapping[str, Any]) -> dict[str, Any] | None:
        from components.mock_values import fake

        if type_ == "okta:app/oAuth:OAuth":
            # Okta reports the secret it holds as an output (marked secret by the SDK, not by mocks).
            return {"clientId": fake(name, "0oa"), "clientSecret": inputs.get("clientBasicSecret")}
        if type_ == GROUP_TYPE:
            return {"id": mock_group_id(f"created:{name}")}
        return None

    @staticmethod
    def mock_call(token: str, args: Mapping[str, Any]) -> dict[str, Any] | None:
        if token == GET_GROUP and args.get("id"):
            group_id = str(args["id"])
            if group_id in MOCK_GROUP_NAMES and MOCK_GROUP_NAMES[group_id] is None:
                raise MockLookupError(f"failed get group by ID: the resource {group_id} was not found (404)")
            name = MOCK_GROUP_NAMES.get(group_id) or f"group {group_id}"
            return {"id": group_id, "name": name, "type": "APP_GROUP", "description": ""}
        if token == GET_GROUP:  # by name: the built-in Everyone group
            name = str(args.get("name", ""))
            return {"id": mock_group_id(f"{args.get('type')}:{name}"), "name": name, "type": args.get("type")}
        if token == GET_GROUPS:
            return {"groups": mock_groups(str(args.get("q") or ""), args.get("type"))}
        return None


def okta_org_url(org_name: str | None, base_url: str | None) -> str | None:
    """The Okta org URL the provider talks to (`okta:orgName` + `okta:baseUrl`)."""
    if not org_name:
        return None
    return f"https://{org_name}.{base_url or 'okta.com'}"


OKTA_DOMAINS = ("okta.com", "oktapreview.com", "okta-emea.com", "okta-gov.com", "okta.mil")
"""Okta's own domains for orgs (`<org>.okta.com`); any other host in `idp.orgUrl` is a custom domain."""


def okta_hosted(url: str) -> bool:
    """Whether `url` is an org on one of Okta's own domains (not a custom domain)."""
    host = re.sub(r"^https://|(:\d+)?/*$", "", url).lower()
    return any(host.endswith("." + domain) for domain in OKTA_DOMAINS)


def okta_scope_and_claim(stack: str) -> tuple[str, str]:
    """Per-stack names on a custom authorization server, so team stacks on one server never collide."""
    name = slug(f"airflow_{stack}")
    return f"{name}_groups", f"{name}_groups"


def okta_app_label(spec: Spec) -> str:
    """The app's label (Okta shows it to users; team stacks must not share one)."""
    return f"Airflow ({spec.name})"


def okta_policy_name(stack: str) -> str:
    """The access policy's name on a custom authorization server (one per stack)."""
    return f"airflow-{slug(stack)}"


def okta_policy_priorities(slot: int) -> tuple[int, int]:
    """The priorities a stack's two access policies ask for (sign-in, service accounts): distinct for
    distinct slots, so no two stacks (and no two policies of one stack) ask for the same one."""
    return 2 * slot - 1, 2 * slot


def okta_api_scope(stack: str) -> str:
    """The custom server's scope for this stack's Airflow API (service accounts' tokens must carry it)."""
    return slug(f"airflow_{stack}") + "_api"


Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class GroupBinding:
    """One group the stack binds: where the spec names it, how it is found, the role it gives."""

    group: str
    """The name or id, as the spec gives it."""
    loc: Loc
    role: str | None
    """The Airflow role; None for a default-role audience group (signIn.extraGroups)."""
    how: Literal["created", "name", "id"]
    """Created by the stack, looked up by exact name among OKTA_GROUPs, or given as an Okta group id."""


def group_bindings(spec: Spec) -> list[GroupBinding]:
    """Every group the stack binds, by id in the claim: the `access` groups, then `signIn.extraGroups`."""
    assert isinstance(spec.idp, OktaIdp)
    create = spec.idp.createGroups

    def how(group: str) -> Literal["created", "name", "id"]:
        if is_okta_group_id(group):
            return "id"
        return "created" if create else "name"

    bindings = [
        GroupBinding(rule.group, ("access", index, "group"), rule.role, how(rule.group))
        for index, rule in enumerate(spec.access)
    ]
    bindings += [
        GroupBinding(group, ("signIn", "extraGroups", index), None, how(group))
        for index, group in enumerate(spec.signIn.extraGroups)
    ]
    return bindings


@dataclass(frozen=True)
class OktaGroup:
    """A group as Okta holds it."""

    id: str
    name: str
    type: str


def okta_groups_expression(group_ids: list[str], attribute: str = "group.name") -> str:
    """The groups claim's Okta Expression Language value: the names of the user's groups among exactly
    these group ids (`getFilteredGroups(allowlist, "group.name", limit)`), the limit their number."""
    if not group_ids or len(group_ids) > GROUPS_CLAIM_LIMIT:
        raise ValueError(f"getFilteredGroups takes 1 to {GROUPS_CLAIM_LIMIT} groups, not {len(group_ids)}")
    for group_id in group_ids:
        if not re.fullmatch(r"[A-Za-z0-9]+", group_id):  # Okta ids; nothing that could end the string literal
            raise ValueError(f"{group_id!r} is not an Okta group id")
    allowlist = ",".join(f'"{group_id}"' for group_id in group_ids)
    return f'getFilteredGroups({{{allowlist}}}, "{attribute}", {len(group_ids)})'


@dataclass(frozen=True)
class OktaAppSettings:
    """The app's settings, derived from the spec and the contract (pure, testable without Pulumi)."""

    label: str
    redirect_uris: list[str]
    post_logout_redirect_uris: list[str]
    login_uri: str
    custom_server: str | None
    """Custom authorization server id, or None for the org server."""
    scope: str
    claim: str
    access_token_minutes: int
    issuer_mode: str | None
    """The app's issuer mode: `CUSTOM_URL` when the org server is on a custom domain (Airflow trusts
    the issuer `idp.orgUrl`); None keeps Okta's default (`ORG_URL`)."""
    policy_slot: int = 1
    """The custom server's policy slot (`okta_policy_priorities`)."""


def okta_app_settings(spec: Spec, contract: ClientContract) -> OktaAppSettings:
    assert isinstance(spec.idp, OktaIdp)
    server = spec.idp.authorizationServer
    org_server = not isinstance(server, CustomAuthorizationServer)
    return OktaAppSettings(
        label=okta_app_label(spec),
        redirect_uris=list(contract.redirect_uris),
        post_logout_redirect_uris=list(contract.post_logout_redirect_uris),
        login_uri=f"{spec.public_url}/auth/login/{contract.provider}",
        custom_server=server.id if isinstance(server, CustomAuthorizationServer) else None,
        scope=contract.role_claim_scope or "groups",
        claim=contract.role_claim,
        access_token_minutes=spec.access_token_minutes,
        policy_slot=server.policySlot if isinstance(server, CustomAuthorizationServer) else 1,
        # The org server's issuer is the contract's (`idp.orgUrl`); on a custom domain Okta must use it.
        issuer_mode="CUSTOM_URL" if org_server and is_custom_domain(contract.issuer) else None,
    )
