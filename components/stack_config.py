"""Reading the spec: from the running Pulumi program, or from stack files (CLI and tests)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import yaml

from components.spec import CONFIG_KEY, Spec, parse_spec

STACKS_DIR = Path(__file__).resolve().parent.parent / "stacks"


def stack_file(stack: str) -> str:
    """The stack's config file, relative to the project (Pulumi.yaml: `stackConfigDir: stacks`)."""
    return f"stacks/Pulumi.{stack}.yaml"


def read_program_spec() -> Spec:
    """The spec of the stack being deployed; a bad spec stops the program before anything is created."""
    import pulumi

    stack = pulumi.get_stack()
    with warnings.catch_warnings():
        # A nested `secure:` value (idp.clientSecret) marks the whole key secret; the spec model keeps
        # that value a SecretStr and the program hands it on as a Pulumi secret.
        warnings.simplefilter("ignore")
        raw = pulumi.Config("airflow-oidc").get_object("spec")
    try:
        return parse_spec(raw, stack_file(stack))
    except Exception as error:  # SpecError: say it cleanly, no traceback, exit non-zero
        raise pulumi.RunError(str(error)) from None


def load_stack_file(path: Path) -> dict[str, Any]:
    """The stack file's `config:` map."""
    document = yaml.safe_load(path.read_text()) or {}
    config = document.get("config") or {}
    if not isinstance(config, dict):
        raise ValueError(f"{path}: `config:` must be a mapping")
    return config


def replace_secure_values(value: Any, placeholder: str = "ciphertext-placeholder") -> tuple[Any, bool]:
    """Replace `{secure: ...}` leaves (encrypted by the CLI) by a placeholder; report if any was found."""
    if isinstance(value, dict):
        if set(value) == {"secure"}:
            return placeholder, True
        found = False
        out = {}
        for key, child in value.items():
            out[key], child_found = replace_secure_values(child, placeholder)
            found = found or child_found
        return out, found
    if isinstance(value, list):
        items = [replace_secure_values(child, placeholder) for child in value]
        return [item for item, _ in items], any(found for _, found in items)
    return value, False


def spec_from_stack_file(path: Path) -> Spec:
    """Validate a stack file's spec, naming the file in every error (as `pulumi up` would)."""
    config = load_stack_file(path)
    raw, _ = replace_secure_values(config.get(CONFIG_KEY))
    return parse_spec(raw, f"stacks/{path.name}" if path.parent.name == "stacks" else str(path))
