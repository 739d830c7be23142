"""A generic OpenID provider (`idp.kind: oidc`): `model.py` (the `idp` keys, the contract, the access model: pure),
`resources.py` (the Pulumi components and the kind's resources hooks).

Re-exports the names other modules import from `components.idp.oidc`; those of `resources.py` load it on
first use, so importing the model (the spec, the pure tools) never does."""

from __future__ import annotations

from typing import Any

from components.idp.oidc.model import (
    OidcIdp,
    oidc_service_account_client_id,
    registration_instructions,
    service_account_registration,
)

_RESOURCES = ("ExternalOidcClient",)
"""Names defined by `resources.py`."""

__all__ = [
    "ExternalOidcClient",
    "OidcIdp",
    "oidc_service_account_client_id",
    "registration_instructions",
    "service_account_registration",
]


def __getattr__(name: str) -> Any:
    if name in _RESOURCES:
        from components.idp.oidc import resources

        return getattr(resources, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
