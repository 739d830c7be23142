"""The stack file's text (header, spec, a comment on each placeholder) and the commands that follow it."""

from __future__ import annotations

from typing import Any

import yaml

from components.env_defaults import DEFAULTS_DIR
from components.idp.base import IdpModel
from components.model import CONFIG_KEY
from components.new_stack.sharing import GROUPS_KEY, Sharing
from components.new_stack.values import secret_keys
from components.stack_schema import MODELINES

SECRET_PLACEHOLDER = {"secure": "REPLACE-ME"}
"""A required secret key is written as a `secure:` value: `pulumi config set --secret --path` replaces it
(validate reads any `secure:` value as set; Pulumi refuses this one until it is replaced)."""


def render_stack_file(
    spec: dict[str, Any],
    filled: dict[str, str],
    model: type[IdpModel],
    stack: str,
    *,
    provider: dict[str, str] | None = None,
    sharing: Sharing | None = None,
    has_defaults: bool = True,
) -> str:
    """The stack file's text: a header, the spec, and a comment on each placeholder."""
    spec = {**spec, "idp": dict(spec["idp"])}
    for key in secret_keys(model):
        if key in filled:
            spec["idp"][key] = dict(SECRET_PLACEHOLDER)
    config: dict[str, Any] = {"kubernetes:context": "REPLACE-ME-kube-context", **(provider or {}), CONFIG_KEY: spec}
    body = yaml.safe_dump({"config": config}, sort_keys=False, default_flow_style=False)
    lines = []
    previous = ""
    notes = {GROUPS_KEY: sharing.groups_note} if sharing is not None and sharing.groups_note else {}
    for line in body.splitlines():
        stripped = line.strip()
        key = stripped.split(":", 1)[0]
        idp_key = line.startswith("      ") and not line.startswith("       ")
        if idp_key and key in filled:
            line += f"  # REPLACE: {filled[key]}"
        elif idp_key and key in notes:
            line += f"  # {notes[key]}"
        elif stripped.startswith("secure: REPLACE-ME"):
            line += f"  # pulumi config set --secret --path '{CONFIG_KEY}.idp.{previous}' <secret>"
        elif stripped.startswith("kubernetes:context:"):
            line += "  # REPLACE: the cluster's kube context"
        elif stripped.startswith("forwardedAllowIps:"):
            line += "  # REPLACE: the ingress controller's pod range (docs/stacks.md: Forwarded headers)"
        previous = key
        lines.append(line)
    provider_keys = ", ".join(model.PROVIDER_CONFIG) or "none"
    environment = spec["environment"]
    inherited = (
        [
            f"# Values stacks/{DEFAULTS_DIR}/{environment}.yaml sets (lifetimes, rotation, chart, image, replicas)",
            "# are inherited; see docs/stacks.md, Environment defaults.",
        ]
        if has_defaults
        else [f"# No stacks/{DEFAULTS_DIR}/{environment}.yaml: the spec model's own defaults apply (--no-defaults)."]
    )
    header = [
        *MODELINES,  # editors check the file against schema/stack-file.schema.json as you type
        f"# Stack {stack}: written by `airflow-oidc new-stack`. Replace the values marked REPLACE.",
        *inherited,
        f"# Provider settings of idp.kind {spec['idp']['kind']}: {provider_keys} (pulumi config set).",
    ]
    if sharing is not None and sharing.source is not None:
        header.append(f"# Shares the IdP and the `access` groups of {sharing.source.stack}.")
    return "\n".join(header + lines) + "\n"


def next_commands(stack: str, model: type[IdpModel], provided: dict[str, str] | None = None) -> list[str]:
    commands = [f"pulumi stack init {stack}"]
    for key, env in model.PROVIDER_CONFIG.items():
        if key not in (provided or {}):
            commands.append(f"pulumi config set -s {stack} {key} <value>    # or export {env}")
    commands += [
        f"pulumi config set -s {stack} kubernetes:context <context>",
        f"airflow-oidc validate {stack}",
        f"airflow-oidc plan {stack}",
        f"pulumi preview -s {stack} --diff --policy-pack policy",
    ]
    return commands
