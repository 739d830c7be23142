"""What an error about a spec key can teach, read from the models themselves: the key a misspelt one was
meant to be (`acess` -> `access`, `tenantID` -> `tenantId`), whether a missing key is a secret (and so
the `pulumi config set --secret --path` command that sets it), and on which line of the stack file a
key path is written (the YAML loader keeps the marks).
"""

from __future__ import annotations

import difflib
import re
import types
from collections.abc import Callable, Sequence
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo

from components.model import CONFIG_KEY

Loc = Sequence[str | int]


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The models an annotation holds: itself, an Optional's, a list's items, a union's variants."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _models_in(get_args(annotation)[0])
    if origin in (Union, types.UnionType, list):
        return [model for arg in get_args(annotation) for model in _models_in(arg)]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return []


def keys_of(model: type[BaseModel]) -> dict[str, FieldInfo]:
    """The model's keys as a stack file spells them (aliases) -> their fields."""
    return {info.alias or name: info for name, info in model.model_fields.items()}


def _tags(model: type[BaseModel]) -> set[Any]:
    """The single-value Literal fields of a union variant (`kind: okta`, `mode: custom`)."""
    tags = set()
    for info in model.model_fields.values():
        if get_origin(info.annotation) is Literal and len(get_args(info.annotation)) == 1:
            tags.add(get_args(info.annotation)[0])
    return tags


def model_at(root: type[BaseModel], loc: Loc) -> type[BaseModel] | None:
    """The model whose keys are at `loc` (pydantic's error location, union tags included: `idp.azuread`),
    or None when the path leaves the models (a mapping such as `airflow.values`)."""
    candidates = [root]
    for part in loc:
        if isinstance(part, int):
            continue
        chosen = [model for model in candidates if part in _tags(model)]
        if len(candidates) > 1 and chosen:
            candidates = chosen  # the union tag pydantic puts in the path
            continue
        fields = [keys_of(model)[part] for model in candidates if part in keys_of(model)]
        if not fields:
            return None
        candidates = _models_in(fields[0].annotation)
        if not candidates:
            return None
    return candidates[0] if len(candidates) == 1 else None


def did_you_mean(key: str, known: Sequence[str]) -> str | None:
    """The known key a misspelt one most likely meant: the same but for case, else the closest spelling."""
    for candidate in known:
        if candidate.lower() == key.lower():
            return candidate
    close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.75)
    if close:
        return close[0]
    folded = {candidate.lower(): candidate for candidate in known}
    close = difflib.get_close_matches(key.lower(), list(folded), n=1, cutoff=0.75)
    return folded[close[0]] if close else None


def unknown_key_message(root: type[BaseModel], loc: Loc) -> str:
    """`unknown key` with the key it was likely meant to be, else the keys allowed there."""
    model = model_at(root, loc[:-1])
    key = str(loc[-1])
    if model is None:
        return "unknown key (check the spelling; keys are camelCase)"
    known = list(keys_of(model))
    meant = did_you_mean(key, known)
    if meant is not None:
        return f"unknown key; did you mean `{meant}`?"
    return "unknown key (keys here: " + ", ".join(f"`{name}`" for name in known) + ")"


def is_secret_field(info: FieldInfo) -> bool:
    return SecretStr in (info.annotation, *get_args(info.annotation))


def secret_command(key_path: str) -> str:
    """The command that sets a secret spec key (encrypted in the stack file as a `secure:` value)."""
    return f"pulumi config set --secret --path '{key_path}' <value>"


def missing_key_message(root: type[BaseModel], loc: Loc, key_path: str) -> str:
    """`required key is missing`, and for a secret the command that sets it."""
    model = model_at(root, loc[:-1])
    info = keys_of(model).get(str(loc[-1])) if model is not None and loc else None
    if info is not None and is_secret_field(info):
        return f"required key is missing: it is a secret, set it with `{secret_command(key_path)}`"
    return "required key is missing"


# --- lines of the stack file ------------------------------------------------------------------------

_KEY_PATH = re.compile(re.escape(CONFIG_KEY) + r"((?:\.[A-Za-z0-9_$-]+|\[\d+\])*)")


def key_path_parts(text: str) -> list[str | int] | None:
    """`airflow-oidc:spec.access[2].role: ...` -> ['access', 2, 'role']; None when `text` names no spec key."""
    match = _KEY_PATH.match(text)
    if match is None:
        return None
    return [int(part) if part.isdigit() else part for part in re.findall(r"[^.\[\]]+", match.group(1))]


def spec_line_finder(text: str) -> Callable[[Sequence[str | int]], int | None]:
    """A function from a spec key path to the 1-based line of the stack file `text` where it is written:
    the key itself, or (for a key that is not there, such as a missing one) the nearest parent that is."""
    try:
        root = yaml.compose(text)
    except yaml.YAMLError:
        return lambda parts: None

    def child(node: yaml.Node | None, key: str | int) -> tuple[yaml.Node, yaml.Node] | None:
        """(the node whose line names `key`, its value)."""
        if isinstance(node, yaml.MappingNode) and isinstance(key, str):
            for key_node, value in node.value:
                if isinstance(key_node, yaml.ScalarNode) and key_node.value == key:
                    return key_node, value
        if isinstance(node, yaml.SequenceNode) and isinstance(key, int) and 0 <= key < len(node.value):
            return node.value[key], node.value[key]
        return None

    def find(parts: Sequence[str | int]) -> int | None:
        line: int | None = None
        node: yaml.Node | None = root
        for key in ("config", CONFIG_KEY, *parts):
            found = child(node, key)
            if found is None:
                break
            named, node = found
            line = named.start_mark.line + 1
        return line

    return find
