"""Google Cloud naming and identities shared by `kind: google` and the `gcp-secret-manager` store (pure)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pulumi

    from components.spec_base import Spec

WORKLOAD_IDENTITY_ANNOTATION = "iam.gke.io/gcp-service-account"
"""On a Kubernetes service account: the GCP service account its pods act as (GKE Workload Identity)."""


def gcp_mock_outputs(type_: str, name: str, inputs: Mapping[str, Any]) -> dict[str, Any] | None:
    """What GCP computes for the resources this project declares (the mock engine's stand-ins)."""
    from components.mock_values import fake

    if type_ == "gcp:serviceaccount/account:Account":
        project, account = inputs.get("project"), inputs.get("accountId")
        email = f"{account}@{project}.iam.gserviceaccount.com"
        return {
            "email": email,
            "name": f"projects/{project}/serviceAccounts/{email}",
            "member": f"serviceAccount:{email}",
            "uniqueId": str(int(hashlib.sha256(name.encode()).hexdigest()[:15], 16)),
        }
    if type_ == "gcp:cloudidentity/group:Group":
        return {"name": "groups/" + fake(name, "grp").removeprefix("grp-")}
    if type_ == "gcp:secretmanager/secret:Secret":
        return {"id": f"projects/{inputs.get('project')}/secrets/{inputs.get('secretId')}"}
    if type_ == "gcp:secretmanager/secretVersion:SecretVersion":
        return {"version": "1", "name": f"{inputs.get('secret')}/versions/1"}
    return None


CLOUD_IDENTITY_API = "cloudidentity.googleapis.com"
"""Group memberships at sign-in and `createGroups` (idp.kind google)."""
SECRET_MANAGER_API = "secretmanager.googleapis.com"
"""The client secret's store (clientSecret.store gcp-secret-manager)."""


def enabled_api(
    name: str, *, spec: Spec, project: str, api: str, parent: pulumi.Resource
) -> pulumi.CustomResource | None:
    """`api` enabled in `project` (`gcp.projects.Service`), or None when the platform team enables
    APIs centrally (`googleCloud.enableApis: false`). Never disabled on destroy: another stack or
    workload in the project may use it. Enabling an enabled API changes nothing, so stacks sharing a
    project may each declare it."""
    if not spec.googleCloud.enableApis:
        return None
    import pulumi
    import pulumi_gcp.projects as projects

    return projects.Service(
        f"{name}-api-{api.split('.')[0]}",
        project=project,
        service=api,
        disable_on_destroy=False,
        disable_dependent_services=False,
        opts=pulumi.ResourceOptions(parent=parent),
    )


def service_account_id(spec: Spec, purpose: str) -> str:
    """A GCP service account id (6-30 chars, `[a-z][-a-z0-9]*[a-z0-9]`) naming the stack and purpose."""
    base = f"airflow-{spec.name}-{purpose}"
    if len(base) <= 30:
        return base
    digest = hashlib.sha256(base.encode()).hexdigest()[:6]
    return f"{base[: 30 - 7].rstrip('-')}-{digest}"


def workload_identity_member(project: str, namespace: str, service_account: str) -> str:
    """The IAM principal of a Kubernetes service account under GKE Workload Identity."""
    return f"serviceAccount:{project}.svc.id.goog[{namespace}/{service_account}]"
