"""Reading the spec: from the running Pulumi program, or from stack files (CLI and tests)."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from components.contract import okta_org_url
from components.spec import CONFIG_KEY, OktaIdp, Spec, SpecError, parse_spec

STACKS_DIR = Path(__file__).resolve().parent.parent / "stacks"


def stack_file(stack: str) -> str:
    """The stack's config file, relative to the project (Pulumi.yaml: `stackConfigDir: stacks`)."""
    return f"stacks/Pulumi.{stack}.yaml"


@dataclass(frozen=True)
class ProgramInputs:
    """What the program deploys from: the validated spec, the stack, and the Okta org (if any)."""

    spec: Spec
    stack: str
    okta_org: str | None


def read_program_inputs() -> ProgramInputs:
    """The inputs of the stack being deployed. Anything wrong stops the program before a single
    resource is registered, with the stack file and key path named and no traceback."""
    import pulumi

    stack = pulumi.get_stack()
    source = stack_file(stack)
    try:
        with warnings.catch_warnings():
            # A nested `secure:` value (idp.clientSecret) marks the whole key secret; the model keeps
            # that value a SecretStr and the program hands it on as a Pulumi secret.
            warnings.simplefilter("ignore")
            raw = pulumi.Config("airflow-oidc").get_object("spec")
    except pulumi.ConfigTypeError:
        # Pulumi's own message repeats the value, which may be a secret.
        raise pulumi.RunError(f"{source}: {CONFIG_KEY}: must be a mapping (YAML object)") from None
    try:
        spec = parse_spec(raw, source)
    except SpecError as error:
        raise pulumi.RunError(str(error)) from None
    okta = pulumi.Config("okta")
    org = okta_org_url(
        okta.get("orgName") or os.environ.get("OKTA_ORG_NAME"),
        okta.get("baseUrl") or os.environ.get("OKTA_BASE_URL"),
    )
    if isinstance(spec.idp, OktaIdp) and not (spec.idp.orgUrl or org):
        raise pulumi.RunError(
            f"{source}: okta:orgName is not set: set it (`pulumi config set okta:orgName <org>`), "
            f"or OKTA_ORG_NAME, or {CONFIG_KEY}.idp.orgUrl"
        )
    return ProgramInputs(spec=spec, stack=stack, okta_org=org)


def load_stack_file(path: Path) -> dict[str, Any]:
    """The stack file's `config:` map."""
    document = yaml.safe_load(path.read_text()) or {}
    if not isinstance(document, dict):
        raise ValueError(f"{path}: a stack file is a mapping with a `config:` key")
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
