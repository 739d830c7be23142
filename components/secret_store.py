"""Where the OIDC client secret lives on its way to the api-server (`clientSecret.store`).

`kubernetes`: the Airflow component declares a Secret holding it. `gcp-secret-manager` (any kind):
the secret goes into Google Secret Manager, and External Secrets Operator (installed cluster-wide,
a prerequisite) writes the Kubernetes Secret the api-server reads, through a namespaced SecretStore
authenticated by GKE Workload Identity as a service account that may read this one secret only.
The program then declares no Kubernetes Secret holding the client secret.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from components.airflow_values import store_secret_key
from components.gcp import (
    SECRET_MANAGER_API,
    WORKLOAD_IDENTITY_ANNOTATION,
    enabled_api,
    service_account_id,
    workload_identity_member,
)
from components.idp.base.model import STORE_PROVIDER_CONFIG as STORE_PROVIDER_CONFIG
from components.idp.base.model import check_store_provider as check_store_provider
from components.idp.base.resources import ComponentResource

if TYPE_CHECKING:
    import pulumi

    from components.spec_base import Spec

EXTERNAL_SECRETS_API = "external-secrets.io/v1"
REFRESH_INTERVAL = "1h"


def secret_manager_id(spec: Spec) -> str:
    """The Secret Manager secret's id (`[A-Za-z0-9_-]`, unique per team and environment)."""
    return f"airflow-{spec.name}-oidc-client-secret"


def secret_store_service_account(spec: Spec) -> str:
    """The Kubernetes service account the SecretStore authenticates as (Workload Identity)."""
    return f"{spec.airflow.releaseName}-secret-store"


def secret_store_name(spec: Spec) -> str:
    """The namespaced External Secrets `SecretStore` reading this stack's Secret Manager secrets."""
    return f"{spec.airflow.releaseName}-gcp-secret-manager"


class GcpSecretManagerClientSecret(ComponentResource):
    """The client secret in Secret Manager, synced by External Secrets Operator into the Kubernetes
    Secret `secret_name` that the api-server reads; nothing else may read it.

    Outputs: `secret_id` (the Secret Manager secret), `version` (the version the ExternalSecret pins;
    a new one whenever the value changes) and `secret_key` (the data key, which names that version:
    `store_secret_key`). No class-level output annotations: Pulumi evaluates them, and this module
    imports no pulumi at load."""

    def __init__(
        self,
        name: str,
        *,
        spec: Spec,
        project: str,
        secret_name: str,
        value: pulumi.Output[str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        import pulumi
        import pulumi_gcp.secretmanager as secretmanager
        import pulumi_gcp.serviceaccount as serviceaccount
        import pulumi_kubernetes as k8s

        super().__init__("airflow-oidc:secrets:GcpSecretManagerClientSecret", name, None, opts)
        namespace = spec.airflow.namespace
        child = pulumi.ResourceOptions(parent=self)
        # Children do not inherit the component's depends_on: the namespaced ones wait for what it waits for.
        waits_for = list(opts.depends_on or []) if opts is not None and isinstance(opts.depends_on, list) else []
        in_namespace = pulumi.ResourceOptions(parent=self, depends_on=waits_for)
        api = enabled_api(name, spec=spec, project=project, api=SECRET_MANAGER_API, parent=self)
        guarded = pulumi.ResourceOptions(parent=self, protect=spec.is_prod, depends_on=[api] if api else [])
        secret = secretmanager.Secret(
            f"{name}-secret",
            secret_id=secret_manager_id(spec),
            project=project,
            replication={"auto": {}},
            labels={"app-kubernetes-io-managed-by": "airflow-oidc"},
            opts=guarded,
        )
        # secret_data forces a new version: rotation adds a version, the ExternalSecret pins it.
        version = secretmanager.SecretVersion(
            f"{name}-version",
            secret=secret.id,
            secret_data=pulumi.Output.secret(value),  # type: ignore[arg-type]
            opts=pulumi.ResourceOptions(parent=self, additional_secret_outputs=["secret_data"]),
        )
        reader = serviceaccount.Account(
            f"{name}-reader",
            account_id=service_account_id(spec, "secrets"),
            display_name=f"Airflow ({spec.name}) OIDC client secret reader",
            description="External Secrets Operator reads the Airflow OIDC client secret as this account.",
            project=project,
            opts=child,
        )
        access = secretmanager.SecretIamMember(
            f"{name}-reader-access",
            project=project,
            secret_id=secret.secret_id,
            role="roles/secretmanager.secretAccessor",
            member=reader.email.apply(lambda email: f"serviceAccount:{email}"),
            opts=child,
        )
        ksa_name = secret_store_service_account(spec)
        binding = serviceaccount.IAMMember(
            f"{name}-reader-workload-identity",
            service_account_id=reader.name,
            role="roles/iam.workloadIdentityUser",
            member=workload_identity_member(project, namespace, ksa_name),
            opts=child,
        )
        ksa = k8s.core.v1.ServiceAccount(
            f"{name}-ksa",
            metadata={
                "name": ksa_name,
                "namespace": namespace,
                "annotations": {WORKLOAD_IDENTITY_ANNOTATION: reader.email},
                "labels": {"app.kubernetes.io/managed-by": "airflow-oidc"},
            },
            automount_service_account_token=False,
            opts=in_namespace,
        )
        store_name = secret_store_name(spec)
        store = k8s.apiextensions.CustomResource(
            f"{name}-secret-store",
            api_version=EXTERNAL_SECRETS_API,
            kind="SecretStore",
            metadata={"name": store_name, "namespace": namespace},
            spec={
                "provider": {
                    "gcpsm": {
                        "projectID": project,
                        "auth": {"workloadIdentity": {"serviceAccountRef": {"name": ksa.metadata["name"]}}},
                    }
                }
            },
            opts=in_namespace,
        )
        # The data key names the pinned version: pods rolled for version N read `client-secret-vN`, and
        # cannot start (CreateContainerConfigError, retried) before the operator has written it; the
        # pods of the previous version keep running and serving until the new ones are ready.
        secret_key = version.version.apply(store_secret_key)
        self.external_secret = k8s.apiextensions.CustomResource(
            f"{name}-external-secret",
            api_version=EXTERNAL_SECRETS_API,
            kind="ExternalSecret",
            metadata={"name": secret_name, "namespace": namespace},
            spec={
                "refreshInterval": REFRESH_INTERVAL,
                "secretStoreRef": {"kind": "SecretStore", "name": store_name},
                "target": {"name": secret_name, "creationPolicy": "Owner"},
                "data": [
                    {
                        "secretKey": secret_key,
                        # Pinned: a rotation changes this spec, so the operator syncs it at once.
                        "remoteRef": {"key": secret.secret_id, "version": version.version},
                    }
                ],
            },
            # The operator can read the secret only once both grants exist.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[*waits_for, access, binding, store]),
        )
        self.secret_id = secret.id
        self.version = version.version
        self.secret_key = secret_key
        self.register_outputs({"secret_id": self.secret_id, "version": self.version, "secret_key": self.secret_key})
