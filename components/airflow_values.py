"""The Airflow side, derived: the rendered webserver_config.py and the official chart's Helm values.

Pure functions of the spec and the client contract; the Airflow component only wires them to
resources. The chart is the official Apache Airflow chart (https://airflow.apache.org), Airflow 3.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components.contract import CLIENT_ID_ENV, CLIENT_SECRET_ENV, ClientContract, api_server_service_account
from components.service_accounts import (
    AUTH_MANAGER_CLASS,
    AUTH_MOUNT_PATH,
    AUTH_VERSION_ANNOTATION,
    AUTH_VOLUME,
    ROLLED_COMPONENTS,
    auth_module_source,
    auth_version,
    render_auth_settings,
)
from components.spec import Spec

FAB_AUTH_MANAGER = "airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager"
TEMPLATE = Path(__file__).with_name("webserver_config_template.py")
_CONSTANTS = re.compile(r"# airflow-oidc: constants begin.*?\n(.*?)# airflow-oidc: constants end\n", re.S)
VERSION_ANNOTATION = "airflow-oidc/config-version"


@dataclass(frozen=True)
class SecretNames:
    """Kubernetes Secrets the program creates, and the data key in each (the chart's key names)."""

    oidc_client: str
    api_secret_key: str
    jwt_secret: str
    fernet_key: str

    OIDC_CLIENT_KEY = "client-secret"
    API_SECRET_KEY_KEY = "api-secret-key"
    JWT_SECRET_KEY = "jwt-secret"
    FERNET_KEY_KEY = "fernet-key"


@dataclass(frozen=True)
class ChartSource:
    """How the Helm release names its chart (pulumi_kubernetes `helm.v3.Release` arguments)."""

    chart: str
    """`airflow` (from `repository`), an OCI reference `oci://.../airflow`, or a local chart directory."""
    repository: str | None
    """The chart repository's URL, for `chart: airflow` only."""


def chart_source(spec: Spec) -> ChartSource:
    """The chart the release installs: a local directory (`airflow.chartPath`), an OCI registry path holding
    `airflow`, or `airflow` from a chart repository (`airflow.chartRepository`, default the official one)."""
    if spec.airflow.chartPath is not None:
        return ChartSource(chart=spec.airflow.chartPath, repository=None)
    repository = spec.airflow.chart_repository
    if repository.startswith("oci://"):
        return ChartSource(chart=f"{repository}/airflow", repository=None)
    return ChartSource(chart="airflow", repository=repository)


def local_chart_problem(spec: Spec, project_dir: Path) -> str | None:
    """What is wrong with `airflow.chartPath` (relative to the project directory), or None: a directory with a
    Chart.yaml of the official chart (`name: airflow`) at `airflow.chartVersion`."""
    if spec.airflow.chartPath is None:
        return None
    import yaml

    where = project_dir / spec.airflow.chartPath
    try:
        chart = yaml.safe_load((where / "Chart.yaml").read_text()) or {}
    except FileNotFoundError:
        return f"{spec.airflow.chartPath!r} holds no Chart.yaml (looked in {where.resolve()})"
    except (OSError, yaml.YAMLError) as error:
        return f"{spec.airflow.chartPath!r}: cannot read its Chart.yaml ({error.__class__.__name__})"
    if not isinstance(chart, dict) or chart.get("name") != "airflow":
        return f"{spec.airflow.chartPath!r} is not the Airflow chart (Chart.yaml name: {chart.get('name')!r})"
    if str(chart.get("version")) != spec.airflow.chartVersion:
        return (
            f"{spec.airflow.chartPath!r} holds chart version {chart.get('version')}, but airflow.chartVersion is "
            f"{spec.airflow.chartVersion}: vendor that version or set chartVersion to the vendored one"
        )
    return None


def secret_names(spec: Spec) -> SecretNames:
    release = spec.airflow.releaseName
    return SecretNames(
        oidc_client=f"{release}-oidc-client",
        api_secret_key=f"{release}-api-secret-key",
        jwt_secret=f"{release}-jwt-secret",
        fernet_key=f"{release}-fernet-key",
    )


def _escape_braces_in_strings(value: Any) -> str:
    """A Python literal for `value` with no `{{`: the chart passes the text through Helm's `tpl`."""
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=True).replace("{", "\\u007b").replace("}", "\\u007d")
    if isinstance(value, list):
        return "[" + ", ".join(_escape_braces_in_strings(item) for item in value) + "]"
    if isinstance(value, dict):
        return (
            "{"
            + ", ".join(
                f"{_escape_braces_in_strings(key)}: {_escape_braces_in_strings(item)}" for key, item in value.items()
            )
            + "}"
        )
    return repr(value)


def render_webserver_config(contract: ClientContract) -> str:
    """The api-server's webserver_config.py: the template with this contract's constants."""
    constants = {
        "PROVIDER": contract.provider,
        "ISSUER": contract.issuer,
        "SCOPES": list(contract.scopes),
        "ROLE_CLAIM": contract.role_claim,
        "USERNAME_CLAIM": contract.username_claim,
        "ROLE_BY_CLAIM_VALUE": dict(contract.role_by_claim_value),
        "DEFAULT_ROLE": contract.default_role,
        "DEFAULT_ROLE_CLAIM_VALUES": list(contract.default_role_claim_values),
        "DEFAULT_ROLE_EVERYONE": contract.default_role_everyone,
        "REQUIRED_CLAIMS": dict(contract.required_claims),
        "ROLE_SOURCE": contract.role_source,
        "ROLE_LOOKUP": dict(contract.role_lookup),
        "SECURE_COOKIES": contract.secure_cookies,
        "POST_LOGOUT_REDIRECT_URI": contract.post_logout_redirect_uris[0],
        "CLIENT_ID_ENV": CLIENT_ID_ENV,
        "CLIENT_SECRET_ENV": CLIENT_SECRET_ENV,
    }
    block = "".join(f"{name} = {_escape_braces_in_strings(value)}\n" for name, value in constants.items())
    template = TEMPLATE.read_text()
    rendered, count = _CONSTANTS.subn(lambda _: "# Derived from the stack's spec:\n" + block, template)
    if count != 1:
        raise RuntimeError(f"{TEMPLATE.name}: the constants block markers are missing")
    if "{{" in rendered:
        raise RuntimeError("the rendered webserver_config.py contains '{{', which Helm's tpl would evaluate")
    return rendered


def config_version(rendered_config: str, client_id: str, secret_version: str | int) -> str:
    """A non-secret fingerprint that changes with the config, the client or the secret's version.

    On `apiServer.podAnnotations` it rolls the api-server pods, which read env vars and
    webserver_config.py only at start (the chart does not roll them itself).
    """
    digest = hashlib.sha256(f"{rendered_config}\0{client_id}\0{secret_version}".encode())
    return digest.hexdigest()[:16]


def keyed_secret_digest(key_hex: str, secret: str) -> str:
    """HMAC-SHA256 of the client secret under the stack's own random key (kept in Pulumi state).

    It changes whenever the secret does, and tells nothing about it without the key: a bare hash of a
    low-entropy secret (a hand-typed one) in an annotation could be brute-forced offline.
    """
    return hmac.new(bytes.fromhex(key_hex), secret.encode(), hashlib.sha256).hexdigest()[:32]


def client_secret_version(store: str, idp_version: str, keyed_digest: str, store_version: str | None = None) -> str:
    """Everything that says which client secret value the api-server must read (non-secret): the store,
    the kind's rotation period, the keyed digest of the value, and the store's own version id (Secret
    Manager). Any of them changing changes `config_version`, so the api-server rolls."""
    return f"{store}:{store_version or '-'}:{idp_version}:{keyed_digest}"


def store_secret_key(store_version: str | None) -> str:
    """The data key the api-server reads the client secret from. With a store whose versions the
    program pins (Secret Manager), the key names the version (`client-secret-v3`): a pod started before
    External Secrets wrote that version cannot start on the old value; it waits until the key exists."""
    if store_version is None:
        return SecretNames.OIDC_CLIENT_KEY
    return f"{SecretNames.OIDC_CLIENT_KEY}-v{store_version}"


def _image_values(spec: Spec) -> dict[str, Any]:
    image = spec.airflow.image
    values: dict[str, Any] = {"repository": image.repository, "tag": image.tag}
    if image.digest:
        values["digest"] = image.digest
    return values


def _ingress_values(spec: Spec) -> dict[str, Any]:
    tls = spec.airflow.tls
    annotations: dict[str, str] = {}
    host: dict[str, Any] = {"name": spec.host}
    if tls is not None and not tls.terminatedUpstream:  # terminated upstream: plain HTTP, no certificate here
        secret = tls.secretName or f"{spec.airflow.releaseName}-tls"
        host["tls"] = {"enabled": True, "secretName": secret}
        if tls.issuer is not None:
            key = "cert-manager.io/cluster-issuer" if tls.issuer.kind == "ClusterIssuer" else "cert-manager.io/issuer"
            annotations[key] = tls.issuer.name
    ingress: dict[str, Any] = {"enabled": True, "hosts": [host], "path": "/", "pathType": "Prefix"}
    if annotations:
        ingress["annotations"] = annotations
    if spec.airflow.ingressClassName:
        ingress["ingressClassName"] = spec.airflow.ingressClassName
    return {"apiServer": ingress}


def helm_values(
    spec: Spec,
    contract: ClientContract,
    *,
    client_id: Any,
    version: Any,
    rendered_config: str | None = None,
    service_account_annotations: dict[str, Any] | None = None,
    auth_version: Any = None,
    client_secret_key: Any = SecretNames.OIDC_CLIENT_KEY,
) -> dict[str, Any]:
    """Values for the official chart: the program's own, with `airflow.values` merged last.

    `client_id`, `version`, `client_secret_key` and the annotation values may be plain strings or
    Pulumi outputs (the chart receives them resolved). `service_account_annotations` go on the
    api-server's Kubernetes service account (the IdP kind's, e.g. a GKE Workload Identity);
    `client_secret_key` is the data key of the client secret's Secret (see `store_secret_key`).
    """
    names = secret_names(spec)
    rendered = rendered_config if rendered_config is not None else render_webserver_config(contract)
    database = spec.airflow.database
    bundled = database is None or database.bundled
    tag = spec.airflow.image.tag
    values: dict[str, Any] = {
        "airflowVersion": re.match(r"\d+\.\d+\.\d+", tag).group(),  # type: ignore[union-attr]
        "defaultAirflowTag": tag,
        "images": {"airflow": _image_values(spec)},
        "labels": {"airflow-oidc/stack-name": spec.name},
        # Secrets the program creates and pins, so every replica and render agrees.
        "fernetKeySecretName": names.fernet_key,
        "apiSecretKeySecretName": names.api_secret_key,
        "jwtSecretName": names.jwt_secret,
        "postgresql": {"enabled": bundled},
        # A post-install hook would deadlock a waiting release: the pods wait for migrations.
        # applyCustomEnv: the top-level env (PYTHONPATH of the auth-manager module) reaches the job.
        "migrateDatabaseJob": {"useHelmHooks": False, "applyCustomEnv": True},
        "databaseCleanup": {"applyCustomEnv": True},
        # No local admin with a password: users come from the IdP.
        "createUserJob": {"enabled": False},
        "webserver": {"defaultUser": {"enabled": False}},
        "config": {
            # The program's FabAuthManager subclass (service-account tokens, readable audit names):
            # every component reads this setting, so every container mounts the module (below).
            "core": {"auth_manager": AUTH_MANAGER_CLASS},
            "api": {"base_url": spec.public_url},
            "fab": {
                "enable_proxy_fix": "True",
                "session_lifetime_minutes": spec.idle_minutes,
                "session_max_lifetime_minutes": spec.session_minutes,
            },
            "api_auth": {"jwt_expiration_time": spec.session_minutes * 60},
        },
        "apiServer": {
            "replicas": spec.api_server_replicas,
            # uvicorn honours X-Forwarded-* (within FORWARDED_ALLOW_IPS) only with --proxy-headers.
            "args": ["bash", "-c", "exec airflow api-server --proxy-headers"],
            "apiServerConfig": rendered,
            # The SSO config and the client secret's version: these pods alone read them.
            "podAnnotations": {VERSION_ANNOTATION: version},
            # Named by the program, so an IdP-side binding (GKE Workload Identity) can name it too.
            "serviceAccount": {
                "name": api_server_service_account(spec),
                "annotations": dict(service_account_annotations or {}),
            },
            "env": [
                {"name": CLIENT_ID_ENV, "value": client_id},
                # Only the api-server gets the client secret: the chart's global `secret:` list
                # would hand it to every container and every task pod.
                {
                    "name": CLIENT_SECRET_ENV,
                    "valueFrom": {"secretKeyRef": {"name": names.oidc_client, "key": client_secret_key}},
                },
                # The api-server's uvicorn trusts X-Forwarded-* only from these addresses.
                {"name": "FORWARDED_ALLOW_IPS", "value": spec.airflow.forwardedAllowIps},
            ],
        },
        "ingress": _ingress_values(spec),
    }
    values = merge_values(values, auth_module_values(spec, auth_version))
    if not bundled:
        assert database is not None
        values["data"] = {"metadataSecretName": database.secretName}
    return merge_values(values, spec.airflow.values)


def auth_config_map_name(spec: Spec) -> str:
    """The ConfigMap holding the auth-manager module and its settings."""
    return f"{spec.airflow.releaseName}-oidc-auth"


def auth_module_values(spec: Spec, version: Any = None) -> dict[str, Any]:
    """The chart's values for EVERY Airflow container (api-server, scheduler, dag-processor, triggerer,
    workers, jobs): the module's ConfigMap as a volume, mounted read-only (a directory, not subPath,
    so it follows the ConfigMap), on PYTHONPATH.

    The long-running components roll when the module or its settings change: the version annotation
    goes on each one's `podAnnotations`, never on `airflowPodAnnotations`, which the chart also puts
    in the migration Job's pod template (immutable: a changed annotation there fails the upgrade while
    the finished Job still exists, apache/airflow#27561). Jobs run anew and import the module as it is.
    """
    if version is None:
        version = auth_version(auth_module_source(), render_auth_settings(spec, None, None))
    values: dict[str, Any] = {
        "volumes": [{"name": AUTH_VOLUME, "configMap": {"name": auth_config_map_name(spec)}}],
        "volumeMounts": [{"name": AUTH_VOLUME, "mountPath": AUTH_MOUNT_PATH, "readOnly": True}],
        "env": [{"name": "PYTHONPATH", "value": AUTH_MOUNT_PATH}],
    }
    for component in ROLLED_COMPONENTS:
        values[component] = {"podAnnotations": {AUTH_VERSION_ANNOTATION: version}}
    return values


def merge_values(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """Helm's merge: maps merge key by key, everything else (lists included) is replaced."""
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_values(merged[key], value)
        else:
            merged[key] = value
    return merged
