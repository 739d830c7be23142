"""The Airflow side: the official Apache Airflow chart (Airflow 3, FAB auth manager) and its Secrets."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from components.access import ACCESS_MODEL_FILE, AccessModel
from components.airflow_values import (
    SecretNames,
    auth_config_map_name,
    chart_source,
    client_secret_version,
    config_version,
    helm_values,
    keyed_secret_digest,
    render_webserver_config,
    secret_names,
)
from components.contract import ClientContract
from components.protection import fernet_key_protected
from components.service_accounts import (
    AUTH_MODULE_FILE,
    AUTH_SETTINGS_FILE,
    ServiceAccountContract,
    ServiceAccountIdentities,
    auth_module_source,
    auth_settings_output,
    auth_version,
    credential_secret_name,
)
from components.spec import Spec


class AirflowDeployment(pulumi.ComponentResource):
    """Airflow 3 from the official chart, wired to the IdP: the client secret reaches the api-server
    alone, the Flask/JWT/Fernet keys are pinned in Secrets, and the pods roll when the SSO config does."""

    release_name: pulumi.Output[str]
    """The Helm release's name."""
    namespace: pulumi.Output[str]
    """The namespace Airflow runs in."""
    config_version: pulumi.Output[str]
    """Fingerprint of the SSO config and of the client secret's version on the api-server pods
    (non-secret: the secret enters it only as a keyed digest)."""

    def __init__(
        self,
        name: str,
        *,
        spec: Spec,
        contract: ClientContract,
        client_id: pulumi.Input[str],
        client_secret: pulumi.Output[str],
        secret_version: pulumi.Input[str],
        api_server_annotations: Mapping[str, pulumi.Input[str]] | None = None,
        provider: Mapping[str, str] | None = None,
        service_accounts: ServiceAccountContract | None = None,
        service_account_identities: ServiceAccountIdentities | None = None,
        access_model: AccessModel | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("airflow-oidc:airflow:Deployment", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        names = secret_names(spec)
        namespace_name = spec.airflow.namespace
        depends: list[pulumi.Resource] = []
        if spec.airflow.createNamespace:
            namespace = k8s.core.v1.Namespace(
                f"{name}-namespace",
                metadata={"name": namespace_name, "labels": {"app.kubernetes.io/managed-by": "airflow-oidc"}},
                opts=child,
            )
            depends.append(namespace)
        in_namespace = pulumi.ResourceOptions(parent=self, depends_on=list(depends))

        def secret(resource: str, secret_name: str, key: str, value: pulumi.Output[str], **extra: Any) -> None:
            marked: pulumi.Output[str] = pulumi.Output.secret(value)  # type: ignore[arg-type]
            depends.append(
                k8s.core.v1.Secret(
                    f"{name}-secret-{resource}",
                    metadata={"name": secret_name, "namespace": namespace_name},
                    type="Opaque",
                    # Marked secret here too: providers' secret outputs are not always marked.
                    string_data={key: marked},
                    opts=pulumi.ResourceOptions.merge(in_namespace, pulumi.ResourceOptions(**extra)),
                )
            )

        store_version: pulumi.Output[str] | None = None
        if spec.clientSecret.store == "gcp-secret-manager":
            # No Kubernetes Secret of the program's holds it: the operator writes the one the api-server reads.
            from components.secret_store import GcpSecretManagerClientSecret

            store = GcpSecretManagerClientSecret(
                f"{name}-client-secret-store",
                spec=spec,
                project=(provider or {})["gcp:project"],
                secret_name=names.oidc_client,
                value=client_secret,
                opts=in_namespace,
            )
            depends.append(store)
            store_version = store.version
            client_secret_key: pulumi.Input[str] = store.secret_key
        else:
            secret("oidc-client-secret", names.oidc_client, SecretNames.OIDC_CLIENT_KEY, client_secret)
            client_secret_key = SecretNames.OIDC_CLIENT_KEY
        api_key = random.RandomPassword(f"{name}-api-secret-key", length=64, special=False, opts=child)
        secret("api-secret-key", names.api_secret_key, SecretNames.API_SECRET_KEY_KEY, api_key.result)
        jwt = random.RandomPassword(f"{name}-jwt-secret", length=64, special=False, opts=child)
        secret("jwt-secret", names.jwt_secret, SecretNames.JWT_SECRET_KEY, jwt.result)
        # A Fernet key is 32 url-safe base64 bytes; replacing it makes the stored connections unreadable: protected
        # where they outlive the release (components/protection.py), so a throwaway stack can be destroyed.
        database = spec.airflow.database
        keep = fernet_key_protected(spec.environment, external_database=bool(database and database.secretName))
        fernet = random.RandomBytes(
            f"{name}-fernet-key", length=32, opts=pulumi.ResourceOptions(parent=self, protect=keep)
        )
        url_safe = fernet.base64.apply(lambda text: text.replace("+", "-").replace("/", "_"))
        secret("fernet-key", names.fernet_key, SecretNames.FERNET_KEY_KEY, url_safe, protect=keep)

        # Service accounts' IdP credentials (where the kind has any) go to the secret store: a Secret
        # per account that no Airflow container mounts; the CI job's runner reads it.
        for account, data in (service_account_identities.credentials if service_account_identities else {}).items():
            depends.append(
                k8s.core.v1.Secret(
                    f"{name}-secret-sa-{account}",
                    metadata={"name": credential_secret_name(spec, account), "namespace": namespace_name},
                    type="Opaque",
                    string_data={key: pulumi.Output.secret(value) for key, value in data.items()},
                    opts=in_namespace,
                )
            )
        # The auth-manager module every Airflow container imports ([core] auth_manager), and its
        # settings (verification constants, the accounts: no secrets), mounted from one ConfigMap.
        # The access model rides along (no secrets either): the policy pack reads it from here.
        module_source = auth_module_source()
        settings = auth_settings_output(spec, service_accounts, service_account_identities)
        auth_data: dict[str, pulumi.Input[str]] = {AUTH_MODULE_FILE: module_source, AUTH_SETTINGS_FILE: settings}
        if access_model is not None:
            auth_data[ACCESS_MODEL_FILE] = access_model.to_text()
        depends.append(
            k8s.core.v1.ConfigMap(
                f"{name}-auth-manager",
                metadata={"name": auth_config_map_name(spec), "namespace": namespace_name},
                data=auth_data,
                opts=in_namespace,
            )
        )
        module_version = settings.apply(lambda text: auth_version(module_source, text))

        rendered = render_webserver_config(contract)
        # Which secret value the api-server must read, without the value: a keyed digest (HMAC under a
        # random key of this stack's, kept in state) changes with any new value, a given one edited
        # included; the store and its version id (Secret Manager) with a switch or a new version.
        version_key = random.RandomBytes(f"{name}-secret-version-key", length=32, opts=child)
        store_name = spec.clientSecret.store
        version = pulumi.Output.unsecret(
            pulumi.Output.all(client_id, secret_version, version_key.hex, client_secret, store_version).apply(
                lambda args: config_version(
                    rendered,
                    str(args[0]),
                    client_secret_version(store_name, str(args[1]), keyed_secret_digest(args[2], args[3]), args[4]),
                )
            )
        )
        values = helm_values(
            spec,
            contract,
            client_id=client_id,
            version=version,
            rendered_config=rendered,
            service_account_annotations=dict(api_server_annotations or {}),
            auth_version=module_version,
            client_secret_key=client_secret_key,
        )
        source = chart_source(spec)
        release = k8s.helm.v3.Release(
            f"{name}-release",
            name=spec.airflow.releaseName,
            chart=source.chart,
            version=spec.airflow.chartVersion,
            repository_opts={"repo": source.repository} if source.repository else None,
            namespace=namespace_name,
            values=values,
            atomic=False,
            wait_for_jobs=spec.airflow.wait,
            # Set only when off: an input that appears on an existing stack would be a diff.
            skip_await=None if spec.airflow.wait else True,
            timeout=900,
            opts=pulumi.ResourceOptions(parent=self, depends_on=depends),
        )
        self.release_name = release.name.apply(lambda name: name or spec.airflow.releaseName)
        self.namespace = pulumi.Output.from_input(namespace_name)
        self.config_version = version
        self.register_outputs(
            {"release_name": self.release_name, "namespace": self.namespace, "config_version": self.config_version}
        )
