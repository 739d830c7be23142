"""Protection: the Fernet key and, in protected environments, the IdP applications carry `protect`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .declared import (
    ENTRA_APP,
    ENTRA_SERVICE_PRINCIPAL,
    HELM_RELEASE,
    K8S_SECRET,
    KEYCLOAK_CLIENT,
    OKTA_APP,
    RANDOM_BYTES,
    Declared,
    Violation,
    strings_of,
    value_at,
)

try:
    from components.protection import DEFAULT_PROTECTED_ENVIRONMENTS, fernet_key_protected, identity_protected
except ImportError:
    # `plan --base` loads these rules beside an older revision's `components` (the side's own code comes
    # first on sys.path), which may predate protection.py: the rules' own project's file, by path
    # (this file is policy/rules/protection.py).
    import importlib.util
    import sys

    _spec = importlib.util.spec_from_file_location(
        "airflow_oidc_rules_protection", Path(__file__).resolve().parents[2] / "components" / "protection.py"
    )
    assert _spec is not None and _spec.loader is not None
    _protection = importlib.util.module_from_spec(_spec)
    sys.modules[_spec.name] = _protection
    _spec.loader.exec_module(_protection)
    DEFAULT_PROTECTED_ENVIRONMENTS = _protection.DEFAULT_PROTECTED_ENVIRONMENTS
    fernet_key_protected = _protection.fernet_key_protected
    identity_protected = _protection.identity_protected


IDP_APPS = (OKTA_APP, ENTRA_APP, ENTRA_SERVICE_PRINCIPAL, KEYCLOAK_CLIENT)
"""Replacing one of these logs everyone out and changes the client id: protected in protected environments."""


def _is_fernet_key(resource: Declared, fernet_secret_names: set[str]) -> bool:
    if resource.type == RANDOM_BYTES:
        return resource.name.endswith("fernet-key")
    if resource.type == K8S_SECRET:
        name = value_at(resource.inputs, "metadata", "name")
        return resource.name.endswith("fernet-key") or (isinstance(name, str) and name in fernet_secret_names)
    return False


def _external_database(resources: Sequence[Declared]) -> bool:
    """Whether the Airflow release keeps its metadata in an external database (`data.metadataSecretName`)."""
    return any(
        resource.type == HELM_RELEASE
        and isinstance(value_at(resource.inputs, "values", "data", "metadataSecretName"), str)
        for resource in resources
    )


def protected_in_prod(
    resources: Sequence[Declared], config: Mapping[str, Any] | None = None, environment: str | None = None
) -> list[Violation]:
    """The program's protection rule (`components/protection.py`, the same functions), checked on what it declared.

    The Fernet key (its RandomBytes and its Secret) is protected in `protectedEnvironments` (default: prod) and
    wherever the metadata database is external: replacing it makes every stored connection unreadable. With the
    chart's bundled Postgres, the data dies with the release anyway. IdP applications are protected in
    `protectedEnvironments`: replacing one logs everyone out and changes the client id.

    `environment` is the stack's environment (see `environment_of`); None protects only an external database's key.
    """
    protected_environments = set(strings_of((config or {}).get("protectedEnvironments"))) or set(
        DEFAULT_PROTECTED_ENVIRONMENTS
    )
    fernet_secret_names = {
        name
        for resource in resources
        if resource.type == HELM_RELEASE
        and isinstance(name := value_at(resource.inputs, "values", "fernetKeySecretName"), str)
    }
    external = _external_database(resources)
    keep_fernet = fernet_key_protected(
        environment, external_database=external, protected_environments=protected_environments
    )
    violations: list[Violation] = []
    for resource in resources:
        if resource.protect:
            continue
        if keep_fernet and _is_fernet_key(resource, fernet_secret_names):
            violations.append(
                Violation(resource, f"{resource.name}: the Fernet key must be protected (replacing it loses data)")
            )
        elif resource.type in IDP_APPS and identity_protected(environment, protected_environments):
            violations.append(
                Violation(
                    resource,
                    f"{resource.name}: an IdP application in `{environment}` must be protected "
                    "(replacing it logs everyone out)",
                )
            )
    return violations
