"""Google Workspace (`idp.kind: google`): Sign in with Google, roles from Workspace groups; the pure side.

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

from components.gcp import gcp_mock_outputs, service_account_id
from components.idp.base.contract import ClientContract, common_contract
from components.idp.base.model import IdpModel, ProviderConfig, ProviderConfigError
from components.model import at

if TYPE_CHECKING:
    from components.access import GroupGrant
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
