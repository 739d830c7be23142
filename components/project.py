"""The project a command works on, found as `pulumi` finds it: the `Pulumi.yaml` at or above the working
directory. `--project-dir` (or `AIRFLOW_OIDC_PROJECT_DIR`) names it instead.

Every command reads and writes that project's files: the stack files in its stack config directory
(`stackConfigDir` of Pulumi.yaml, `stacks/` here), the environment defaults beside them
(`stacks/defaults/<env>.yaml`) and the policy pack (`policy/`). Never the checkout the package was
installed from: a shared or non-editable install works on whichever checkout you stand in.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import yaml

PROJECT_FILE = "Pulumi.yaml"
PROJECT_DIR_ENV = "AIRFLOW_OIDC_PROJECT_DIR"
"""Names the project directory when set (as `--project-dir` does; the flag wins)."""


class ProjectNotFoundError(Exception):
    """No project where the command looked; the message says where it looked and how to point at one."""


@dataclass(frozen=True)
class Project:
    """A directory holding Pulumi.yaml, and where its stack files, defaults and policy pack live."""

    root: Path
    stack_config_dir: str = "stacks"
    """Pulumi.yaml's `stackConfigDir`, relative to the root (Pulumi's default: the root itself)."""

    @property
    def stacks_dir(self) -> Path:
        return self.root / self.stack_config_dir

    @property
    def defaults_dir(self) -> Path:
        return self.stacks_dir / "defaults"

    @property
    def policy_dir(self) -> Path:
        return self.root / "policy"

    def stack_files(self) -> list[Path]:
        """Every `Pulumi.<stack>.yaml` of the project, sorted."""
        return sorted(self.stacks_dir.glob("Pulumi.*.yaml"))

    def stack_path(self, given: Path) -> Path:
        """A stack file as given on the command line: a path (relative to the working directory), or a bare
        stack name (`ledger-prod`) for the project's `Pulumi.ledger-prod.yaml`."""
        if given.exists() or given.parent != Path(".") or given.suffix in (".yaml", ".yml"):
            return given
        return self.stacks_dir / f"Pulumi.{given.name}.yaml"

    def relative(self, path: Path) -> str:
        """`path` as the project names it (`stacks/Pulumi.dev.yaml`), or as given when outside it."""
        try:
            return path.resolve().relative_to(self.root.resolve()).as_posix()
        except ValueError:
            return str(path)


def load_project(root: Path) -> Project:
    """The project whose Pulumi.yaml is in `root`."""
    try:
        document = yaml.safe_load((root / PROJECT_FILE).read_text()) or {}
    except (OSError, yaml.YAMLError) as error:
        why = getattr(error, "strerror", None) or error
        raise ProjectNotFoundError(f"{root / PROJECT_FILE}: cannot read it: {why}") from None
    config_dir = document.get("stackConfigDir") if isinstance(document, dict) else None
    return Project(root=root, stack_config_dir=str(config_dir).strip("/") if config_dir else ".")


def find_project(explicit: Path | None = None, start: Path | None = None) -> Project:
    """`explicit` (else `$AIRFLOW_OIDC_PROJECT_DIR`), which must hold Pulumi.yaml; else the nearest directory
    at or above `start` (the working directory) that holds one."""
    named = explicit or (Path(os.environ[PROJECT_DIR_ENV]) if os.environ.get(PROJECT_DIR_ENV) else None)
    if named is not None:
        root = named.expanduser().resolve()
        if not (root / PROJECT_FILE).is_file():
            how = "--project-dir" if explicit is not None else PROJECT_DIR_ENV
            raise ProjectNotFoundError(f"{how} {named}: no {PROJECT_FILE} there (the airflow-oidc project's root)")
        return load_project(root)
    here = (start or Path.cwd()).resolve()
    for directory in (here, *here.parents):
        if (directory / PROJECT_FILE).is_file():
            return load_project(directory)
    raise ProjectNotFoundError(
        f"no {PROJECT_FILE} in {here} or any directory above it: run airflow-oidc inside your airflow-oidc "
        f"project (the checkout with Pulumi.yaml and stacks/), or name it with --project-dir DIR or {PROJECT_DIR_ENV}"
    )
