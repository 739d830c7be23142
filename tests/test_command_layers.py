"""The CLI's packages import one way: `airflow-oidc` (components/cli.py) imports its sub-commands, never the
reverse, and inside components/doctor/ and components/new_stack/ each module imports only modules below it
(the doctor's check groups never import one another: the runner puts them together)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.import_reader import imported as read_imports
from tests.import_reader import statements

LAYERS = {
    "doctor": {
        "report": 0,
        "http_client": 0,
        "roles": 0,
        "id_token": 1,
        "state": 2,
        "discovery": 3,
        "idp_client": 3,
        "airflow_request": 3,
        "tokens": 3,
        "runner": 4,
        "command": 5,
    },
    "new_stack": {"values": 0, "sharing": 1, "render": 2, "command": 3},
}


def imported(path: Path) -> set[str]:
    """Every module `path` imports, at any depth of its code (lazy imports in functions included); the
    commands import absolutely, so a layer is read from the names alone."""
    relative = [statement.line for statement in statements(path) if statement.level]
    assert not relative, f"{path}: relative import at line(s) {relative}"
    return read_imports(path)


@pytest.mark.parametrize("package", sorted(LAYERS))
def test_each_module_of_the_package_imports_only_modules_below_it(package: str) -> None:
    floors = LAYERS[package]
    modules = {path.stem: path for path in (ROOT / "components" / package).glob("*.py")}
    assert set(modules) == {*floors, "__init__"}, f"a new module of components/{package}/ needs a floor"
    prefix = f"components.{package}"
    for name, floor in floors.items():
        within = {other.split(".")[2] for other in imported(modules[name]) if other.startswith(prefix + ".")}
        assert prefix not in imported(modules[name]), f"components/{package}/{name}.py imports its own package"
        upward = {other for other in within if other != name and floors.get(other, floor) >= floor}
        assert not upward, f"components/{package}/{name}.py imports {sorted(upward)} (not below it)"


def test_only_the_cli_imports_the_cli_and_the_stack_file_helpers_import_no_command() -> None:
    for path in (ROOT / "components").rglob("*.py"):
        if path.name != "cli.py" or path.parent.name != "components":
            assert not any(name.startswith("components.cli") for name in imported(path)), path
    commands = ("components.cli", "components.doctor", "components.new_stack", "components.plan")
    below = imported(ROOT / "components" / "stack_files.py")
    assert not any(name.startswith(commands) for name in below)
