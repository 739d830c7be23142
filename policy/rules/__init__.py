"""The guardrails as plain functions, importable without pulumi_policy's analyzer server.

The pack (`policy/__main__.py`) adapts them to `pulumi preview --policy-pack policy`; `airflow-oidc plan`
and the tests apply them to a mock-engine run, so a pull request from a fork gets the same verdict.

Input: `Declared` records, one per resource the program declared: its type token, logical name,
inputs (camelCase, as the engine sees them, secrets unwrapped; a value unknown during preview is
`UNKNOWN` and is never judged) and whether it is protected. Every rule returns violation messages;
an empty list is a pass. A resource of a type a rule does not know passes it.

- Resource rules: `rule(resource, config) -> list[str]`.
- Stack rules (they need the other resources or the environment): `rule(resources, config[, environment])
  -> list[Violation]`, each naming the resource it is about.

`config` is the policy's pack configuration (`--policy-pack-config`); missing keys take each rule's defaults.

The rules by concern, one module each (every module imports `declared` and nothing above it):

- `declared`: the `Declared` record, `Violation`, the type tokens and the readers every rule shares.
- `idp_apps`: the IdP application's registration (`redirect-uris-https`, `no-implicit-grant`).
- `lifetimes`: token and session lifetimes (`lifetimes-within-bounds`).
- `pinning`: the Helm chart and the Airflow image (`chart-and-image-pinned`).
- `plaintext_secrets`: secrets never in plain text (`no-secret-in-configmap`, `no-secret-in-helm-values`).
- `access`: the declared access model, what the resources grant, and the stack's environment.
- `admin`: the environment's Admin allowlist (`admin-only-allowed-groups`), over `access`.
- `protection`: `protected-in-prod`, the program's own protection rule (`components.protection`).

This package uses relative imports only: it loads as `policy.rules`, as `rules` (the CLI runs the pack from
inside `policy/`) and by path under any name (`airflow-oidc plan` loads `policy/rules/__init__.py`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .access import (
    ACCESS_MODEL_FILE,
    AUTH_SETTINGS_FILE,
    ENVIRONMENT_LABEL,
    ROLE_MAPPING_NAMES,
    STACK_NAME_LABEL,
    DeclaredAccess,
    RenderedAccess,
    RoleMapping,
    access_model_mismatches,
    declared_access_model,
    environment_of,
    rendered_access,
    role_mapping,
)
from .admin import ADMIN_ALLOWLIST_KEYS, admin_allowlist, admin_only_allowed_groups, project_defaults_dir
from .declared import (
    CONFIG_MAP,
    ENTRA_APP,
    ENTRA_ASSIGNMENT,
    ENTRA_SERVICE_PRINCIPAL,
    HELM_RELEASE,
    K8S_SECRET,
    KEYCLOAK_CLIENT,
    OKTA_APP,
    OKTA_POLICY_RULE,
    RANDOM_BYTES,
    UNKNOWN,
    Declared,
    Violation,
)
from .idp_apps import LOOPBACK_HOSTS, no_implicit_grant, redirect_uris_https, uri_problem
from .lifetimes import DEFAULT_MAX_ACCESS_TOKEN_MINUTES, DEFAULT_MAX_SESSION_MINUTES, lifetimes_within_bounds
from .pinning import IMAGE_DIGEST, PINNED_IMAGE_TAG, PINNED_VERSION, chart_and_image_pinned
from .plaintext_secrets import (
    HELM_SECRET_VALUES,
    IDENTIFIER_WORDS,
    MIN_SECRET_LENGTH,
    SECRET_CONFIG_OPTION,
    SECRET_ENV_NAME,
    SECRET_WORDS,
    declared_secret_values,
    looks_like_secret_key,
    names_an_identifier,
    no_secret_in_configmap,
    no_secret_in_helm_values,
    plain_helm_secrets,
)
from .protection import (
    DEFAULT_PROTECTED_ENVIRONMENTS,
    IDP_APPS,
    fernet_key_protected,
    identity_protected,
    protected_in_prod,
)

__all__ = [
    "ACCESS_MODEL_FILE",
    "ADMIN_ALLOWLIST_KEYS",
    "AUTH_SETTINGS_FILE",
    "CONFIG_MAP",
    "DEFAULT_MAX_ACCESS_TOKEN_MINUTES",
    "DEFAULT_MAX_SESSION_MINUTES",
    "DEFAULT_PROTECTED_ENVIRONMENTS",
    "Declared",
    "DeclaredAccess",
    "ENTRA_APP",
    "ENTRA_ASSIGNMENT",
    "ENTRA_SERVICE_PRINCIPAL",
    "ENVIRONMENT_LABEL",
    "ENVIRONMENT_RULES",
    "HELM_RELEASE",
    "HELM_SECRET_VALUES",
    "IDENTIFIER_WORDS",
    "IDP_APPS",
    "IMAGE_DIGEST",
    "K8S_SECRET",
    "KEYCLOAK_CLIENT",
    "LOOPBACK_HOSTS",
    "MIN_SECRET_LENGTH",
    "OKTA_APP",
    "OKTA_POLICY_RULE",
    "PINNED_IMAGE_TAG",
    "PINNED_VERSION",
    "RANDOM_BYTES",
    "RESOURCE_RULES",
    "ROLE_MAPPING_NAMES",
    "RenderedAccess",
    "RoleMapping",
    "SECRET_CONFIG_OPTION",
    "SECRET_ENV_NAME",
    "SECRET_WORDS",
    "STACK_NAME_LABEL",
    "STACK_RULES",
    "UNKNOWN",
    "Violation",
    "access_model_mismatches",
    "admin_allowlist",
    "admin_only_allowed_groups",
    "chart_and_image_pinned",
    "check_all",
    "declared_access_model",
    "declared_secret_values",
    "environment_of",
    "fernet_key_protected",
    "identity_protected",
    "lifetimes_within_bounds",
    "looks_like_secret_key",
    "names_an_identifier",
    "no_implicit_grant",
    "no_secret_in_configmap",
    "no_secret_in_helm_values",
    "plain_helm_secrets",
    "project_defaults_dir",
    "protected_in_prod",
    "redirect_uris_https",
    "rendered_access",
    "role_mapping",
    "uri_problem",
]

# ---------------------------------------------------------------------------------------------- the set

RESOURCE_RULES = {
    "redirect-uris-https": redirect_uris_https,
    "no-implicit-grant": no_implicit_grant,
    "lifetimes-within-bounds": lifetimes_within_bounds,
    "chart-and-image-pinned": chart_and_image_pinned,
}
"""Policy name -> rule over one resource."""

STACK_RULES = {
    "no-secret-in-configmap": no_secret_in_configmap,
    "no-secret-in-helm-values": no_secret_in_helm_values,
}
"""Policy name -> rule over all resources (no environment needed)."""

ENVIRONMENT_RULES = ("admin-only-allowed-groups", "protected-in-prod")
"""Policies that need the stack's environment (its defaults file, its protection)."""


def check_all(
    resources: Sequence[Declared],
    config: Mapping[str, Mapping[str, Any]] | None = None,
    stack: str | None = None,
    *,
    environment: str | None = None,
    defaults_dir: Path | None = None,
) -> dict[str, list[str]]:
    """Every rule over one stack's resources: policy name -> messages (what `airflow-oidc plan` reports).

    `config` is the pack configuration: policy name -> that policy's config, as in `--policy-pack-config`.
    `environment` (else read from the resources, else the stack name) picks the Admin allowlist in
    `defaults_dir` (`stacks/defaults/`) and the protection rules.
    """
    config = config or {}
    environment = environment or environment_of(resources, stack)
    results: dict[str, list[str]] = {}
    for name, rule in RESOURCE_RULES.items():
        results[name] = [message for resource in resources for message in rule(resource, config.get(name))]
    for name, stack_rule in STACK_RULES.items():
        results[name] = [str(violation) for violation in stack_rule(resources, config.get(name))]
    results["admin-only-allowed-groups"] = [
        str(violation) for violation in admin_only_allowed_groups(resources, admin_allowlist(defaults_dir, environment))
    ]
    results["protected-in-prod"] = [
        str(violation) for violation in protected_in_prod(resources, config.get("protected-in-prod"), environment)
    ]
    return results
