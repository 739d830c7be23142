"""What a kind's Pulumi side is built from: one run's spec, contract, stack, provider settings and date."""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from components.idp.base.contract import ClientContract
from components.spec_base import Spec

if TYPE_CHECKING:
    import pulumi


def stack_file(stack: str) -> str:
    """The stack's config file, relative to the project (Pulumi.yaml: `stackConfigDir: stacks`)."""
    return f"stacks/Pulumi.{stack}.yaml"


@dataclass(frozen=True)
class BuildContext:
    """One program run's inputs to a kind's resources hooks (`provision`, `provision_service_accounts`)."""

    name: str
    """The kind's component name (`airflow-oidc-<kind>`); its children are named from it."""
    spec: Spec
    """The resolved spec."""
    contract: ClientContract
    """The client contract derived from it."""
    stack: str
    """The stack's name (per-stack names at the IdP: client ids, policies, scopes)."""
    provider: Mapping[str, str]
    """The provider settings the kind and the secret store read (`okta:orgName`, `gcp:project`, ...)."""
    today: datetime.date
    """The run's date: which rotation period the secrets are in (one date for the whole run)."""
    opts: pulumi.ResourceOptions
    """Options of the component the hook declares (its parent; the kind's explicit provider)."""

    @property
    def stack_file(self) -> str:
        """The stack file, as errors name it (`stacks/Pulumi.<stack>.yaml`)."""
        return stack_file(self.stack)

    def under(self, opts: pulumi.ResourceOptions) -> BuildContext:
        """The same context with other resource options (the service accounts: under the kind's component)."""
        return dataclasses.replace(self, opts=opts)
