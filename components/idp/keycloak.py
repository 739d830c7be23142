"""Keycloak (`idp.kind: keycloak`): the OpenID client, its groups mapper, the groups and (optionally) the realm.

The claim values are top-level Keycloak group names: the mapper emits them without their path.
Keycloak lets every user of a realm authenticate to every client of it, so who may sign in is
decided by Airflow's security manager alone: a user in no mapped group is refused (no user row).
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from components.contract import ClientContract, common_contract, slug
from components.idp.base import (
    IdpClient,
    IdpModel,
    ProviderConfig,
    ProviderConfigError,
    program_secret,
    secret_generation,
)
from components.model import at, require_url

if TYPE_CHECKING:
    import pulumi

    from components.access import GroupGrant, ServiceAccountGrant
    from components.service_accounts import ServiceAccountContract, ServiceAccountIdentities
    from components.spec import ServiceAccount, Spec

CLIENT_TYPE = "keycloak:openid/client:Client"
MAPPER_TYPE = "keycloak:openid/groupMembershipProtocolMapper:GroupMembershipProtocolMapper"
GROUP_TYPE = "keycloak:index/group:Group"
REALM_TYPE = "keycloak:index/realm:Realm"
GET_GROUP = "keycloak:index/getGroup:getGroup"


class KeycloakIdp(IdpModel):
    """Keycloak: the program creates the OpenID client, the groups mapper and the `access` groups."""

    SDK: ClassVar[str | None] = "pulumi_keycloak"
    PROVIDER_CONFIG: ClassVar[Mapping[str, str]] = {"keycloak:url": "KEYCLOAK_URL"}
    GROUPS_BOUND_BY: ClassVar[str | None] = "by name"
    DEFAULTS_FROM_PROVIDER: ClassVar[Mapping[str, tuple[str, ...]]] = {"url": ("keycloak:url",)}
    PROVIDER_PACKAGE: ClassVar[str | None] = "keycloak"
    # The provider's own HTTP timeout (5 s) fails requests to a loaded Keycloak; 120 s unless the stack sets
    # `keycloak:clientTimeout` or KEYCLOAK_CLIENT_TIMEOUT.
    PROVIDER_DEFAULTS: ClassVar[Mapping[str, tuple[str, Any]]] = {"client_timeout": ("KEYCLOAK_CLIENT_TIMEOUT", 120)}
    # ForceNew in the Keycloak provider's schema: a client, group or mapper moved to another realm (or
    # a mapper to another client, a group under another parent) is a new resource. clientId updates in place.
    REPLACE_ON_CHANGE: ClassVar[Mapping[str, tuple[str, ...]]] = {
        CLIENT_TYPE: ("realmId",),
        GROUP_TYPE: ("realmId", "parentId"),
        MAPPER_TYPE: ("realmId", "clientId", "clientScopeId"),
    }

    kind: Literal["keycloak"]
    realm: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$",
        description="Realm of the client, users and groups; the issuer is `<url>/realms/<realm>`.",
    )
    url: str | None = Field(
        default=None,
        description="Keycloak URL browsers, Airflow and the program's Keycloak provider use (https; http only on "
        "loopback); the issuer is `<url>/realms/<realm>`. Default: `keycloak:url` (or KEYCLOAK_URL).",
    )
    createRealm: bool = Field(  # noqa: N815
        default=False, description="Create the realm (brute-force protection on, SSL required for external)."
    )
    createGroups: bool = Field(  # noqa: N815
        default=True, description="Create the `access` groups as top-level groups; false looks them up by name."
    )

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        require_url(value, what="url")
        return value.rstrip("/")

    # --- hooks ----------------------------------------------------------------------------------

    def check_spec(self, spec: Spec) -> None:
        # The mapper emits group names without their path (full_path off): a path can never match.
        groups: list[tuple[tuple[str | int, ...], str]] = [
            (("access", index, "group"), rule.group) for index, rule in enumerate(spec.access)
        ]
        groups += [(("signIn", "extraGroups", index), group) for index, group in enumerate(spec.signIn.extraGroups)]
        for loc, group in groups:
            if "/" in group:
                raise at(
                    loc,
                    f"{group!r} is a group path: Keycloak groups are named here by their top-level name "
                    "(the claim carries names without a path); use a top-level group such as "
                    f"{group.strip('/').split('/')[-1]!r}",
                )

    def check_provider(self, spec: Spec, provider: ProviderConfig) -> None:
        url = provider.get("keycloak:url")
        if self.url:
            if url and keycloak_split(self.url, url):
                raise ProviderConfigError(
                    f"airflow-oidc:spec.idp.url: {self.url!r} and keycloak:url {url.rstrip('/')!r} are one server "
                    "under two base paths: Airflow would trust the issuer "
                    f"{self.url}/realms/{self.realm} while the provider manages the realm under the other one "
                    "(only one is Keycloak's http-relative-path); give both the same base path, or remove one"
                )
            return
        if not url:
            raise ProviderConfigError(
                "keycloak:url is not set: set it (`pulumi config set keycloak:url https://sso.example.com`), "
                "or KEYCLOAK_URL, or airflow-oidc:spec.idp.url"
            )
        try:
            require_url(url, what="keycloak:url")
        except ValueError as error:
            raise ProviderConfigError(f"{error} (or set airflow-oidc:spec.idp.url)") from None

    def provider_settings(self, spec: Spec, provider: ProviderConfig) -> Mapping[str, Any]:
        """The provider talks to `keycloak:url` (or KEYCLOAK_URL) when the stack sets it (an internal admin endpoint,
        say), else to the server the spec names (`idp.url`): a stack that sets only `idp.url` works."""
        return {"url": provider.get("keycloak:url") or self.server_url(provider)}

    def fleet_names(self, spec: Spec, *, stack: str, provider: ProviderConfig) -> Mapping[str, str]:
        where = f"realm {self.realm} at {self.url or provider.get('keycloak:url') or 'the Keycloak server'}"
        names = {f"Keycloak client id in {where}": keycloak_client_id(stack)}
        if self.createRealm:
            names[f"Keycloak realm created at {self.url or provider.get('keycloak:url')}"] = self.realm
        if self.createGroups:
            # Keycloak refuses a second top-level group of the same name: two stacks cannot both create it.
            for group in (*(rule.group for rule in spec.access), *spec.signIn.extraGroups):
                names[f"Keycloak group {group!r} created in {where}"] = group
        return names

    # --- the access model (components/access.py) ------------------------------------------------

    ACCESS_NOTES: ClassVar[tuple[str, ...]] = (
        "Keycloak lets every user of the realm authenticate to every client: Airflow itself refuses "
        "users outside the groups and the audience",
    )

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

        path = keycloak_group_path(group)
        # What the mapper emits decides what binds: a full path is one group; a bare name is any
        # group of that name, at any depth.
        claim_value = path if path in contract.claim_values else group
        how = "created by the program" if self.createGroups else "looked up in the realm"
        if claim_value == path:
            binding = f"the group at path {path} ({how}); the `{contract.role_claim}` claim carries full paths"
        else:
            binding = (
                f"every group named {group!r} at any depth ({how} at {path}); the `{contract.role_claim}` "
                "claim carries bare names"
            )
        return GroupGrant(
            group=group, principal=path, binding=binding, claim_value=claim_value, role=role, key=key_of(loc)
        )

    def service_account_grant(
        self, spec: Spec, account: ServiceAccount, *, key: str, stack: str, provider: ProviderConfig
    ) -> ServiceAccountGrant:
        from components.access import ServiceAccountGrant
        from components.idp.keycloak_service_accounts import keycloak_service_account_client_id

        return ServiceAccountGrant(
            name=account.name,
            role=account.role,
            subject=keycloak_service_account_client_id(keycloak_client_id(stack), account.name),
            trust=f"client credentials of this confidential client in realm {self.realm}; its tokens name it in `azp`",
            key=key,
        )

    # --- service accounts (components/idp/keycloak_service_accounts.py) --------------------------

    def service_accounts_refusal(self, spec: Spec) -> str | None:
        return None

    def service_account_contract(
        self, spec: Spec, contract: ClientContract, *, stack: str, provider: ProviderConfig
    ) -> ServiceAccountContract:
        from components.idp.keycloak_service_accounts import keycloak_service_account_contract

        return keycloak_service_account_contract(contract.issuer, keycloak_client_id(stack))

    def provision_service_accounts(
        self,
        name: str,
        *,
        spec: Spec,
        contract: ClientContract,
        accounts: ServiceAccountContract,
        client: IdpClient,
        stack: str,
        today: datetime.date,
        opts: pulumi.ResourceOptions,
    ) -> ServiceAccountIdentities:
        from components.idp.keycloak_service_accounts import provision_keycloak_service_accounts

        assert isinstance(client, KeycloakClient)
        return provision_keycloak_service_accounts(
            name,
            spec=spec,
            realm_id=client.realm_id,
            airflow_client_id=keycloak_client_id(stack),
            access_token_lifespan=keycloak_client_settings(spec, contract, stack).access_token_lifespan,
            today=today,
            opts=opts,
        )

    def server_url(self, provider: ProviderConfig) -> str:
        """The Keycloak server: `idp.url`, else `keycloak:url`."""
        url = self.url or provider.get("keycloak:url")
        if not url:
            raise ValueError("the Keycloak URL is unknown: set keycloak:url or idp.url")
        return url.rstrip("/")

    def contract(self, spec: Spec, *, stack: str, provider: ProviderConfig) -> ClientContract:
        return ClientContract(
            issuer=f"{self.server_url(provider)}/realms/{self.realm}",
            scopes=("openid", "email", "profile"),
            role_claim="groups",
            # The mapper is attached to this client: the claim comes with every token, no scope needed.
            role_claim_scope=None,
            username_claim="sub",  # Keycloak's user id: stable across renames and email changes
            **common_contract(spec, provider="keycloak"),
        )

    def provision(
        self,
        name: str,
        *,
        spec: Spec,
        contract: ClientContract,
        stack: str,
        today: datetime.date,
        opts: pulumi.ResourceOptions,
    ) -> IdpClient:
        return KeycloakClient(name, spec=spec, contract=contract, stack=stack, today=today, opts=opts)

    @staticmethod
    def mock_outputs(type_: str, name: str, inputs: Mapping[str, Any]) -> dict[str, Any] | None:
        from components.mock_values import fake_guid

        if type_ == CLIENT_TYPE:
            # `id` is the client's internal id (a GUID), which the mapper takes; `clientId` is the OAuth one.
            return {"id": fake_guid(name), "clientSecret": inputs.get("clientSecret")}
        if type_ == MAPPER_TYPE:
            return {"id": fake_guid(name)}
        if type_ == GROUP_TYPE:
            return {"id": fake_guid(name), "path": "/" + str(inputs.get("name", ""))}
        if type_ == REALM_TYPE:
            return {"id": inputs.get("realm")}  # Keycloak's realm id is its name
        return None

    @staticmethod
    def mock_call(token: str, args: Mapping[str, Any]) -> dict[str, Any] | None:
        if token == GET_GROUP:
            realm, group = str(args.get("realmId", "")), str(args.get("name", ""))
            return {"id": looked_up_group_id(realm, group), "name": group, "realmId": realm, "path": "/" + group}
        return None


def keycloak_split(public: str, admin: str) -> bool:
    """Whether the URL Airflow trusts (`idp.url`) and the provider's (`keycloak:url`) split one server: the
    same host and port under different base paths (one realm URL is wrong). Another host is how an internal
    admin endpoint of the same Keycloak is named (its `hostname` setting keeps the public issuer): allowed."""

    def server(url: str) -> tuple[str | None, int, str]:
        parts = urlsplit(url.rstrip("/"))
        return parts.hostname, parts.port or (443 if parts.scheme == "https" else 80), parts.path.rstrip("/")

    (host, port, path), (admin_host, admin_port, admin_path) = server(public), server(admin)
    return (host, port) == (admin_host, admin_port) and path != admin_path


def keycloak_group_path(group: str) -> str:
    """The group's full path in the realm: a bare name is the top-level group (`/name`); a path stays."""
    return group if group.startswith("/") else "/" + group


def looked_up_group_id(realm: str, group: str) -> str:
    """The id the mock engine gives an existing group (so a capture can name it)."""
    from components.mock_values import fake_guid

    return fake_guid(f"group:{realm}/{group}")


def keycloak_client_id(stack: str) -> str:
    """The OAuth client id: one per stack, so several stacks can share a realm."""
    return "airflow-" + re.sub(r"[^a-z0-9-]+", "-", stack.lower()).strip("-")


@dataclass(frozen=True)
class KeycloakClientSettings:
    """The client's settings, derived from the spec and the contract (pure, testable without Pulumi)."""

    realm: str
    client_id: str
    name: str
    redirect_uris: list[str]
    post_logout_redirect_uris: list[str]
    access_token_lifespan: str
    """Seconds, as a string (the provider's type)."""
    claim: str
    groups: tuple[str, ...]


def keycloak_client_settings(spec: Spec, contract: ClientContract, stack: str) -> KeycloakClientSettings:
    assert isinstance(spec.idp, KeycloakIdp)
    return KeycloakClientSettings(
        realm=spec.idp.realm,
        client_id=keycloak_client_id(stack),
        name=f"Airflow ({spec.name})",
        redirect_uris=list(contract.redirect_uris),
        post_logout_redirect_uris=list(contract.post_logout_redirect_uris),
        access_token_lifespan=str(spec.access_token_minutes * 60),
        claim=contract.role_claim,
        groups=contract.claim_values,
    )


class KeycloakClient(IdpClient):
    """A confidential Keycloak OpenID client for Airflow: authorization code + PKCE S256 only, exactly
    Airflow's redirect URI, a group-membership mapper emitting top-level group names, the groups."""

    def __init__(
        self,
        name: str,
        *,
        spec: Spec,
        contract: ClientContract,
        stack: str,
        today: datetime.date,
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
        self._groups(keycloak, name, spec, realm_id, settings.groups, guarded)
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
            # On, the claim would read "/group" and match no `access` group.
            full_path=False,
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
        groups: tuple[str, ...],
        opts: pulumi.ResourceOptions,
    ) -> dict[str, pulumi.Output[str]]:
        import pulumi

        assert isinstance(spec.idp, KeycloakIdp)
        ids: dict[str, pulumi.Output[str]] = {}
        for group in groups:
            if spec.idp.createGroups:
                created = keycloak.Group(f"{name}-group-{slug(group)}", realm_id=realm_id, name=group, opts=opts)
                ids[group] = created.id
            else:
                found = keycloak.get_group_output(realm_id=realm_id, name=group, opts=pulumi.InvokeOptions(parent=self))
                ids[group] = found.id
        return ids
