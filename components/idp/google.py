"""Google Workspace (`idp.kind: google`): Sign in with Google, roles from Workspace groups.

Google has no API that creates a "Sign in with Google" web client: it is created once in the console
and its id and secret go into the spec. Google's ID token carries no groups, so the claim values
(group emails) come from the Cloud Identity Groups API at login (`role_source: cloud-identity`),
asked as a GCP service account the program creates and the api-server's Kubernetes service account
impersonates (GKE Workload Identity). With `createGroups`, the program creates the Workspace groups.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field, SecretStr, field_validator

from components.gcp import (
    CLOUD_IDENTITY_API,
    WORKLOAD_IDENTITY_ANNOTATION,
    enabled_api,
    gcp_mock_outputs,
    service_account_id,
    workload_identity_member,
)
from components.idp.base import IdpClient, IdpModel, ProviderConfig, ProviderConfigError
from components.idp.base.contract import ClientContract, api_server_service_account, common_contract, slug
from components.model import at

if TYPE_CHECKING:
    import pulumi

    from components.access import GroupGrant
    from components.idp.base.context import BuildContext
    from components.spec_base import Spec

GOOGLE_ISSUER = "https://accounts.google.com"
CLOUD_IDENTITY_URL = "https://cloudidentity.googleapis.com"
CLOUD_IDENTITY_URL_ENV = "AIRFLOW_OIDC_CLOUD_IDENTITY_URL"
"""Overrides the Cloud Identity API's base URL on the api-server (test harnesses only)."""
GROUPS_READONLY_SCOPE = "https://www.googleapis.com/auth/cloud-identity.groups.readonly"
DISCUSSION_FORUM_LABEL = "cloudidentity.googleapis.com/groups.discussion_forum"
EMAIL = re.compile(r"[a-z0-9.!#$%&*+/=?^_`{|}~-]+@[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+")
DOMAIN = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*\.[a-z]{2,63}")


class GoogleIdp(IdpModel):
    """Google Workspace: a console-created OAuth web client; roles from Workspace groups (Cloud Identity)."""

    SDK: ClassVar[str | None] = "pulumi_gcp"
    PROVIDER_CONFIG: ClassVar[Mapping[str, str]] = {"gcp:project": "GOOGLE_PROJECT"}
    GROUPS_BOUND_BY: ClassVar[str | None] = "by group email"
    PROVIDER_PACKAGE: ClassVar[str | None] = "gcp"

    kind: Literal["google"]
    clientId: str = Field(  # noqa: N815
        description="OAuth web client id created in the Google Cloud console (`<n>-<id>.apps.googleusercontent.com`).",
        examples=["1234-replaceme.apps.googleusercontent.com"],
    )
    clientSecret: SecretStr = Field(  # noqa: N815
        description="The web client's secret (required: Google generates it; `pulumi config set --secret --path`)."
    )
    domain: str = Field(description="Workspace domain: the ID token's `hd` must equal it, e.g. `corp-example.net`.")
    customerId: str | None = Field(  # noqa: N815
        default=None,
        pattern=r"^C[0-9A-Za-z]{4,20}$",
        description="Workspace customer id (`C01abcde`, Admin console > Account settings); needed by createGroups.",
    )
    createGroups: bool = Field(  # noqa: N815
        default=False, description="Create the `access` groups in Workspace (Cloud Identity); false: they exist."
    )

    @field_validator("clientId")
    @classmethod
    def _google_client_id(cls, value: str) -> str:
        if not re.fullmatch(r"[0-9]+-[0-9a-z]+\.apps\.googleusercontent\.com", value):
            raise ValueError(
                f"{value!r} is not a Google OAuth client id (`<number>-<id>.apps.googleusercontent.com`, "
                "Google Cloud console > APIs & Services > Credentials)"
            )
        return value

    @field_validator("domain")
    @classmethod
    def _domain_name(cls, value: str) -> str:
        domain = value.strip().lower()
        if not DOMAIN.fullmatch(domain):
            raise ValueError(f"{value!r} is not a domain name such as corp-example.net (no scheme, no @, no path)")
        return domain

    # --- hooks ----------------------------------------------------------------------------------

    def check_spec(self, spec: Spec) -> None:
        for index, rule in enumerate(spec.access):
            if not EMAIL.fullmatch(rule.group.lower()):
                raise at(
                    ("access", index, "group"),
                    f"{rule.group!r} is not a group email: kind google maps Workspace groups by their email, "
                    f"e.g. airflow-admins@{self.domain}",
                )
        for index, group in enumerate(spec.signIn.extraGroups):
            if not EMAIL.fullmatch(group.lower()):
                raise at(("signIn", "extraGroups", index), f"{group!r} is not a group email")
        if self.createGroups and not self.customerId:
            raise at(
                ("idp", "customerId"),
                "createGroups: true needs the Workspace customer id (Admin console > Account settings, e.g. C01abcde)",
            )

    def check_provider(self, spec: Spec, provider: ProviderConfig) -> None:
        if not provider.get("gcp:project"):
            raise ProviderConfigError(
                "gcp:project is not set: set it (`pulumi config set gcp:project <project-id>`) or GOOGLE_PROJECT: "
                "the project of the GKE cluster (Workload Identity pool <project>.svc.id.goog)"
            )

    def provider_settings(self, spec: Spec, provider: ProviderConfig) -> Mapping[str, Any]:
        """The provider works in the project whose Workload Identity pool the api-server uses (`gcp:project`)."""
        return {"project": provider["gcp:project"]}

    def fleet_names(self, spec: Spec, *, stack: str, provider: ProviderConfig) -> Mapping[str, str]:
        project = provider.get("gcp:project") or "the GCP project"
        names = {
            "Google OAuth client id": self.clientId,
            f"GCP service account in {project}": service_account_id(spec, "groups"),
        }
        if self.createGroups:
            # A group email exists once in Workspace: a second stack cannot create it again.
            for group in (*(rule.group for rule in spec.access), *spec.signIn.extraGroups):
                names[f"Workspace group {group.lower()!r} created in customer {self.customerId}"] = group.lower()
        return names

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

        how = "created by the program" if self.createGroups else "existing"
        return GroupGrant(
            group=group,
            principal=group.lower(),
            binding=f"the Workspace group with this email ({how}), asked of Cloud Identity at every login "
            "(nested memberships count)",
            claim_value=group,
            role=role,
            key=key_of(loc),
        )

    def contract(self, spec: Spec, *, stack: str, provider: ProviderConfig) -> ClientContract:
        return ClientContract(
            issuer=GOOGLE_ISSUER,
            scopes=("openid", "email", "profile"),
            role_claim="groups",  # no such claim: the values are the group emails Cloud Identity returns
            role_claim_scope=None,
            username_claim="sub",  # Google's account id: never reused, survives email changes
            required_claims={"hd": self.domain, "email_verified": True},
            role_source="cloud-identity",
            role_lookup={
                "url": CLOUD_IDENTITY_URL,
                "url_env": CLOUD_IDENTITY_URL_ENV,
                "member_claim": "email",
                "scopes": [GROUPS_READONLY_SCOPE],
                "timeout_seconds": 10,
                "max_pages": 10,
            },
            **common_contract(spec, provider="google"),
        )

    def provision(self, ctx: BuildContext) -> IdpClient:
        # `gcp:project` (or GOOGLE_PROJECT), as the program read it: check_provider refused a stack without it.
        project = ctx.provider["gcp:project"]
        return GoogleWorkspaceClient(ctx.name, spec=ctx.spec, contract=ctx.contract, project=project, opts=ctx.opts)

    @staticmethod
    def mock_outputs(type_: str, name: str, inputs: Mapping[str, Any]) -> dict[str, Any] | None:
        return gcp_mock_outputs(type_, name, inputs)


def registration_instructions(contract: ClientContract, client_id: str) -> dict[str, Any]:
    """What to set on the console-created OAuth client, exactly as Airflow will use it (pure)."""
    return {
        "console": "Google Cloud console > APIs & Services > Credentials > OAuth client ID (Web application)",
        "clientId": client_id,
        "applicationType": "Web application",
        "authorizedRedirectUris": list(contract.redirect_uris),
        "authorizedJavaScriptOrigins": [],
        "scopes": list(contract.scopes),
        "issuer": contract.issuer,
        "hostedDomain": contract.required_claims.get("hd"),
        "groups": list(contract.claim_values),
    }


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
