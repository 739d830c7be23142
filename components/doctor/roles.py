"""The security manager's own claim -> role mapping, loaded from the rendered webserver_config.py."""

from __future__ import annotations

import ast
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

ROLE_MAPPING_FUNCTIONS = ("_as_list", "role_keys_for")


@dataclass(frozen=True)
class RoleMapping:
    """The rendered security manager's claim -> role logic (its own code, not a copy)."""

    namespace: Mapping[str, Any]

    @classmethod
    def from_rendered_config(cls, text: str) -> RoleMapping:
        """Execute only the rendered file's literal constants and its pure mapping functions: the file
        imports Airflow (absent from the Pulumi venv), but `role_keys_for` needs only these."""
        keep: list[ast.stmt] = []
        for node in ast.parse(text).body:
            if isinstance(node, ast.FunctionDef) and node.name in ROLE_MAPPING_FUNCTIONS:
                keep.append(node)
            elif isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None:
                try:
                    ast.literal_eval(node.value)
                except ValueError:
                    continue
                keep.append(node)
        namespace: dict[str, Any] = {"Any": Any, "__name__": "airflow_oidc_rendered_config"}
        exec(compile(ast.Module(body=keep, type_ignores=[]), "<webserver_config.py>", "exec"), namespace)  # noqa: S102
        missing = [name for name in ROLE_MAPPING_FUNCTIONS if name not in namespace]
        if missing:
            raise RuntimeError(f"the rendered webserver_config.py defines no {missing}")
        return cls(namespace)

    def claim_values(self, claims: Mapping[str, Any]) -> list[str]:
        return list(self.namespace["_as_list"](claims.get(self.namespace["ROLE_CLAIM"])))

    def roles(self, claims: Mapping[str, Any]) -> list[str]:
        """The Airflow roles a user with these claims gets (empty: refused), as the security manager decides."""
        keys = self.namespace["role_keys_for"](self.claim_values(claims))
        by_value, default_key = self.namespace["ROLE_BY_CLAIM_VALUE"], self.namespace["DEFAULT_ROLE_KEY"]
        return sorted({self.namespace["DEFAULT_ROLE"] if key == default_key else by_value[key] for key in keys})
