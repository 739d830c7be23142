"""Google Workspace (`idp.kind: google`), the Pulumi side: the service account that reads group
memberships at sign-in (through GKE Workload Identity), the Cloud Identity API, optionally the groups.

The kind's resources hooks (`components/idp/base/resources.py`, `KindResources`): `lookup`, `provision`,
`provision_service_accounts`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NoReturn

from components.gcp import (
    CLOUD_IDENTITY_API,
    WORKLOAD_IDENTITY_ANNOTATION,
    enabled_api,
    service_account_id,
    workload_identity_member,
)
from components.idp.base.contract import ClientContract, api_server_service_account, slug
from components.idp.base.model import ProviderConfig
from components.idp.base.resources import IdpClient
from components.idp.google.model import DISCUSSION_FORUM_LABEL, GoogleIdp, registration_instructions

if TYPE_CHECKING:
    import pulumi

    from components.idp.base.context import BuildContext
    from components.service_accounts import ServiceAccountContract
    from components.spec_base import Spec


def lookup(spec: Spec, provider: ProviderConfig) -> None:
    """Nothing to look up before declaring: the groups are read at every sign-in."""


def provision(ctx: BuildContext) -> IdpClient:
    """The console-created client, its group reader and (createGroups) the groups (`GoogleWorkspaceClient`)."""
    # `gcp:project` (or GOOGLE_PROJECT), as the program read it: check_provider refused a stack without it.
    project = ctx.provider["gcp:project"]
    return GoogleWorkspaceClient(ctx.name, spec=ctx.spec, contract=ctx.contract, project=project, opts=ctx.opts)


def provision_service_accounts(ctx: BuildContext, *, accounts: ServiceAccountContract, client: IdpClient) -> NoReturn:
    """Never called: the kind refuses `serviceAccounts` (`SERVICE_ACCOUNTS_NOT_OFFERED`)."""
    raise NotImplementedError("idp.kind google offers no service accounts")


class GoogleWorkspaceClient(IdpClient):
    """The console-created Google client, the service account that reads group memberships (the
    api-server's Google identity through GKE Workload Identity), and optionally the Workspace groups.

    `groups_reader` (an output): the service account's email, to grant the Groups Reader admin role.
    (No class-level output annotations: Pulumi evaluates them, and this module imports no pulumi at load.)"""

    def __init__(
        self,
        name: str,
        *,
        spec: Spec,
        contract: ClientContract,
        project: str,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        import pulumi
        import pulumi_gcp.serviceaccount as serviceaccount

        super().__init__("airflow-oidc:idp:GoogleWorkspaceClient", name, None, opts)
        idp = spec.idp
        assert isinstance(idp, GoogleIdp)
        child = pulumi.ResourceOptions(parent=self)
        # Replacing the account or a group loses the Groups Reader grant or the memberships.
        guarded = pulumi.ResourceOptions(parent=self, protect=spec.is_prod)
        reader = serviceaccount.Account(
            f"{name}-groups-reader",
            account_id=service_account_id(spec, "groups"),
            display_name=f"Airflow ({spec.name}) group lookups",
            description="Reads Workspace group memberships at Airflow sign-in (airflow-oidc); needs Groups Reader.",
            project=project,
            opts=guarded,
        )
        serviceaccount.IAMMember(
            f"{name}-workload-identity",
            service_account_id=reader.name,
            role="roles/iam.workloadIdentityUser",
            member=workload_identity_member(project, spec.airflow.namespace, api_server_service_account(spec)),
            opts=child,
        )
        # Every sign-in asks Cloud Identity; a disabled API answers SERVICE_DISABLED (a 403 that reads like
        # the missing Groups Reader grant). The groups and the api-server's release wait for it.
        api = enabled_api(name, spec=spec, project=project, api=CLOUD_IDENTITY_API, parent=self)
        needs_api = pulumi.ResourceOptions(depends_on=[api] if api else [])
        if idp.createGroups:
            import pulumi_gcp.cloudidentity as cloudidentity

            for group in contract.claim_values:
                cloudidentity.Group(
                    f"{name}-group-{slug(group)}",
                    display_name=group.split("@", 1)[0],
                    description=f"Airflow {spec.name}: managed by airflow-oidc",
                    group_key={"id": group},
                    parent=f"customers/{idp.customerId}",
                    labels={DISCUSSION_FORUM_LABEL: ""},
                    initial_group_config="EMPTY",
                    opts=pulumi.ResourceOptions.merge(guarded, needs_api),
                )
        self.groups_reader = reader.email
        # The annotation's value carries the dependency to the Helm release (the api-server must not
        # start signing people in before the API is on).
        annotation = pulumi.Output.all(reader.email, api.id if api else None).apply(lambda args: str(args[0]))
        self.finish(
            client_id=idp.clientId,
            client_secret=pulumi.Output.secret(idp.clientSecret.get_secret_value()),
            secret_version="0",
            outputs={
                "registration": registration_instructions(contract, idp.clientId),
                "groupsReaderServiceAccount": reader.email,
                "groupsReaderGrant": reader.email.apply(
                    lambda email: (
                        f"Admin console > Account > Admin roles > Groups Reader > Assign service accounts: "
                        f"{email} (no Pulumi resource can grant a Workspace admin role)"
                    )
                ),
            },
            api_server_annotations={WORKLOAD_IDENTITY_ANNOTATION: annotation},
        )
