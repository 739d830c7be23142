"""The spec reference: a Markdown table of every key of `airflow-oidc:spec`, generated from the models
(`airflow-oidc reference`), and its block in docs/reference.md kept up to date (`--update`)."""

from __future__ import annotations

import inspect
import json
import sys
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo

from components.spec import Spec

REFERENCE_BEGIN = "<!-- spec-reference:begin -->"
REFERENCE_END = "<!-- spec-reference:end -->"
REGENERATE = "reference --update docs/reference.md"
"""The arguments that rewrite the reference in docs/reference.md (run from the project root)."""


@dataclass(frozen=True)
class ReferenceRow:
    """One spec key in the reference table."""

    key: str
    type: str
    default: str
    description: str


def render_reference() -> str:
    """Markdown table of every spec key (dotted path, type, default, description), from the models."""
    lines = [
        f"<!-- generated from components/spec.py by `airflow-oidc {REGENERATE}`: edit the models, not this table -->",
        "| Key | Type | Default | Description |",
        "| --- | --- | --- | --- |",
    ]
    for row in reference_rows(Spec):
        cells = (f"`{row.key}`", row.type, row.default, row.description)
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines) + "\n"


def reference_rows(model: type[BaseModel], prefix: str = "") -> list[ReferenceRow]:
    """Rows for every key of `model` and, depth first, of the models inside it."""
    rows: list[ReferenceRow] = []
    for name, field in model.model_fields.items():
        rows.extend(_field_rows(prefix + (field.alias or name), field))
    return rows


def _field_rows(key: str, field: FieldInfo, condition: str = "") -> list[ReferenceRow]:
    """The field's row, then the rows of the model(s) it holds: itself, its list items or its union's variants."""
    members, _ = _union_members(field.annotation)
    inner = members[0] if len(members) == 1 else None
    item = get_args(inner)[0] if get_origin(inner) is list else None
    models = [member for member in members if _is_model(member)] or ([item] if _is_model(item) else [])
    description = field.description or (_doc(models[0]) if len(models) == 1 else "")
    rows = [ReferenceRow(key, _type_text(field), _default_text(field), _one_line(condition + description))]
    if len(models) > 1 and isinstance(field.discriminator, str):
        rows.extend(_variant_rows(key, field.discriminator, models))
    elif models:
        rows.extend(reference_rows(models[0], key + ("[]." if item is not None else ".")))
    return rows


def _variant_rows(key: str, tag: str, variants: list[type[BaseModel]]) -> list[ReferenceRow]:
    """A discriminated union: one row for the tag, then each variant's own keys, marked with their tag."""
    choices = {get_args(variant.model_fields[tag].annotation)[0]: variant for variant in variants}
    rows = [
        ReferenceRow(
            f"{key}.{tag}",
            "one of " + ", ".join(f"`{choice}`" for choice in choices),
            "required",
            _one_line(" ".join(f"`{choice}`: {_doc(variant)}" for choice, variant in choices.items())),
        )
    ]
    for choice, variant in choices.items():
        for name, field in variant.model_fields.items():
            alias = field.alias or name
            if alias != tag:
                rows.extend(_field_rows(f"{key}.{alias}", field, f"Only when `{key}.{tag}` is `{choice}`. "))
    return rows


def _type_text(field: FieldInfo) -> str:
    members, nullable = _union_members(field.annotation)
    limits: dict[str, Any] = {}
    for meta in field.metadata:  # annotated-types constraints (Ge, MinLen, ...) and pydantic's pattern
        for attr in ("ge", "le", "min_length", "max_length", "pattern"):
            if getattr(meta, attr, None) is not None:
                limits[attr] = getattr(meta, attr)
    text = _kind_text(members[0], limits) if len(members) == 1 else "object"
    return text + (", or null" if nullable else "")


def _kind_text(annotation: Any, limits: dict[str, Any]) -> str:
    origin = get_origin(annotation)
    if origin is Literal:
        values = [f"`{value}`" for value in get_args(annotation)]
        return values[0] if len(values) == 1 else "one of " + ", ".join(values)
    if origin is list:
        item = get_args(annotation)[0]
        noun = "objects" if _is_model(item) else _kind_text(item, {}) + "s"
        return ("non-empty " if limits.get("min_length") else "") + f"list of {noun}"
    if origin is dict or annotation is dict:
        return "mapping"
    if _is_model(annotation):
        return "object"
    if annotation is bool:
        return "boolean"
    if annotation is int:
        low, high = limits.get("ge"), limits.get("le")
        if low is not None and high is not None:
            return f"integer, {low} to {high}"
        if low is not None:
            return f"integer, at least {low}"
        return "integer" if high is None else f"integer, at most {high}"
    text = "string (secret)" if annotation is SecretStr else "string" if annotation is str else str(annotation)
    if limits.get("pattern"):
        return f"{text} matching `{limits['pattern']}`"
    if limits.get("max_length"):
        return f"{text}, {limits.get('min_length', 0)} to {limits['max_length']} characters"
    return ("non-empty " if limits.get("min_length") else "") + text


def _default_text(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    value = field.get_default(call_default_factory=True)
    if isinstance(value, BaseModel):
        # Only what differs from the model's own defaults: those are listed row by row below it.
        value = value.model_dump(mode="json", by_alias=True, exclude_defaults=True)
    # JSON is valid YAML and quotes what bare YAML would misread (`*` is an alias in YAML).
    return f"`{json.dumps(value)}`"


def _union_members(annotation: Any) -> tuple[list[Any], bool]:
    """(members of the union other than None, whether None is allowed); a plain type is a union of one."""
    if get_origin(annotation) in (Union, types.UnionType):
        args = get_args(annotation)
        members = [arg for arg in args if arg is not type(None)]
        return members, len(members) < len(args)
    return [annotation], False


def _is_model(value: Any) -> bool:
    return isinstance(value, type) and issubclass(value, BaseModel)


def _doc(model: type[BaseModel]) -> str:
    # __doc__, not inspect.getdoc: an undocumented model must not borrow its base class's docstring.
    return inspect.cleandoc(model.__doc__ or "")


def _one_line(text: str) -> str:
    return " ".join(text.split())


def replace_reference_block(text: str, reference: str) -> str:
    """`text` (a README) with the block between the reference markers replaced by `reference`."""
    head, _, rest = text.partition(REFERENCE_BEGIN)
    _, _, tail = rest.partition(REFERENCE_END)
    if text.count(REFERENCE_BEGIN) != 1 or text.count(REFERENCE_END) != 1 or REFERENCE_END in head:
        raise ValueError(
            f"needs {REFERENCE_BEGIN} then {REFERENCE_END}, once each "
            f"(this project keeps the reference in docs/reference.md: `airflow-oidc {REGENERATE}`)"
        )
    return f"{head}{REFERENCE_BEGIN}\n{reference.strip()}\n{REFERENCE_END}{tail}"


def reference(update: Path | None) -> int:
    """Print the reference, or rewrite it in place between the markers of the file `update`."""
    if update is None:
        sys.stdout.write(render_reference())
        return 0
    try:
        text = update.read_text()
        updated = replace_reference_block(text, render_reference())
    except (OSError, ValueError) as error:
        print(f"{update}: {getattr(error, 'strerror', None) or error}", file=sys.stderr)
        return 1
    if updated == text:
        print(f"{update}: the spec reference is up to date")
    else:
        update.write_text(updated)
        print(f"{update}: spec reference updated")
    return 0
