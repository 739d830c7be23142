"""The OIDC client contract: what the IdP side registers and the Airflow side uses, from one spec.

Both sides are derived from the `ClientContract` this module computes, which is what keeps them from
drifting: the redirect URI the IdP accepts is the one Airflow sends, the claim the IdP emits is the
claim Airflow reads, the groups the IdP filters are the groups Airflow maps. Pure functions only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from components.spec import CustomAuthorizationServer, OidcIdp, OktaIdp, Spec

# Airflow 3 mounts the FAB app under /auth (Airflow 2 used /oauth-authorized/... at the root).
CALLBACK_PATH = "/auth/oauth-authorized/{provider}"
LOGIN_PATH = "/auth/login/"

# Environment variables the rendered webserver_config.py reads (set by the chart's apiServer.env).
CLIENT_ID_ENV = "AIRFLOW_OIDC_CLIENT_ID"
CLIENT_SECRET_ENV = "AIRFLOW_OIDC_CLIENT_SECRET"


@dataclass(frozen=True)
class ClientContract:
    """Everything both sides of one OIDC client must agree on."""

    provider: str
    """FAB provider name: in the callback path, the login button id and the username prefix."""
    issuer: str
    """Issuer URL; discovery at `<issuer>/.well-known/openid-configuration`."""
    redirect_uris: tuple[str, ...]
    post_logout_redirect_uris: tuple[str, ...]
    scopes: tuple[str, ...]
    groups_claim: str
    """Claim carrying the user's groups, in the ID token (or at userinfo)."""
    groups_scope: str | None
    """Scope that makes the IdP emit `groups_claim` (None: the IdP always emits it)."""
    username_claim: str
    """Stable claim naming the Airflow user: survives email changes and IdP app replacement."""
    role_by_group: dict[str, str]
    """IdP group -> Airflow role (the `access` list)."""
    default_role: str | None
    default_role_groups: tuple[str, ...]
    """Groups whose members (matching no `access` group) get `default_role`."""
    default_role_everyone: bool
    """Every signed-in user matching no `access` group gets `default_role`."""

    @property
    def secure_cookies(self) -> bool:
        """Airflow's cookies are `Secure` when the UI is served over https (every host but loopback http)."""
        return all(uri.startswith("https://") for uri in self.redirect_uris)

    @property
    def claimed_groups(self) -> tuple[str, ...]:
        """The groups the IdP must put in the groups claim: mapped ones, then default-role ones."""
        return tuple(self.role_by_group) + self.default_role_groups


def slug(value: str) -> str:
    """Lower-case letters, digits and underscores: safe in Okta scope and claim names."""
    return re.sub(r"[^a-z0-9]+", "_", value.lower()).strip("_")


def okta_org_url(org_name: str | None, base_url: str | None) -> str | None:
    """The Okta org URL the provider talks to (`okta:orgName` + `okta:baseUrl`)."""
    if not org_name:
        return None
    return f"https://{org_name}.{base_url or 'okta.com'}"


def okta_scope_and_claim(stack: str) -> tuple[str, str]:
    """Per-stack names on a custom authorization server, so team stacks on one server never collide."""
    name = slug(f"airflow_{stack}")
    return f"{name}_groups", f"{name}_groups"


def client_contract(spec: Spec, *, stack: str, okta_org: str | None = None) -> ClientContract:
    """Derive the client contract from the spec, the stack name and (Okta) the org URL."""
    idp = spec.idp
    provider = idp.kind
    callback = spec.public_url + CALLBACK_PATH.format(provider=provider)
    common = dict(
        provider=provider,
        redirect_uris=(callback,),
        post_logout_redirect_uris=(spec.public_url + LOGIN_PATH,),
        role_by_group={rule.group: rule.role for rule in spec.access},
        default_role=spec.defaultRole,
        default_role_groups=tuple(spec.signIn.extraGroups),
        default_role_everyone=spec.signIn.everyone,
    )
    if isinstance(idp, OktaIdp):
        org = idp.orgUrl or okta_org
        if not org:
            raise ValueError("the Okta org URL is unknown: set okta:orgName (and okta:baseUrl) or idp.orgUrl")
        server = idp.authorizationServer
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
            groups_claim=claim,
            groups_scope=scope,
            username_claim="sub",  # Okta's user id: stable across email changes and app replacement
            **common,  # type: ignore[arg-type]
        )
    assert isinstance(idp, OidcIdp)
    return ClientContract(
        issuer=idp.issuer,
        scopes=tuple(idp.scopes),
        groups_claim=idp.groupsClaim,
        groups_scope=None,
        username_claim=idp.usernameClaim,
        **common,  # type: ignore[arg-type]
    )


def okta_group_filter(groups: tuple[str, ...]) -> str:
    """An anchored regex matching exactly these group names (Okta evaluates Java regexes)."""
    return "^(" + "|".join(_java_regex_escape(group) for group in groups) + ")$"


def _java_regex_escape(text: str) -> str:
    return re.sub(r"([\\^$.|?*+()\[\]{}])", r"\\\1", text)
