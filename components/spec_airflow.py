"""The `airflow` keys of the spec (the official chart on Kubernetes), and the chart keys the program owns.

Building blocks of `components/spec_base.py`'s `Spec`; pure pydantic models, no project imports but the
shared model base, so every layer above may use them.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from components.model import Model, at, require_url

DEFAULT_CHART_REPOSITORY = "https://airflow.apache.org"
"""The official chart's repository."""

AUTH_VERSION_ANNOTATION = "airflow-oidc/auth-version"
"""On each long-running component's pods: rolls them when the auth-manager module or its settings change."""
ROLLED_COMPONENTS = ("apiServer", "scheduler", "dagProcessor", "triggerer", "workers")
"""The chart's long-running components (they import the auth manager at start): each gets the
auth-version annotation on its own `podAnnotations` (`workers`: the Celery workers and the
KubernetesExecutor's pod template). Never `airflowPodAnnotations`: the chart puts those in the
migration Job's pod template too, which is immutable (apache/airflow#27561)."""

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


def _dotted_paths(value: Any, prefix: str = "") -> list[str]:
    """Every key path in a nested mapping, parents included: {'a': {'b': 1}} -> ['a', 'a.b']."""
    paths: list[str] = []
    if isinstance(value, dict):
        for key, child in value.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            paths.append(path)
            paths.extend(_dotted_paths(child, path))
    return paths
