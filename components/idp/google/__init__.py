"""Google Workspace (`idp.kind: google`): `model.py` (the `idp` keys, the contract, the access model: pure),
`resources.py` (the Pulumi components and the kind's resources hooks).

Re-exports the names other modules import from `components.idp.google`; those of `resources.py` load it on
first use, so importing the model (the spec, the pure tools) never does."""

from __future__ import annotations

from typing import Any

from components.idp.google.model import (
    CLOUD_IDENTITY_URL,
    CLOUD_IDENTITY_URL_ENV,
    DISCUSSION_FORUM_LABEL,
    DOMAIN,
    EMAIL,
    GOOGLE_ISSUER,
    GROUPS_READONLY_SCOPE,
    GoogleIdp,
    registration_instructions,
)

_RESOURCES = ("GoogleWorkspaceClient",)
"""Names defined by `resources.py`."""

__all__ = [
    "CLOUD_IDENTITY_URL",
    "CLOUD_IDENTITY_URL_ENV",
    "DISCUSSION_FORUM_LABEL",
    "DOMAIN",
    "EMAIL",
    "GOOGLE_ISSUER",
    "GROUPS_READONLY_SCOPE",
    "GoogleIdp",
    "GoogleWorkspaceClient",
    "registration_instructions",
]


def __getattr__(name: str) -> Any:
    if name in _RESOURCES:
        from components.idp.google import resources

        return getattr(resources, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
