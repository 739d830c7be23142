"""`airflow-oidc schema --stack-file`: a JSON Schema for a whole `Pulumi.<stack>.yaml`, for editors.

The spec under `config.airflow-oidc:spec` (the models' own schema), the provider settings the kinds
and secret stores read (each kind's `PROVIDER_CONFIG`), and `secure:` values wherever Pulumi may put
one. Draft 7, which the YAML language server (VS Code, Neovim, ...) and JetBrains IDEs read. The project
ships it as `schema/stack-file.schema.json`; every stack file names it on its first lines:

    # yaml-language-server: $schema=../schema/stack-file.schema.json
    # $schema: ../schema/stack-file.schema.json
"""

from __future__ import annotations

import json
from typing import Any

from components.idp import KINDS, kind_name
from components.idp.base.model import STORE_PROVIDER_CONFIG
from components.model import CONFIG_KEY
from components.spec import json_schema

SCHEMA_FILE = "schema/stack-file.schema.json"
"""Where the project keeps the schema, relative to its root."""
MODELINES = (
    f"# yaml-language-server: $schema=../{SCHEMA_FILE}",
    f"# $schema: ../{SCHEMA_FILE}",
)
"""The first lines of a stack file (in `stacks/`) that point editors at the schema: the YAML language
server's modeline (VS Code, Neovim, Helix ...) and JetBrains' comment."""

_SECURE = {
    "type": "object",
    "description": "A value `pulumi config set --secret` encrypted for this stack.",
    "properties": {"secure": {"type": "string"}},
    "required": ["secure"],
    "additionalProperties": False,
}
_ANY_VALUE: dict[str, Any] = {
    "description": "Another provider's or program's config value (plain, structured, or a `secure:` value).",
    "type": ["string", "number", "boolean", "object", "array"],
}


def provider_settings() -> dict[str, dict[str, Any]]:
    """Every provider config key a kind or secret store reads -> its schema (a string, or a secure value)."""
    readers: dict[str, tuple[str, list[str]]] = {}
    for model in KINDS:
        for key, env in model.PROVIDER_CONFIG.items():
            readers.setdefault(key, (env, []))[1].append(f"idp.kind {kind_name(model)}")
    for store, keys in STORE_PROVIDER_CONFIG.items():
        for key, env in keys.items():
            readers.setdefault(key, (env, []))[1].append(f"clientSecret.store {store}")
    return {
        key: {
            "description": f"Read by {', '.join(users)} (or the environment variable {env}).",
            "anyOf": [{"type": "string", "minLength": 1}, {"$ref": "#/definitions/secure"}],
        }
        for key, (env, users) in sorted(readers.items())
    }


def _draft7(value: Any) -> Any:
    """pydantic's `$defs` references as draft 7's `definitions`."""
    if isinstance(value, dict):
        return {key: _draft7(child) for key, child in value.items()}
    if isinstance(value, list):
        return [_draft7(child) for child in value]
    if isinstance(value, str) and value.startswith("#/$defs/"):
        return "#/definitions/" + value.removeprefix("#/$defs/")
    return value


def stack_file_schema() -> dict[str, Any]:
    """The JSON Schema of a `Pulumi.<stack>.yaml` of this project."""
    spec = _draft7(json_schema())
    definitions = {**spec.pop("$defs", {}), "secure": _SECURE}
    config_properties: dict[str, Any] = {
        CONFIG_KEY: spec,
        "kubernetes:context": {
            "description": "The kube context the Kubernetes provider deploys to (`kubectl config get-contexts`).",
            "type": "string",
            "minLength": 1,
        },
        **provider_settings(),
    }
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "Pulumi.<stack>.yaml of an airflow-oidc project",
        "description": f"A stack's config: the spec under `config.{CONFIG_KEY}` and the provider settings.",
        "type": "object",
        "properties": {
            "config": {
                "type": "object",
                "properties": config_properties,
                "additionalProperties": _ANY_VALUE,
            },
            "secretsprovider": {"type": "string", "description": "How this stack's secrets are encrypted."},
            "encryptedkey": {"type": "string"},
            "encryptionsalt": {"type": "string"},
            "environment": {"description": "Pulumi ESC environments this stack imports."},
        },
        "additionalProperties": False,
        "definitions": definitions,
    }


def render() -> str:
    return json.dumps(stack_file_schema(), indent=2) + "\n"
