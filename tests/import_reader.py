"""A module's imports, read with `ast` at every depth (lazy imports in functions and type-only ones too: a lazy
import that dodges a circle is still a circle), for the tests that keep the house's floors:
tests/test_import_graph.py (the whole graph), tests/test_command_layers.py, tests/test_plan.py and
tests/test_policy.py (one package's layers each)."""

from __future__ import annotations

import ast
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Statement:
    """One `import` / `from ... import` statement, as written."""

    module: str | None
    """`from <module> import ...` (None for `import ...` and for `from . import ...`)."""
    aliases: tuple[str, ...]
    """What follows `import`."""
    level: int
    """The dots of a relative import (0: absolute)."""
    line: int
    top_level: bool
    """At module level (not inside a function, class or `if`)."""

    @property
    def names(self) -> tuple[str, ...]:
        """`import a.b` -> `a.b`; `from a import b, c` -> `a`, `a.b`, `a.c` (`b` may be a module or a name);
        relative ones as written after the dots."""
        if self.module is None:
            return self.aliases
        return (self.module, *(f"{self.module}.{alias}" for alias in self.aliases))


def statements(path: Path) -> list[Statement]:
    """Every import statement of the module at `path`."""
    tree = ast.parse(path.read_text(), filename=str(path))
    top_level = {id(node) for node in tree.body}
    found: list[Statement] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            aliases = tuple(alias.name for alias in node.names)
            found.append(Statement(None, aliases, 0, node.lineno, id(node) in top_level))
        elif isinstance(node, ast.ImportFrom):
            aliases = tuple(alias.name for alias in node.names)
            found.append(Statement(node.module, aliases, node.level, node.lineno, id(node) in top_level))
    return found


def imported(path: Path, *, module_level: bool = False) -> set[str]:
    """The absolute names `path` imports (`module_level`: only its module-level statements)."""
    return {
        name
        for statement in statements(path)
        if not statement.level and (statement.top_level or not module_level)
        for name in statement.names
    }


@dataclass(frozen=True)
class Import:
    """An import resolved to a module of the graph."""

    target: str
    line: int
    top_level: bool


def imports_of(name: str, path: Path, known: Iterable[str]) -> list[Import]:
    """The imports of module `name` (at `path`), relative ones resolved against its package, each resolved to
    the longest `known` module name (or left as written)."""
    known = set(known)
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found: list[Import] = []
    for statement in statements(path):
        if statement.module is None and not statement.level:  # import a.b
            targets = list(statement.aliases)
        else:  # from [.]a import b: a.b and a itself
            base = statement.module or ""
            if statement.level:
                base = ".".join(package[: len(package) - statement.level + 1] + ([base] if base else []))
            targets = [f"{base}.{alias}" for alias in statement.aliases] + [base]
        for target in targets:
            resolved = target
            while resolved and resolved not in known and "." in resolved:
                resolved = resolved.rpartition(".")[0]
            resolved = resolved if resolved in known else target
            if resolved != name:
                found.append(Import(resolved, statement.line, statement.top_level))
    return found
