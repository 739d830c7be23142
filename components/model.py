"""Building blocks of the spec models, shared by `components/spec.py` and the IdP kinds' own models.

Kept apart from `spec.py` so that an IdP kind (`components/idp/<kind>/model.py`) can define its `idp` keys
without importing the whole spec (which imports every kind).
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

CONFIG_KEY = "airflow-oidc:spec"
Role = Literal["Admin", "Op", "User", "Viewer"]
ROLE_RANK: dict[str, int] = {"Viewer": 1, "User": 2, "Op": 3, "Admin": 4}
"""Airflow's built-in roles, each granting everything the lower ones grant."""
LOOPBACK_HOSTS = ("localhost", "127.0.0.1")
GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


class Model(BaseModel):
    """Base of every spec model: camelCase keys, unknown keys refused, values immutable."""

    model_config = ConfigDict(
        extra="forbid",
        alias_generator=to_camel,
        populate_by_name=True,
        frozen=True,
    )


def require_url(value: str, *, what: str) -> None:
    """An http(s) URL without query or fragment; http only for loopback hosts."""
    match = re.fullmatch(r"(https?)://([^/:]+)(:\d+)?(/[^?#]*)?", value)
    if not match:
        raise ValueError(f"{what} {value!r} is not an http(s) URL")
    scheme, host = match.group(1), match.group(2)
    if scheme == "http" and host not in LOOPBACK_HOSTS:
        raise ValueError(f"{what} {value!r}: http is allowed only for localhost or 127.0.0.1; use https")


class LocatedError(ValueError):
    """A model-level error that knows which key it is about (a path from the spec's root)."""

    def __init__(self, loc: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.loc = loc
        self.message = message


def key_text(loc: tuple[str | int, ...] | list[str | int]) -> str:
    """A key path as errors spell it: `airflow-oidc:spec.access[2].group`."""
    text = CONFIG_KEY
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text


def at(loc: tuple[str | int, ...], message: str) -> LocatedError:
    """An error about the key at `loc` (from the spec's root), e.g. `at(("idp", "tenantId"), "...")`."""
    return LocatedError(loc, message)
