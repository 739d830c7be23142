"""Reading the spec: from the running Pulumi program, or from stack files (CLI and tests)."""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, SecretStr

from components.access import AdminAllowlist, admin_problems
from components.airflow_values import local_chart_problem
from components.env_defaults import Resolved, resolve_spec
from components.idp import kind_resources
from components.idp.base.context import stack_file as stack_file  # the stack file's name (re-exported)
from components.idp.base.model import STORE_PROVIDER_CONFIG, ProviderConfig, ProviderConfigError, check_store_provider
from components.key_hints import key_path_parts, secret_command, spec_line_finder
from components.project import ProjectNotFoundError, find_project, load_project
from components.spec import CONFIG_KEY, Spec, SpecError, format_loc

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class ProgramInputs:
    """What the program deploys from: the validated spec, the stack, and its kind's provider settings."""

    spec: Spec
    stack: str
    provider: dict[str, str]
    """The provider config keys the kind reads (`okta:orgName`, ...), from the stack or the environment."""


def read_program_inputs() -> ProgramInputs:
    """The inputs of the stack being deployed. Anything wrong stops the program before a single
    resource is registered, with the stack file and key path named and no traceback."""
    import pulumi

    stack = pulumi.get_stack()
    source = stack_file(stack)
    stacks_dir = program_stacks_dir()
    try:
        with warnings.catch_warnings():
            # A nested `secure:` value (idp.clientSecret) marks the whole key secret; the model keeps
            # that value a SecretStr and the program hands it on as a Pulumi secret.
            warnings.simplefilter("ignore")
            raw = pulumi.Config("airflow-oidc").get_object("spec")
    except pulumi.ConfigTypeError:
        # Not JSON: a plain string (the CLI hands structured values over as JSON). Pulumi's own message
        # repeats the value, which may be a secret: validate's words instead.
        problem = SpecError(source, [f"{CONFIG_KEY}: must be a mapping, got str"])
        raise pulumi.RunError(_with_file_lines(problem, stacks_dir / f"Pulumi.{stack}.yaml")) from None
    try:
        # The same resolution as `airflow-oidc validate`: the stack's values over stacks/defaults/<env>.yaml.
        resolved = resolve_spec(raw, source, stacks_dir)
    except SpecError as error:
        raise pulumi.RunError(_with_file_lines(error, stacks_dir / f"Pulumi.{stack}.yaml")) from None
    spec = resolved.spec
    # A relative chartPath is relative to the project (Pulumi.yaml), where the engine starts the providers.
    chart_problem = local_chart_problem(spec, Path(pulumi.get_root_directory() or Path.cwd()))
    if chart_problem:
        raise pulumi.RunError(f"{source}: {CONFIG_KEY}.airflow.chartPath: {chart_problem}")
    provider = provider_settings(spec, pulumi_config_value)
    # The program receives config decrypted: a secret was given encrypted when the config key is a secret
    # (`pulumi config set --secret --path` marks the whole `airflow-oidc:spec` secret).
    problems = input_problems(
        resolved, stack=stack, provider=provider, encrypted=lambda loc: config_key_is_secret(CONFIG_KEY)
    )
    if problems:
        raise pulumi.RunError(_with_file_lines(SpecError(source, problems), stacks_dir / f"Pulumi.{stack}.yaml"))
    try:
        # Only the program asks the IdP (it has the provider's credentials); still before declaring anything.
        kind_resources(spec.idp).lookup(spec, provider)
    except ProviderConfigError as error:
        raise pulumi.RunError(f"{source}: {error}") from None
    return ProgramInputs(spec=spec, stack=stack, provider=provider)


def _with_file_lines(error: SpecError, file: Path) -> str:
    """The error's text with the stack file's lines (the config came from it), as validate names them."""
    return str(with_lines(error, file.read_text()) if file.is_file() else error)


def config_key_is_secret(key: str) -> bool:
    """Whether the running program's config key is a secret (mocks: `set_all_config`'s secret keys; the
    engine: PULUMI_CONFIG_SECRET_KEYS, which the Python SDK does not read into its own set)."""
    from pulumi.runtime import config as runtime_config

    return runtime_config.is_config_secret(key) or key in runtime_config.get_config_secret_keys_env()


def secret_locations(model: BaseModel, loc: Loc = ()) -> list[Loc]:
    """Where the spec holds a value of a secret-typed key (`SecretStr`), e.g. `("idp", "clientSecret")`."""
    found: list[Loc] = []
    for name, info in type(model).model_fields.items():
        value, key = getattr(model, name), info.alias or name
        if isinstance(value, SecretStr):
            found.append((*loc, key))
        elif isinstance(value, BaseModel):
            found += secret_locations(value, (*loc, key))
        elif isinstance(value, list):
            for index, item in enumerate(value):
                if isinstance(item, BaseModel):
                    found += secret_locations(item, (*loc, key, index))
    return found


def plaintext_secret_problems(spec: Spec, encrypted: Callable[[Loc], bool]) -> list[str]:
    """A secret-typed key given in plain text in the stack file (readable by anyone who can read the
    repository): refused, with the command that encrypts it. The value itself is never repeated."""
    problems = []
    for loc in secret_locations(spec):
        if not encrypted(loc):
            key = format_loc(loc)
            problems.append(
                f"{key}: a secret given in plain text: encrypt it in the stack file with `{secret_command(key)}` "
                "(it replaces the plain value), and rotate it at the IdP if this file was ever committed"
            )
    return problems


def input_problems(
    resolved: Resolved,
    *,
    stack: str,
    provider: ProviderConfig,
    check_settings: bool = True,
    encrypted: Callable[[Loc], bool] | None = None,
) -> list[str]:
    """Every check beyond the spec's own that the program runs before it declares anything, and
    `airflow-oidc validate` runs too (so they cannot disagree): secrets given in plain text (`encrypted`
    says whether the value at a key was encrypted; None: not known here), the kind's and the secret store's
    provider settings, then the access model's Admins against the environment's allowlist. One problem per
    line, each naming its key (`okta:orgName: ...`, `airflow-oidc:spec.access[2].role: ...`).

    `check_settings` false (`new-stack`, before the team runs `pulumi config set`): provider settings not
    given yet stand in as `unset` (who gets which role never depends on them), the allowlist still applies."""
    spec = resolved.spec
    plaintext = plaintext_secret_problems(spec, encrypted) if encrypted is not None else []
    if check_settings:
        try:
            spec.idp.check_provider(spec, provider)
            check_store_provider(spec, provider)
        except ProviderConfigError as error:
            return [*plaintext, str(error)]
    else:
        provider = {**{key: "unset" for key in type(spec.idp).PROVIDER_CONFIG}, **provider}
    allowlist = resolved.defaults.allowlist if resolved.defaults is not None else AdminAllowlist()
    model = spec.idp.access_model(spec, stack=stack, provider=provider)
    return [*plaintext, *(f"{CONFIG_KEY}.{key}: {message}" for key, message in admin_problems(model, allowlist))]


def program_stacks_dir() -> Path:
    """The stack config directory of the project being deployed: where the engine says Pulumi.yaml is (under
    `pulumi up`), else the project around the working directory (mock runs: `plan`'s worker runs in it)."""
    import pulumi

    root = pulumi.get_root_directory()
    try:
        return (load_project(Path(root)) if root else find_project()).stacks_dir
    except ProjectNotFoundError as error:
        raise pulumi.RunError(str(error)) from None


def pulumi_config_value(key: str) -> str | None:
    """A config value of the running program by full key (`okta:orgName`)."""
    import pulumi

    namespace, _, name = key.partition(":")
    return pulumi.Config(namespace).get(name)


def provider_settings(spec: Spec, read: Callable[[str], str | None]) -> dict[str, str]:
    """The provider config keys the spec's kind and secret store read, each from `read` or else its env var."""
    settings: dict[str, str] = {}
    wanted = {**type(spec.idp).PROVIDER_CONFIG, **STORE_PROVIDER_CONFIG[spec.clientSecret.store]}
    for key, env in wanted.items():
        value = read(key) or os.environ.get(env)
        if value:
            settings[key] = value
    return settings


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
    return resolved_from_stack_file(path).spec


def resolved_from_stack_file(path: Path) -> Resolved:
    """The stack file's spec over its environment's defaults (`<dir>/defaults/<env>.yaml`), as the
    program resolves it, with what was inherited."""
    config = load_stack_file(path)
    raw, _ = replace_secure_values(config.get(CONFIG_KEY))
    try:
        return resolve_spec(raw, f"stacks/{path.name}" if path.parent.name == "stacks" else str(path), path.parent)
    except SpecError as error:
        raise with_lines(error, path.read_text()) from None


def with_lines(error: SpecError, text: str) -> SpecError:
    """The error with each problem's line in the stack file `text` (where its key, or its nearest parent, is)."""
    find = spec_line_finder(text)
    lines = [find(parts) if (parts := key_path_parts(problem)) is not None else None for problem in error.problems]
    return SpecError(error.source, error.problems, lines)


def inputs_from_stack_file(path: Path, *, check_settings: bool = True) -> tuple[Resolved, dict[str, str]]:
    """The stack file checked as the program checks its inputs before declaring anything (`airflow-oidc
    validate`): the resolved spec, then `input_problems` with the provider settings the file (or the
    environment) gives. Raises `SpecError` naming the file and each key."""
    resolved = resolved_from_stack_file(path)
    provider = provider_from_stack_file(path, resolved.spec)
    stack = path.name.removeprefix("Pulumi.").removesuffix(".yaml")
    raw = load_stack_file(path).get(CONFIG_KEY)

    def encrypted(loc: Loc) -> bool:
        """The stack file holds the value as the CLI's `secure:` ciphertext."""
        value: Any = raw
        for part in loc:
            if isinstance(value, list) and isinstance(part, int) and 0 <= part < len(value):
                value = value[part]
                continue
            if not (isinstance(value, dict) and part in value):
                return False
            value = value[part]
        return isinstance(value, dict) and set(value) == {"secure"}

    problems = input_problems(
        resolved, stack=stack, provider=provider, check_settings=check_settings, encrypted=encrypted
    )
    if problems:
        source = f"stacks/{path.name}" if path.parent.name == "stacks" else str(path)
        raise with_lines(SpecError(source, problems), path.read_text())
    return resolved, provider


def provider_from_stack_file(path: Path, spec: Spec) -> dict[str, str]:
    """The provider settings the stack file gives the spec's kind (environment variables as fallback)."""
    config = load_stack_file(path)
    return provider_settings(spec, lambda key: str(config[key]) if isinstance(config.get(key), str) else None)
