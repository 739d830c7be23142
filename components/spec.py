"""The public contract: the stack config key ``airflow-oidc:spec``, as pydantic v2 models.

Key names are an API: fields may be added, never renamed. Every model forbids unknown keys, so a
typo is an error rather than a silently ignored setting. Defaults that depend on the environment
(``prod`` gets the strictest) are resolved by properties, never stored twice.
"""

from __future__ import annotations

import ipaddress
import re
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union

from pydantic import Field, ValidationError, field_validator, model_validator

from components.idp import KINDS, kind_names
from components.idp.base import IdpModel
from components.idp.oidc import OidcIdp
from components.idp.okta import CustomAuthorizationServer, OktaIdp, OrgAuthorizationServer
from components.key_hints import missing_key_message, unknown_key_message
from components.model import CONFIG_KEY, LOOPBACK_HOSTS, LocatedError, Model, Role, at, require_url
from components.service_accounts import AUTH_VERSION_ANNOTATION, ROLLED_COMPONENTS

__all__ = [
    "CONFIG_KEY",
    "CustomAuthorizationServer",
    "OidcIdp",
    "OktaIdp",
    "OrgAuthorizationServer",
    "Role",
    "Spec",
    "SpecError",
    "parse_spec",
]

DEFAULT_CHART_REPOSITORY = "https://airflow.apache.org"
"""The official chart's repository."""

# Keys of the chart's values that the program owns. Helm replaces lists and the program's maps carry
# the SSO wiring, so an override here would silently drop it: refused, with the reason.
OWNED_VALUE_PATHS: dict[str, str] = {
    "apiServer.apiServerConfig": "the rendered webserver_config.py (the SSO wiring)",
    "apiServer.apiServerConfigConfigMapName": "it would replace the rendered webserver_config.py",
    "apiServer.env": "a list: Helm would replace the OIDC client id/secret and FORWARDED_ALLOW_IPS",
    "apiServer.podAnnotations.airflow-oidc/config-version": "it rolls the api-server pods when the SSO config "
    "or the client secret changes",
    "apiServer.replicas": "set airflow.apiServerReplicas instead",
    "apiServer.serviceAccount.name": "named by the program: an IdP-side Workload Identity binding names it",
    "apiServer.serviceAccount.annotations": "set by the IdP kind (e.g. the GKE Workload Identity of kind: google)",
    "apiServer.args": "it carries --proxy-headers, without which FORWARDED_ALLOW_IPS is ignored",
    "apiServer.command": "the program runs the chart's api-server command with --proxy-headers",
    "config.core.auth_manager": "the program's FAB auth manager (service-account tokens, readable audit names)",
    "config.api.base_url": "derived from hostname; the redirect URI depends on it",
    "config.fab.enable_proxy_fix": "without it the redirect URI turns http behind the ingress",
    "config.fab.session_lifetime_minutes": "set tokens.idleMinutes instead",
    "config.fab.session_max_lifetime_minutes": "set tokens.sessionMinutes instead",
    "config.api_auth.jwt_expiration_time": "set tokens.sessionMinutes instead",
    "secret": "a list reaching every container and task pod; secrets are wired by the program",
    "env": "a list: Helm would replace the program's entries (PYTHONPATH names the auth-manager module)",
    "volumes": "a list for every Airflow container: it mounts the auth-manager module (use <component>.extraVolumes)",
    "volumeMounts": "a list for every Airflow container: it mounts the auth-manager module "
    "(use <component>.extraVolumeMounts)",
    f"airflowPodAnnotations.{AUTH_VERSION_ANNOTATION}": "the program sets it per long-running component; here it "
    "would reach the migration Job's immutable pod template and fail upgrades (apache/airflow#27561)",
    **{
        f"{component}.podAnnotations.{AUTH_VERSION_ANNOTATION}": "it rolls the component's pods when the "
        "auth-manager module or its service accounts change"
        for component in ROLLED_COMPONENTS
    },
    "extraEnv": "secrets are wired by the program",
    "extraEnvFrom": "secrets are wired by the program",
    "ingress": "derived from hostname and airflow.tls",
    "fernetKey": "the program keeps the Fernet key in a protected Secret",
    "fernetKeySecretName": "the program keeps the Fernet key in a protected Secret",
    "apiSecretKey": "shared across api-server replicas by the program",
    "apiSecretKeySecretName": "shared across api-server replicas by the program",
    "jwtSecret": "shared across api-server replicas by the program",
    "jwtSecretName": "shared across api-server replicas by the program",
    "webserverSecretKey": "shared across replicas by the program",
    "webserverSecretKeySecretName": "shared across replicas by the program",
    "data": "set airflow.database instead",
    "postgresql": "set airflow.database instead",
    "createUserJob": "no local admin with a password: users come from the IdP",
    "webserver.defaultUser": "no local admin with a password: users come from the IdP",
    "migrateDatabaseJob.useHelmHooks": "a hook would deadlock the first install",
    "migrateDatabaseJob.applyCustomEnv": "off, the job would not get PYTHONPATH and could not load the auth manager",
    "databaseCleanup.applyCustomEnv": "off, the job would not get PYTHONPATH and could not load the auth manager",
    "images.airflow": "set airflow.image instead",
    "airflowVersion": "derived from airflow.image.tag",
    "defaultAirflowTag": "derived from airflow.image.tag",
}


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


if TYPE_CHECKING:
    Idp = IdpModel
else:
    # A discriminated union of every registered kind's `idp` model (components/idp/__init__.py).
    Idp = Annotated[Union[KINDS], Field(discriminator="kind")]  # noqa: UP007 - built from a tuple


class Image(Model):
    """The Airflow image the chart runs."""

    repository: str = Field(default="apache/airflow", min_length=1, description="Image repository.")
    tag: str = Field(default="3.3.2", pattern=r"^3\.\d+\.\d+", description="Airflow 3 image tag.")
    digest: str | None = Field(default=None, pattern=r"^sha256:[0-9a-f]{64}$", description="Pins the image.")


class Database(Model):
    """The metadata database: an external one by Secret (required in prod) or the chart's bundled one."""

    secretName: str | None = Field(  # noqa: N815
        default=None, description="Secret with key `connection`: the SQLAlchemy URL of an external Postgres."
    )
    bundled: bool = Field(default=False, description="The chart's bundled Postgres (not for production).")

    @model_validator(mode="after")
    def _exactly_one(self) -> Database:
        if bool(self.secretName) == self.bundled:
            raise ValueError("set exactly one of secretName (external database) or bundled: true")
        return self


class CertIssuer(Model):
    """A cert-manager issuer that obtains the ingress certificate."""

    name: str = Field(min_length=1, description="The issuer's name.")
    kind: Literal["ClusterIssuer", "Issuer"] = Field(default="ClusterIssuer", description="ClusterIssuer or Issuer.")


class Tls(Model):
    """Where HTTPS ends: at the ingress, with a certificate (a Secret you provide, or one cert-manager
    issues), or at a load balancer in front of the ingress (`terminatedUpstream`)."""

    secretName: str | None = Field(default=None, description="TLS Secret in the namespace.")  # noqa: N815
    issuer: CertIssuer | None = Field(default=None, description="cert-manager issuer; the Secret name is derived.")
    terminatedUpstream: bool = Field(  # noqa: N815
        default=False,
        description="TLS ends at a load balancer in front of the ingress (AWS ALB, Google Cloud Load Balancing, "
        "Azure Front Door): the ingress carries no TLS block and no certificate and serves plain HTTP, while users "
        "still reach `https://<hostname>` (Airflow's base_url and the redirect URIs stay https). Needs "
        "`airflow.forwardedAllowIps` set to the range the forwarded requests come from (never `*`) and an ingress "
        "controller that passes the load balancer's X-Forwarded-Proto on.",
    )

    @model_validator(mode="after")
    def _one_source(self) -> Tls:
        if self.terminatedUpstream:
            if self.secretName or self.issuer:
                raise at(
                    ("terminatedUpstream",),
                    "true means no certificate at the ingress (the load balancer holds it): remove secretName and "
                    "issuer, or set terminatedUpstream: false",
                )
            return self
        if not self.secretName and not self.issuer:
            raise ValueError(
                "set secretName or issuer (or terminatedUpstream: true when a load balancer in front of the "
                "ingress ends TLS)"
            )
        return self


class AirflowSettings(Model):
    """The Airflow side: the official chart on Kubernetes."""

    namespace: str = Field(
        default="airflow", pattern=r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", description="Kubernetes namespace."
    )
    createNamespace: bool = Field(default=True, description="Create the namespace.")  # noqa: N815
    releaseName: str = Field(  # noqa: N815
        default="airflow", pattern=r"^[a-z0-9]([-a-z0-9]{0,38}[a-z0-9])?$", description="Helm release name."
    )
    image: Image = Field(default_factory=Image)
    chartVersion: str = Field(  # noqa: N815
        default="1.19.0", pattern=r"^\d+\.\d+\.\d+$", description="Version of the official chart (airflow.apache.org)."
    )
    chartRepository: str | None = Field(  # noqa: N815
        default=None,
        description="Where Helm gets the chart: a chart repository (`https://...`; default "
        f"`{DEFAULT_CHART_REPOSITORY}`) or an OCI registry path holding `airflow` (`oci://registry.example.com/charts`).",
    )
    chartPath: str | None = Field(  # noqa: N815
        default=None,
        min_length=1,
        description="A local copy of the chart (a directory with Chart.yaml, relative to the project directory): "
        "vendored or air-gapped, no network at preview or up. Its version must be chartVersion.",
    )
    wait: bool = Field(
        default=True,
        description="Wait for the release's pods and jobs to be ready (Helm --wait); false only where pods cannot run "
        "(a cluster without nodes) or something else waits for them.",
    )
    apiServerReplicas: int | None = Field(  # noqa: N815
        default=None, ge=1, le=20, description="api-server replicas; default 2 in prod, 1 elsewhere."
    )
    database: Database | None = Field(default=None, description="Required in prod; default elsewhere: bundled.")
    tls: Tls | None = Field(
        default=None,
        description="Where HTTPS ends: a certificate at the ingress, or a load balancer in front of it "
        "(terminatedUpstream); required unless the host is loopback.",
    )
    ingressClassName: str | None = Field(default=None, description="Ingress class, e.g. `nginx`.")  # noqa: N815
    forwardedAllowIps: str = Field(  # noqa: N815
        default="*",
        description="Addresses the api-server trusts for X-Forwarded-* (uvicorn FORWARDED_ALLOW_IPS): IP "
        "addresses and networks, comma-separated (`10.42.0.0/16,10.43.0.10`), the ingress controller's pod "
        "range. `*` (any peer) is refused in prod; the environment defaults may set it.",
    )
    values: dict[str, Any] = Field(
        default_factory=dict, description="Extra Helm values, merged last; keys the program owns are refused."
    )

    @field_validator("chartRepository")
    @classmethod
    def _chart_repository(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if value.startswith("oci://"):
            if not re.fullmatch(r"oci://[a-z0-9.-]+(:\d+)?(/[a-z0-9._/-]+)?", value.rstrip("/")):
                raise ValueError(f"{value!r} is not an OCI registry path such as oci://registry.example.com/charts")
            return value.rstrip("/")
        require_url(value, what="chartRepository")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _one_chart_source(self) -> AirflowSettings:
        if self.chartPath is not None and self.chartRepository is not None:
            raise at(("chartPath",), "set chartPath (a local chart) or chartRepository, not both")
        return self

    @property
    def chart_repository(self) -> str:
        """The chart repository or OCI registry path (ignored with chartPath)."""
        return self.chartRepository or DEFAULT_CHART_REPOSITORY

    @field_validator("forwardedAllowIps")
    @classmethod
    def _forwarded_allow_ips(cls, value: str) -> str:
        # uvicorn takes a malformed entry as a literal that never matches a peer, silently: refuse it here.
        for item in (part.strip() for part in value.split(",")):
            if item == "*":
                continue
            try:
                ipaddress.ip_network(item) if "/" in item else ipaddress.ip_address(item)
            except ValueError:
                raise ValueError(
                    f"{item!r} is not an IP address or network (`10.42.0.0/16`, host bits zero) or `*`"
                ) from None
        return value

    def trusts_every_peer(self) -> bool:
        """`*`, or a network that spans every address (`0.0.0.0/0`, `::/0`)."""
        items = [part.strip() for part in self.forwardedAllowIps.split(",")]
        return any(item == "*" or ("/" in item and ipaddress.ip_network(item).prefixlen == 0) for item in items)

    @field_validator("values")
    @classmethod
    def _no_owned_keys(cls, value: dict[str, Any]) -> dict[str, Any]:
        for path in _dotted_paths(value):
            for owned, reason in OWNED_VALUE_PATHS.items():
                if path == owned or path.startswith(owned + "."):
                    raise ValueError(f"{path!r} is owned by the program ({reason})")
        return value


class Spec(Model):
    """One Airflow with single sign-on: the IdP side and the Airflow side."""

    environment: str = Field(
        pattern=r"^[a-z][a-z0-9-]{0,19}$", description="Environment name; `prod` gets the strictest defaults."
    )
    team: str | None = Field(default=None, pattern=r"^[a-z][a-z0-9-]{0,29}$", description="Team: names and labels.")
    hostname: str = Field(
        description="Public host of the UI (https). `host[:port]`; `http://` only for localhost/127.0.0.1."
    )
    idp: Idp = Field(
        description="The identity provider: `kind` (" + ", ".join(kind_names()) + "), then that kind's own keys."
    )
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


def _dotted_paths(value: Any, prefix: str = "") -> list[str]:
    """Every key path in a nested mapping, parents included: {'a': {'b': 1}} -> ['a', 'a.b']."""
    paths: list[str] = []
    if isinstance(value, dict):
        for key, child in value.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            paths.append(path)
            paths.extend(_dotted_paths(child, path))
    return paths


class SpecError(Exception):
    """A spec that cannot be deployed. `str()` lists every problem with its file, line (when the stack
    file was read: `stacks/Pulumi.dev.yaml:12: ...`, as compilers and editors write it) and key path."""

    def __init__(self, source: str, problems: list[str], lines: list[int | None] | None = None) -> None:
        self.source = source
        self.problems = problems
        self.lines: list[int | None] = list(lines) if lines is not None else [None] * len(problems)
        """The stack file's line of each problem's key (None: unknown)."""
        super().__init__(
            "\n".join(
                f"{source}{f':{line}' if line else ''}: {problem}"
                for problem, line in zip(problems, self.lines, strict=True)
            )
        )


def format_loc(loc: tuple[str | int, ...]) -> str:
    """('access', 2, 'role') -> 'airflow-oidc:spec.access[2].role'."""
    text = CONFIG_KEY
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text


# A discriminated union puts the chosen tag in the error path (idp.okta.orgUrl): it is not a key.
_UNION_TAGS = {"idp": kind_names(), "authorizationServer": ("org", "custom")}


def _without_union_tags(loc: tuple[str | int, ...]) -> tuple[str | int, ...]:
    kept: list[str | int] = []
    previous: str | int | None = None
    for part in loc:
        # Only the part right after the union key is the tag: a user key spelled like a tag
        # (idp: {kind: okta, okta: ...}) must stay in the path.
        if isinstance(previous, str) and part in _UNION_TAGS.get(previous, ()):
            previous = None
            continue
        kept.append(part)
        previous = part
    return tuple(kept)


def _message(error: dict[str, Any]) -> tuple[tuple[str | int, ...], str]:
    tagged: tuple[str | int, ...] = tuple(error["loc"])
    kind = error["type"]
    ctx = error.get("ctx") or {}
    loc = _without_union_tags(tagged)
    original = ctx.get("error")
    if isinstance(original, LocatedError):
        return tuple(loc) + original.loc, original.message
    value = error.get("input")
    if kind == "literal_error":
        return loc, f"{value!r} is not one of {ctx.get('expected', '').replace(' or ', ', ').replace(chr(39), '')}"
    if kind == "extra_forbidden":
        return loc, unknown_key_message(Spec, tagged)
    if kind == "missing":
        return loc, missing_key_message(Spec, tagged, format_loc(loc))
    if kind == "union_tag_invalid":
        return loc + (str(ctx.get("discriminator", "")).strip("'"),), (
            f"{ctx.get('tag')!r} is not one of {ctx.get('expected_tags', '').replace(chr(39), '')}"
        )
    if kind == "union_tag_not_found":
        return loc + (str(ctx.get("discriminator", "")).strip("'"),), "required key is missing"
    if kind == "string_pattern_mismatch":
        return loc, f"{value!r} does not match {ctx.get('pattern')}"
    text = str(error["msg"])
    text = text.removeprefix("Value error, ")
    return loc, text


def parse_spec(raw: Any, source: str) -> Spec:
    """Validate the raw `airflow-oidc:spec` value; raise `SpecError` naming `source` and each key path."""
    if raw is None:
        raise SpecError(source, [f"{CONFIG_KEY}: required config key is missing"])
    if not isinstance(raw, dict):
        raise SpecError(source, [f"{CONFIG_KEY}: must be a mapping, got {type(raw).__name__}"])
    try:
        return Spec.model_validate(raw)
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_url=False):
            loc, text = _message(dict(error))
            problems.append(f"{format_loc(loc)}: {text}")
        raise SpecError(source, problems) from None


def json_schema() -> dict[str, Any]:
    """JSON Schema of the spec (by alias), for editors."""
    schema = _accept_encrypted_secrets(Spec.model_json_schema(by_alias=True))
    schema["title"] = CONFIG_KEY
    return schema


# How a stack file holds a value set with `pulumi config set --secret --path`: `{secure: <ciphertext>}`.
_SECURE_VALUE = {"type": "object", "properties": {"secure": {"type": "string"}}, "required": ["secure"]}


def _accept_encrypted_secrets(schema: Any) -> Any:
    """Secret keys (pydantic's `format: password`) also accept the CLI's encrypted `{secure: ...}` form."""
    if isinstance(schema, list):
        return [_accept_encrypted_secrets(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    if schema.get("format") == "password":
        plain = {key: value for key, value in schema.items() if key not in ("description", "title", "default")}
        outer = {key: value for key, value in schema.items() if key in ("description", "title", "default")}
        return {**outer, "anyOf": [plain, {**_SECURE_VALUE, "additionalProperties": False}]}
    return {key: _accept_encrypted_secrets(value) for key, value in schema.items()}
