"""The house's shape, from its own imports (issue 18): no import circles, no import that runs back up a
floor, the pure models apart from the Pulumi resources, modules of one purpose.

The graph is read with `ast` (every `import`, at module level or inside a function, type-only ones too: a
lazy import that dodges a circle is still a circle) over the product's packages."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.import_reader import Import, imports_of

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("components", "policy", "localdev")
# Floors, top to bottom: a module may import its own floor's or a lower floor's modules, never a higher's.
FLOORS: tuple[tuple[str, ...], ...] = (
    ("tests",),
    ("localdev",),
    ("policy",),
    ("components",),
)
# Inside components/, top to bottom: the CLI; the commands it runs (pure tools: they run the program only
# under the mock engine, in a worker); the program's Pulumi components; the pure models and derivations
# (spec, contract, a kind's model, access model, Helm values, rendered config) that everything stands on.
COMPONENT_FLOORS: tuple[tuple[str, ...], ...] = (
    ("components.cli",),
    (
        "components.doctor",
        "components.plan",
        "components.new_stack",
        "components.spec_reference",
        "components.validate_report",
        "components.stack_schema",
        "components.stack_files",
        "components.fleet",
        "components.mock_engine",
    ),
    ("components.airflow_oidc", "components.airflow", "components.secret_store", "*.resources", "*.service_accounts"),
)
MAX_LINES = 500


def modules(root: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def graph(root: Path) -> dict[str, dict[str, Import]]:
    mods = modules(root)
    return {
        name: {i.target: i for i in imports_of(name, path, mods) if i.target in mods} for name, path in mods.items()
    }


def circles(edges: dict[str, dict[str, Import]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for start in sorted(edges):
        if start in index:
            continue
        work: list[tuple[str, list[str]]] = [(start, sorted(edges[start]))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, pending = work[-1]
            if pending:
                child = pending.pop()
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, sorted(edges[child])))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def floor_of(module: str) -> int:
    for number, floor in enumerate(FLOORS):
        if any(module == top or module.startswith(top + ".") for top in floor):
            return number
    raise AssertionError(f"{module}: on no floor")


def upward(root: Path) -> list[str]:
    """Imports from a lower floor to a higher one (components importing policy, localdev or tests, ...)."""
    found: list[str] = []
    mods = modules(root)
    for name, path in mods.items():
        for imp in imports_of(name, path, mods):
            top = imp.target.split(".")[0]
            line = f"{path.relative_to(root)}:{imp.line}: {name} imports {imp.target}"
            if top in {"tests", *PACKAGES} and floor_of(imp.target) < floor_of(name) and line not in found:
                found.append(line)
    return found


def component_floor(module: str) -> int:
    """The floor of a module of components/ (COMPONENT_FLOORS; the last floor: the pure models)."""
    for number, floor in enumerate(COMPONENT_FLOORS):
        for pattern in floor:
            if pattern.startswith("*."):
                if module.endswith(pattern[1:]) and module.startswith("components.idp."):
                    return number
            elif module == pattern or module.startswith(pattern + "."):
                return number
    return len(COMPONENT_FLOORS)


def upward_in_components(root: Path) -> list[str]:
    """Imports in components/ from a lower floor to a higher one. A package may import its own descendants
    (a kind's package re-exports its resources' names on first use): the package is its modules' facade."""
    found: list[str] = []
    mods = modules(root)
    for name, path in mods.items():
        if not name.startswith("components"):
            continue
        for imp in imports_of(name, path, mods):
            target = imp.target
            if not target.startswith("components") or target.startswith(name + "."):
                continue
            line = f"{path.relative_to(root)}:{imp.line}: {name} imports {target}"
            if component_floor(target) < component_floor(name) and line not in found:
                found.append(line)
    return found


def test_the_product_has_no_import_circle() -> None:
    found = circles(graph(ROOT))
    assert not found, "import circles:\n" + "\n".join(" ⇄ ".join(c) for c in found)


def test_no_import_runs_back_up_a_floor() -> None:
    assert not upward(ROOT), "\n".join(upward(ROOT))


def test_no_import_in_components_runs_back_up_a_floor() -> None:
    """A model never reaches for the resources, the program never for a command, a command never for the CLI."""
    assert not upward_in_components(ROOT), "\n".join(upward_in_components(ROOT))


def test_every_module_is_of_a_readable_size() -> None:
    big = {
        str(path.relative_to(ROOT)): lines
        for path in modules(ROOT).values()
        if path.is_relative_to(ROOT / "components") and (lines := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert not big, f"modules over {MAX_LINES} lines: {big}"


def write(root: Path, files: dict[str, str]) -> Path:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        (
            {
                "components/__init__.py": "",
                "components/a.py": "from components import b\n",
                "components/b.py": "import components.a\n",
            },
            [["components.a", "components.b"]],
        ),
        (  # a lazy import inside a function closes the circle too
            {
                "components/__init__.py": "",
                "components/a.py": "from components.b import f\n",
                "components/b.py": "def f():\n    from components.a import g\n",
            },
            [["components.a", "components.b"]],
        ),
        (  # a relative import, through a package's __init__
            {
                "components/__init__.py": "",
                "components/idp/__init__.py": "from .okta import X\n",
                "components/idp/okta.py": "from components.spec import S\n",
                "components/spec.py": "from components.idp import X\n",
            },
            [["components.idp", "components.idp.okta", "components.spec"]],
        ),
        (
            {
                "components/__init__.py": "",
                "components/a.py": "from components import b\n",
                "components/b.py": "import os\n",
            },
            [],
        ),
    ],
)
def test_the_check_sees_a_circle(tmp_path: Path, files: dict[str, str], expected: list[list[str]]) -> None:
    assert circles(graph(write(tmp_path, files))) == expected


def test_the_check_sees_an_upward_import(tmp_path: Path) -> None:
    root = write(
        tmp_path,
        {
            "components/__init__.py": "",
            "components/a.py": "def f():\n    from policy.rules import r\n",
            "policy/__init__.py": "",
            "policy/rules.py": "from components.a import f\n",
        },
    )
    assert upward(root) == ["components/a.py:2: components.a imports policy.rules"]


def test_the_check_sees_a_model_reaching_for_resources(tmp_path: Path) -> None:
    root = write(
        tmp_path,
        {
            "components/__init__.py": "",
            "components/idp/__init__.py": "",
            "components/idp/okta/__init__.py": (
                "def __getattr__(name):\n    from components.idp.okta import resources\n"
            ),
            "components/idp/okta/model.py": "def grant():\n    from components.idp.okta.resources import provision\n",
            "components/idp/okta/resources.py": "from components.idp.okta.model import grant\n",
            "components/plan.py": "from components.cli import main\n",
            "components/cli.py": "from components import plan\n",
        },
    )
    assert upward_in_components(root) == [
        "components/idp/okta/model.py:2: components.idp.okta.model imports components.idp.okta.resources",
        "components/plan.py:1: components.plan imports components.cli",
    ]
