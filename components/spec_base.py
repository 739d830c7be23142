"""The public contract: the stack config key ``airflow-oidc:spec``, as pydantic v2 models.

Key names are an API: fields may be added, never renamed. Every model forbids unknown keys, so a
typo is an error rather than a silently ignored setting. Defaults that depend on the environment
(``prod`` gets the strictest) are resolved by properties, never stored twice.

This module is below the IdP kinds: a kind's model (`components/idp/<kind>/model.py`) imports `Spec` from
here. The `idp` key is the one field this module cannot type: it is a union of the kinds' models, which
`components/spec.py` builds from the registry (`components/idp/__init__.py`) and completes `Spec` with.
Parse a spec through `components.spec.parse_spec`, never with `Spec` from here alone.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, field_validator, model_validator

from components.model import LOOPBACK_HOSTS, Model, Role, at
from components.spec_airflow import AirflowSettings

if TYPE_CHECKING:
    from typing import Any as Idp  # the kinds' union (components/spec.py); the kinds import this module


class AccessRule(Model):
    """One IdP group and the Airflow role its members get."""

    group: str = Field(
        min_length=1,
        max_length=255,
        description="The IdP group, by what the kind binds: a name exactly as the IdP spells it; Okta: or a "
        "group id (`00g…`); Keycloak: a path (`/data/airflow-admins`; a bare name is the top-level group); "
        "Entra ID: or an object id; Google: the group's email.",
    )
    role: Role = Field(description="Airflow role for the group's members: Admin, Op, User or Viewer.")

    @field_validator("role", mode="before")
    @classmethod
    def _role_not_public(cls, value: Any) -> Any:
        if value == "Public":
            raise ValueError("'Public' is Airflow's role for anonymous requests and cannot be mapped; use Viewer")
        return value

    @field_validator("group")
    @classmethod
    def _group_is_trimmed(cls, value: str) -> str:
        if value != value.strip():
            raise ValueError(f"group {value!r} has leading or trailing spaces")
        return value


# Keys of `serviceAccounts[]` that only some kinds accept, and which kinds.
KIND_ONLY_SERVICE_ACCOUNT_KEYS: dict[str, tuple[str, ...]] = {
    "githubRepository": ("azuread",),
    "githubEnvironment": ("azuread",),
    "clientId": ("oidc",),
}


class ServiceAccount(Model):
    """A machine identity for automation (a CI/CD pipeline): an IdP client that gets access tokens
    with the client-credentials grant, which Airflow's `POST /auth/token` exchanges for an Airflow
    API token of the user `name`, holding exactly `role`. No person and no password is involved."""

    name: str = Field(
        description="The account's name: its Airflow username and its name at the IdP. Lower-case letters, "
        "digits and dashes (2-40), unique; never `_`, which only people's usernames `<provider>_<sub>` carry."
    )
    role: Role = Field(description="Airflow role of the account: Admin, Op, User or Viewer (as in `access`).")
    description: str | None = Field(
        default=None, max_length=200, description="What the account is for (shown at the IdP)."
    )
    githubRepository: str | None = Field(  # noqa: N815
        default=None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9-]*/[A-Za-z0-9._-]+$",
        description="Entra ID only: `owner/repo` whose GitHub Actions jobs sign in as this account with "
        "their OIDC token (a federated identity credential: no secret at all).",
    )
    githubEnvironment: str | None = Field(  # noqa: N815
        default=None,
        min_length=1,
        max_length=255,
        description="Entra ID only, with githubRepository: only jobs of this GitHub environment "
        "(subject `repo:<owner/repo>:environment:<name>`); unset: the repository's `main` branch.",
    )
    clientId: str | None = Field(  # noqa: N815
        default=None,
        min_length=1,
        description="`oidc` only: the client id your provider issued to this account; default "
        "`airflow-<team-env>-<name>`, for providers that let you choose it.",
    )

    @field_validator("name")
    @classmethod
    def _name_shape(cls, value: str) -> str:
        if "_" in value:
            raise ValueError(
                f"{value!r} contains '_': people's Airflow usernames are `<provider>_<sub>`, "
                "so a service account's name never has one; use dashes"
            )
        if not re.fullmatch(r"[a-z][a-z0-9-]{0,38}[a-z0-9]", value):
            raise ValueError(
                f"{value!r} is not a service account name: 2-40 lower-case letters, digits and dashes, "
                "starting with a letter and not ending with a dash"
            )
        return value

    @field_validator("role", mode="before")
    @classmethod
    def _role_not_public(cls, value: Any) -> Any:
        if value == "Public":
            raise ValueError("'Public' is Airflow's role for anonymous requests; use Viewer")
        return value

    @model_validator(mode="after")
    def _environment_needs_repository(self) -> ServiceAccount:
        if self.githubEnvironment and not self.githubRepository:
            raise at(("githubEnvironment",), "githubEnvironment needs githubRepository (the repository it is in)")
        return self


class SignIn(Model):
    """Who may sign in beyond the `access` groups (needed only for `defaultRole`)."""

    everyone: bool = Field(
        default=False,
        description="Every user of the IdP org may sign in; users in no `access` group get `defaultRole`.",
    )
    extraGroups: list[str] = Field(  # noqa: N815 - the key is the API
        default_factory=list,
        description="Further IdP groups assigned to the app; their members get `defaultRole`.",
    )


class Tokens(Model):
    """Token and session lifetimes. Unset values take the environment's default."""

    accessTokenMinutes: int | None = Field(  # noqa: N815
        default=None,
        ge=5,
        le=1440,
        description="IdP access-token lifetime (Okta custom servers accept 5-1440). Default: 15 in prod, else 60.",
    )
    sessionMinutes: int | None = Field(  # noqa: N815
        default=None,
        ge=5,
        le=10080,
        description="Airflow session lifetime from login; bounds Airflow's API JWT. Default: 480 in prod, else 720.",
    )
    idleMinutes: int | None = Field(  # noqa: N815
        default=None,
        ge=5,
        le=10080,
        description="Airflow idle timeout: a session unused this long ends. Default: 60 in prod, else 240.",
    )


class ClientSecret(Model):
    """Where the OIDC client secret lives and how often it is replaced."""

    store: Literal["kubernetes", "gcp-secret-manager"] = Field(
        default="kubernetes",
        description="Secret store: `kubernetes` (a Secret read only by the api-server) or `gcp-secret-manager` "
        "(Google Secret Manager, synced by External Secrets Operator; needs `gcp:project`).",
    )
    rotationDays: int = Field(default=90, ge=1, le=3650, description="Replace the secret every N days.")  # noqa: N815


class GoogleCloud(Model):
    """The Google Cloud project the stack uses (`gcp:project`), with `idp.kind: google` or
    `clientSecret.store: gcp-secret-manager`; other stacks use no Google API and ignore it."""

    enableApis: bool = Field(  # noqa: N815
        default=True,
        description="Enable the Google Cloud APIs the stack calls, in `gcp:project`: `cloudidentity.googleapis.com` "
        "(idp.kind google) and `secretmanager.googleapis.com` (clientSecret.store gcp-secret-manager); never "
        "disabled on destroy. false where the platform team enables APIs centrally: the program then assumes them.",
    )


class Spec(Model):
    """One Airflow with single sign-on: the IdP side and the Airflow side."""

    environment: str = Field(
        pattern=r"^[a-z][a-z0-9-]{0,19}$", description="Environment name; `prod` gets the strictest defaults."
    )
    team: str | None = Field(default=None, pattern=r"^[a-z][a-z0-9-]{0,29}$", description="Team: names and labels.")
    hostname: str = Field(
        description="Public host of the UI (https). `host[:port]`; `http://` only for localhost/127.0.0.1."
    )
    idp: Idp = Field(description="The identity provider: `kind`, then that kind's own keys.")  # completed by spec.py
    access: list[AccessRule] = Field(min_length=1, description="IdP group -> Airflow role. Required, non-empty.")
    defaultRole: Role | None = Field(  # noqa: N815
        default=None,
        description="Role for users who may sign in but match no group (see signIn); null refuses them.",
    )
    signIn: SignIn = Field(default_factory=SignIn, description="Who may sign in beyond the `access` groups.")  # noqa: N815
    tokens: Tokens = Field(default_factory=Tokens)
    clientSecret: ClientSecret = Field(default_factory=ClientSecret)  # noqa: N815
    airflow: AirflowSettings = Field(default_factory=AirflowSettings)
    googleCloud: GoogleCloud = Field(  # noqa: N815
        default_factory=GoogleCloud,
        description="The Google Cloud project's APIs (kind google, store gcp-secret-manager).",
    )
    serviceAccounts: list[ServiceAccount] = Field(  # noqa: N815
        default_factory=list,
        description="Machine identities for automation (client credentials, no password): each exchanges "
        "its IdP access token at `POST /auth/token` for an Airflow API token with its role.",
    )

    @field_validator("serviceAccounts")
    @classmethod
    def _service_account_names_once(cls, value: list[ServiceAccount]) -> list[ServiceAccount]:
        seen: dict[str, int] = {}
        for index, account in enumerate(value):
            if account.name in seen:
                raise at(
                    (index, "name"),
                    f"{account.name!r} is also serviceAccounts[{seen[account.name]}]; names are Airflow usernames: "
                    "keep one entry",
                )
            seen[account.name] = index
        return value

    @field_validator("hostname")
    @classmethod
    def _hostname(cls, value: str) -> str:
        scheme, host, port = split_hostname(value)
        if "*" in host:
            raise ValueError(f"{value!r}: wildcard hosts are refused; name the one host of the UI")
        if scheme == "http" and host not in LOOPBACK_HOSTS:
            raise ValueError(f"{value!r}: http is allowed only for localhost or 127.0.0.1; use https")
        if not re.fullmatch(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*", host):
            raise ValueError(f"{value!r} is not a host name (lower-case letters, digits, dots and dashes)")
        return value

    @field_validator("access")
    @classmethod
    def _groups_once(cls, value: list[AccessRule]) -> list[AccessRule]:
        seen: dict[str, int] = {}
        for index, rule in enumerate(value):
            if rule.group in seen:
                raise at(
                    (index, "group"),
                    f"{rule.group!r} is mapped twice (also access[{seen[rule.group]}]); "
                    "a group gives one role: keep one entry",
                )
            seen[rule.group] = index
        return value

    @model_validator(mode="after")
    def _cross_checks(self) -> Spec:
        mapped = {rule.group for rule in self.access}
        if self.defaultRole and not (self.signIn.everyone or self.signIn.extraGroups):
            raise at(
                ("defaultRole",),
                f"{self.defaultRole!r} would apply to no one: only members of `access` groups may sign in; "
                "set signIn.everyone: true or list signIn.extraGroups",
            )
        if (self.signIn.everyone or self.signIn.extraGroups) and not self.defaultRole:
            raise at(("signIn",), "users beyond `access` may sign in but defaultRole is null: set defaultRole")
        for index, group in enumerate(self.signIn.extraGroups):
            if group in mapped:
                raise at(("signIn", "extraGroups", index), f"{group!r} is already an `access` group")
        if self.is_prod:
            if self.airflow.database is not None and self.airflow.database.bundled:
                raise at(("airflow", "database", "bundled"), "prod refuses the bundled Postgres; set secretName")
            if self.airflow.database is None:
                raise at(("airflow", "database"), "prod needs an external database: set secretName")
        if self.airflow.tls is None and not self.is_loopback:
            raise at(
                ("airflow", "tls"),
                f"{self.hostname!r} is served over https: set secretName or issuer "
                "(or terminatedUpstream: true when a load balancer in front of the ingress ends TLS)",
            )
        if self.airflow.tls is not None and self.airflow.tls.terminatedUpstream:
            if split_hostname(self.hostname)[0] == "http":
                raise at(
                    ("airflow", "tls", "terminatedUpstream"),
                    f"{self.hostname!r} is served over http: a load balancer ending TLS serves https://<host>",
                )
            if self.airflow.trusts_every_peer():
                raise at(
                    ("airflow", "forwardedAllowIps"),
                    "with airflow.tls.terminatedUpstream the api-server learns the scheme and the client from "
                    "X-Forwarded-* headers: trust them only from the range your ingress controller's (or load "
                    "balancer's) requests come from, e.g. 10.0.0.0/8, never '*'",
                )
        if self.is_prod and self.airflow.trusts_every_peer():
            raise at(
                ("airflow", "forwardedAllowIps"),
                f"{self.airflow.forwardedAllowIps!r}: in prod the api-server never trusts X-Forwarded-* from every "
                "peer (anyone reaching the pod could claim https and another client address); set the ingress "
                "controller's pod range (e.g. 10.42.0.0/16), here or in stacks/defaults/prod.yaml (docs/stacks.md: "
                "Forwarded headers)",
            )
        self.idp.check_spec(self)
        if self.serviceAccounts:
            self.idp.check_service_accounts(self)
        return self

    # Derived values: properties, so a default never lives in two places.
    @property
    def is_prod(self) -> bool:
        return self.environment == "prod"

    @property
    def is_loopback(self) -> bool:
        return split_hostname(self.hostname)[1] in LOOPBACK_HOSTS

    @property
    def public_url(self) -> str:
        """`https://<host>[:port]`, the UI's origin and Airflow's `[api] base_url`."""
        scheme, host, port = split_hostname(self.hostname)
        return f"{scheme}://{host}" + (f":{port}" if port else "")

    @property
    def host(self) -> str:
        return split_hostname(self.hostname)[1]

    @property
    def access_token_minutes(self) -> int:
        return self.tokens.accessTokenMinutes or (15 if self.is_prod else 60)

    @property
    def session_minutes(self) -> int:
        return self.tokens.sessionMinutes or (480 if self.is_prod else 720)

    @property
    def idle_minutes(self) -> int:
        return min(self.tokens.idleMinutes or (60 if self.is_prod else 240), self.session_minutes)

    @property
    def api_server_replicas(self) -> int:
        return self.airflow.apiServerReplicas or (2 if self.is_prod else 1)

    @property
    def name(self) -> str:
        """Readable name for labels and IdP display names: `<team>-<environment>` or `<environment>`."""
        return f"{self.team}-{self.environment}" if self.team else self.environment


def split_hostname(value: str) -> tuple[str, str, int | None]:
    """`host[:port]`, `https://host[:port]` or `http://host[:port]` -> (scheme, host, port)."""
    match = re.fullmatch(r"(?:(https?)://)?([^/:]+)(?::(\d{1,5}))?/?", value.strip())
    if not match:
        raise ValueError(f"{value!r} is not host[:port] (no path, no query)")
    if match.group(3) and not 0 < int(match.group(3)) < 65536:
        raise ValueError(f"{value!r}: the port must be 1-65535")
    scheme, host, port = match.groups()
    return (scheme or "https"), host, (int(port) if port else None)
