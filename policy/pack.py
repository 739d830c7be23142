"""Adapters: the plain rules of `rules.py` as pulumi_policy policies (the pack itself is built in `__main__.py`).

Importing this module starts nothing, so the wiring can be tested by calling a policy's `validate`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pulumi_policy import (
    Policy,
    PolicyConfigSchema,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import (
    UNKNOWN_ARCHIVE_VALUE,
    UNKNOWN_ARRAY_VALUE,
    UNKNOWN_ASSET_VALUE,
    UNKNOWN_BOOLEAN_VALUE,
    UNKNOWN_NUMBER_VALUE,
    UNKNOWN_OBJECT_VALUE,
    UNKNOWN_STRING_VALUE,
)

try:
    from policy import rules
except ImportError:  # the CLI runs the pack from inside policy/, without the repository around it
    import rules  # type: ignore[no-redef]

UNKNOWN_SENTINELS = {
    UNKNOWN_ARCHIVE_VALUE,
    UNKNOWN_ARRAY_VALUE,
    UNKNOWN_ASSET_VALUE,
    UNKNOWN_BOOLEAN_VALUE,
    UNKNOWN_NUMBER_VALUE,
    UNKNOWN_OBJECT_VALUE,
    UNKNOWN_STRING_VALUE,
}


def plain(value: Any) -> Any:
    """The analyzer's properties as plain dicts and lists, unknown values (preview) as `rules.UNKNOWN`.

    The analyzer wraps properties in proxies that raise on reading an unknown value, which would
    abort a whole policy during preview; the proxies hand out their raw target under `"__target"`.
    """
    if isinstance(value, str):
        return rules.UNKNOWN if value in UNKNOWN_SENTINELS else value
    if isinstance(value, Mapping):
        try:
            target = value["__target"]
        except KeyError:
            target = value
        return {str(key): plain(child) for key, child in target.items()}
    if isinstance(value, Sequence):
        try:
            target = value["__target"]  # type: ignore[call-overload]
        except (KeyError, TypeError, IndexError):
            target = value
        return [plain(child) for child in target]
    return value


def declared(resource: Any) -> rules.Declared:
    """A `ResourceValidationArgs` or `PolicyResource` as the rules' record."""
    return rules.Declared(
        type=resource.resource_type,
        name=resource.name,
        inputs=plain(resource.props),
        protect=bool(getattr(resource.opts, "protect", False)),
        urn=resource.urn,
    )


def stack_environment(resources: Sequence[rules.Declared]) -> str | None:
    """The stack's environment for `protected-in-prod`.

    The stack's own `airflow-oidc:spec` `environment` when the CLI hands the analyzer the stack's
    config (PULUMI_CONFIG); else what `rules.environment_of` reads from the release's labels, or the
    stack name (PULUMI_STACK).
    """
    try:
        config = json.loads(os.environ.get("PULUMI_CONFIG", "") or "{}")
        spec = config.get("airflow-oidc:spec")
        spec = json.loads(spec) if isinstance(spec, str) else spec
        if isinstance(spec, Mapping) and isinstance(spec.get("environment"), str):
            return str(spec["environment"])
    except (ValueError, AttributeError):
        pass
    return rules.environment_of(resources, os.environ.get("PULUMI_STACK"))


def defaults_dir() -> Path:
    """The environment defaults of the project this pack belongs to (`policy/` is in its root)."""
    return rules.project_defaults_dir(Path(__file__).resolve().parent.parent)


def admin_allowlist(resources: Sequence[rules.Declared]) -> dict[str, Any]:
    """Who may be Admin: the stack's environment's defaults file, the list `validate` and the program read."""
    return rules.admin_allowlist(defaults_dir(), stack_environment(resources))


ResourceRule = Callable[[rules.Declared, Mapping[str, Any] | None], list[str]]


def resource_policy(
    name: str, rule: ResourceRule, description: str, schema: PolicyConfigSchema | None = None
) -> ResourceValidationPolicy:
    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        for message in rule(declared(args), args.get_config()):
            report_violation(message, None)

    return ResourceValidationPolicy(name=name, description=description, validate=validate, config_schema=schema)


def stack_policy(
    name: str,
    check: Callable[[Sequence[rules.Declared], Mapping[str, Any] | None], list[rules.Violation]],
    description: str,
    schema: PolicyConfigSchema | None = None,
) -> StackValidationPolicy:
    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        resources = [declared(resource) for resource in args.resources]
        for violation in check(resources, args.get_config()):
            report_violation(violation.message, violation.resource.urn or None)

    return StackValidationPolicy(name=name, description=description, validate=validate, config_schema=schema)


LIFETIME_SCHEMA = PolicyConfigSchema(
    properties={
        "maxAccessTokenMinutes": {
            "type": "number",
            "minimum": 1,
            "default": rules.DEFAULT_MAX_ACCESS_TOKEN_MINUTES,
            "description": "Longest IdP access-token lifetime, in minutes.",
        },
        "maxSessionMinutes": {
            "type": "number",
            "minimum": 1,
            "default": rules.DEFAULT_MAX_SESSION_MINUTES,
            "description": "Longest session (and Airflow JWT) lifetime in minutes; the idle timeout may not exceed it.",
        },
    }
)
PROTECT_SCHEMA = PolicyConfigSchema(
    properties={
        "protectedEnvironments": {
            "type": "array",
            "items": {"type": "string"},
            "default": list(rules.DEFAULT_PROTECTED_ENVIRONMENTS),
            "description": "Environments whose IdP applications must be protected.",
        }
    }
)


def policies() -> list[Policy]:
    """Every guardrail, in the order `pulumi preview` reports them."""
    return [
        resource_policy(
            "redirect-uris-https",
            rules.redirect_uris_https,
            "Redirect and post-logout URIs are https (http only on localhost / 127.0.0.1) and have no wildcard.",
        ),
        resource_policy(
            "no-implicit-grant",
            rules.no_implicit_grant,
            "No implicit grant: tokens only through the authorization code flow.",
        ),
        resource_policy(
            "lifetimes-within-bounds",
            rules.lifetimes_within_bounds,
            "Token and session lifetimes within the configured bounds; the idle timeout within the session.",
            LIFETIME_SCHEMA,
        ),
        resource_policy(
            "chart-and-image-pinned",
            rules.chart_and_image_pinned,
            "The Helm chart version and the Airflow image are pinned (exact version or digest).",
        ),
        stack_policy(
            "no-secret-in-configmap",
            rules.no_secret_in_configmap,
            "No secret in a ConfigMap: no secret-named key, no value of a declared Secret.",
        ),
        stack_policy(
            "no-secret-in-helm-values",
            rules.no_secret_in_helm_values,
            "No secret in plain Helm values: reference Secrets (…SecretName, valueFrom.secretKeyRef).",
        ),
        stack_policy(
            "admin-only-allowed-groups",
            lambda resources, config: rules.admin_only_allowed_groups(resources, admin_allowlist(resources)),
            "Airflow's Admin role only for the groups and service accounts the stack's environment allows "
            "(allowedAdminGroups, allowedAdminServiceAccounts in stacks/defaults/<env>.yaml), checked on the "
            "declared access model, itself checked against what the resources grant.",
        ),
        stack_policy(
            "protected-in-prod",
            lambda resources, config: rules.protected_in_prod(resources, config, stack_environment(resources)),
            "IdP applications are protected in prod; the Fernet key in prod and wherever the database is external.",
            PROTECT_SCHEMA,
        ),
    ]
