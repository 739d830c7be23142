"""What every IdP kind shares: `model` (the `IdpModel` hooks, pure), `contract` (the `ClientContract` the
kinds derive, pure), `context` (`BuildContext`: what the kinds' resources are built from) and `resources`
(`KindResources`, the `IdpClient` component base, the explicit provider, program secrets).

Re-exported here for the modules that import `components.idp.base`; the names of `resources.py` load it on
first use, so the pure side never does."""

from __future__ import annotations

from typing import Any

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

_RESOURCES = (
    "PROVIDER_RESOURCE_NAME",
    "ComponentResource",
    "IdpClient",
    "KindResources",
    "explicit_provider",
    "program_secret",
    "stack_provider_args",
)
"""Names defined by `resources.py`."""

__all__ = [
    "CREDENTIAL_PERIODS",
    "PROVIDER_RESOURCE_NAME",
    "ROTATION_EPOCH",
    "SERVICE_ACCOUNTS_NOT_OFFERED",
    "ComponentResource",
    "IdpClient",
    "IdpModel",
    "KindResources",
    "MockLookupError",
    "ProviderConfig",
    "ProviderConfigError",
    "credential_end_date",
    "explicit_provider",
    "program_secret",
    "secret_generation",
    "stack_provider_args",
]


def __getattr__(name: str) -> Any:
    if name in _RESOURCES:
        from components.idp.base import resources

        return getattr(resources, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
