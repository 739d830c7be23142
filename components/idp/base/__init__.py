"""What every IdP kind shares: `model` (the `IdpModel` hooks, pure), `contract` (the `ClientContract` the
kinds derive, pure), `context` (what the kinds' resources are built from) and `resources` (the `IdpClient`
component base, the explicit provider, program secrets). Re-exported here for the modules that import
`components.idp.base`."""

from __future__ import annotations

from components.idp.base.model import (
    CREDENTIAL_PERIODS,
    ROTATION_EPOCH,
    SERVICE_ACCOUNTS_NOT_OFFERED,
    IdpModel,
    MockLookupError,
    ProviderConfig,
    ProviderConfigError,
    credential_end_date,
    secret_generation,
)
from components.idp.base.resources import (
    PROVIDER_RESOURCE_NAME,
    ComponentResource,
    IdpClient,
    explicit_provider,
    program_secret,
    stack_provider_args,
)

__all__ = [
    "CREDENTIAL_PERIODS",
    "PROVIDER_RESOURCE_NAME",
    "ROTATION_EPOCH",
    "SERVICE_ACCOUNTS_NOT_OFFERED",
    "ComponentResource",
    "IdpClient",
    "IdpModel",
    "MockLookupError",
    "ProviderConfig",
    "ProviderConfigError",
    "credential_end_date",
    "explicit_provider",
    "program_secret",
    "secret_generation",
    "stack_provider_args",
]
