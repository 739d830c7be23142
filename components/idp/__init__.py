"""The IdP kinds: the registry. A kind is one package (`components/idp/<kind>/`: `model.py` pure,
`resources.py` its Pulumi side); adding a kind is that package and its line in `KINDS`.

Importing this package loads the kinds' models only (the spec and the pure tools need no more); a kind's
resources load on use (`kind_resources`), and a kind imports its provider SDK inside its components.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, cast

from components.idp.azuread.model import AzureadIdp
from components.idp.base.model import IdpModel
from components.idp.google.model import GoogleIdp
from components.idp.keycloak.model import KeycloakIdp
from components.idp.oidc.model import OidcIdp
from components.idp.okta.model import OktaIdp

if TYPE_CHECKING:
    from components.idp.base.resources import KindResources

KINDS: tuple[type[IdpModel], ...] = (
    OktaIdp,
    OidcIdp,
    KeycloakIdp,
    AzureadIdp,
    GoogleIdp,
)
"""The `idp` model of every kind, in the order the docs list them."""


def kind_name(model: type[IdpModel]) -> str:
    """The `kind` value of a kind's model (its Literal)."""
    annotation = model.model_fields["kind"].annotation
    return str(annotation.__args__[0])  # type: ignore[union-attr]


def kind_names() -> tuple[str, ...]:
    """Every `idp.kind` value."""
    return tuple(kind_name(model) for model in KINDS)


def kind_resources(idp: IdpModel) -> KindResources:
    """The Pulumi side of `idp`'s kind: its package's `resources` module (`lookup`, `provision`,
    `provision_service_accounts`), imported on first use."""
    package = type(idp).__module__.rpartition(".")[0]  # components.idp.<kind>
    return cast("KindResources", importlib.import_module(f"{package}.resources"))
