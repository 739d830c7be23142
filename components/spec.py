"""The public contract: the stack config key ``airflow-oidc:spec``, parsed.

The models are in `components/spec_base.py` (and `spec_airflow.py`); this module completes `Spec` with the
`idp` union of the registered kinds' models (`components/idp/__init__.py`: models only, never their
resources) and turns pydantic's errors into problems naming the stack file and the key path. The step
after the environment defaults (`components/env_defaults.py`) and before the contract.
"""

from __future__ import annotations

from typing import Annotated, Any, Union

from pydantic import Field, ValidationError

from components.idp import KINDS, kind_names
from components.idp.oidc.model import OidcIdp
from components.idp.okta.model import CustomAuthorizationServer, OktaIdp, OrgAuthorizationServer
from components.key_hints import missing_key_message, unknown_key_message
from components.model import CONFIG_KEY, LocatedError, Role
from components.spec_airflow import OWNED_VALUE_PATHS, AirflowSettings
from components.spec_base import KIND_ONLY_SERVICE_ACCOUNT_KEYS, AccessRule, ServiceAccount, Spec, split_hostname

__all__ = [
    "CONFIG_KEY",
    "KIND_ONLY_SERVICE_ACCOUNT_KEYS",
    "OWNED_VALUE_PATHS",
    "AccessRule",
    "AirflowSettings",
    "CustomAuthorizationServer",
    "OidcIdp",
    "OktaIdp",
    "OrgAuthorizationServer",
    "Role",
    "ServiceAccount",
    "Spec",
    "SpecError",
    "format_loc",
    "json_schema",
    "parse_spec",
    "split_hostname",
]

# `Spec.idp`: a discriminated union of every registered kind's `idp` model (components/idp/__init__.py).
Idp: Any = Annotated[Union[KINDS], Field(discriminator="kind")]  # type: ignore[valid-type]  # noqa: UP007 - from a tuple
Spec.model_rebuild(_types_namespace={"Idp": Idp})
# The key's description names the registered kinds (spec_base cannot: the kinds import it).
Spec.model_fields["idp"].description = (
    "The identity provider: `kind` (" + ", ".join(kind_names()) + "), then that kind's own keys."
)
Spec.model_rebuild(force=True)


class SpecError(Exception):
    """A spec that cannot be deployed. `str()` lists every problem with its file, line (when the stack
    file was read: `stacks/Pulumi.dev.yaml:12: ...`, as compilers and editors write it) and key path."""

    def __init__(self, source: str, problems: list[str], lines: list[int | None] | None = None) -> None:
        self.source = source
        self.problems = problems
        self.lines: list[int | None] = list(lines) if lines is not None else [None] * len(problems)
        """The stack file's line of each problem's key (None: unknown)."""
        super().__init__(
            "\n".join(
                f"{source}{f':{line}' if line else ''}: {problem}"
                for problem, line in zip(problems, self.lines, strict=True)
            )
        )


def format_loc(loc: tuple[str | int, ...]) -> str:
    """('access', 2, 'role') -> 'airflow-oidc:spec.access[2].role'."""
    text = CONFIG_KEY
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text


# A discriminated union puts the chosen tag in the error path (idp.okta.orgUrl): it is not a key.
_UNION_TAGS = {"idp": kind_names(), "authorizationServer": ("org", "custom")}


def _without_union_tags(loc: tuple[str | int, ...]) -> tuple[str | int, ...]:
    kept: list[str | int] = []
    previous: str | int | None = None
    for part in loc:
        # Only the part right after the union key is the tag: a user key spelled like a tag
        # (idp: {kind: okta, okta: ...}) must stay in the path.
        if isinstance(previous, str) and part in _UNION_TAGS.get(previous, ()):
            previous = None
            continue
        kept.append(part)
        previous = part
    return tuple(kept)


def _message(error: dict[str, Any]) -> tuple[tuple[str | int, ...], str]:
    tagged: tuple[str | int, ...] = tuple(error["loc"])
    kind = error["type"]
    ctx = error.get("ctx") or {}
    loc = _without_union_tags(tagged)
    original = ctx.get("error")
    if isinstance(original, LocatedError):
        return tuple(loc) + original.loc, original.message
    value = error.get("input")
    if kind == "literal_error":
        return loc, f"{value!r} is not one of {ctx.get('expected', '').replace(' or ', ', ').replace(chr(39), '')}"
    if kind == "extra_forbidden":
        return loc, unknown_key_message(Spec, tagged)
    if kind == "missing":
        return loc, missing_key_message(Spec, tagged, format_loc(loc))
    if kind == "union_tag_invalid":
        return loc + (str(ctx.get("discriminator", "")).strip("'"),), (
            f"{ctx.get('tag')!r} is not one of {ctx.get('expected_tags', '').replace(chr(39), '')}"
        )
    if kind == "union_tag_not_found":
        return loc + (str(ctx.get("discriminator", "")).strip("'"),), "required key is missing"
    if kind == "string_pattern_mismatch":
        return loc, f"{value!r} does not match {ctx.get('pattern')}"
    text = str(error["msg"])
    text = text.removeprefix("Value error, ")
    return loc, text


def parse_spec(raw: Any, source: str) -> Spec:
    """Validate the raw `airflow-oidc:spec` value; raise `SpecError` naming `source` and each key path."""
    if raw is None:
        raise SpecError(source, [f"{CONFIG_KEY}: required config key is missing"])
    if not isinstance(raw, dict):
        raise SpecError(source, [f"{CONFIG_KEY}: must be a mapping, got {type(raw).__name__}"])
    try:
        return Spec.model_validate(raw)
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_url=False):
            loc, text = _message(dict(error))
            problems.append(f"{format_loc(loc)}: {text}")
        raise SpecError(source, problems) from None


def json_schema() -> dict[str, Any]:
    """JSON Schema of the spec (by alias), for editors."""
    schema = _accept_encrypted_secrets(Spec.model_json_schema(by_alias=True))
    schema["title"] = CONFIG_KEY
    return schema


# How a stack file holds a value set with `pulumi config set --secret --path`: `{secure: <ciphertext>}`.
_SECURE_VALUE = {"type": "object", "properties": {"secure": {"type": "string"}}, "required": ["secure"]}


def _accept_encrypted_secrets(schema: Any) -> Any:
    """Secret keys (pydantic's `format: password`) also accept the CLI's encrypted `{secure: ...}` form."""
    if isinstance(schema, list):
        return [_accept_encrypted_secrets(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    if schema.get("format") == "password":
        plain = {key: value for key, value in schema.items() if key not in ("description", "title", "default")}
        outer = {key: value for key, value in schema.items() if key in ("description", "title", "default")}
        return {**outer, "anyOf": [plain, {**_SECURE_VALUE, "additionalProperties": False}]}
    return {key: _accept_encrypted_secrets(value) for key, value in schema.items()}
