"""Which stacks a CI run concerns, for .github/workflows (standard library + PyYAML only).

  changed --base REV   the stack files a pull request touches: a change to anything that is not a stack
                       file, documentation or a test counts for every stack (code changes what every
                       stack declares), and so does a removed stack file (`plan` reports the removal).
  by-environment       every stack file grouped for deployment: `prod` and the rest (`local` is the
                       demo on this machine, never deployed).

Each stack comes with what its providers need from CI: `kind` (the IdP kind: that kind's credentials
only) and `gcp` (Google Cloud through workload identity federation: kind google or the Secret Manager
store); `changed` gives them as `preview-matrix`.

Writes `key=value` lines to $GITHUB_OUTPUT (stdout outside Actions).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

STACKS = Path("stacks")
NOT_DEPLOYED = {"local"}
NO_EFFECT_PREFIXES = ("tests/", "docs/", "localdev/")
"""Paths no deployed stack depends on: the tests, the docs, the local deployment (`make demo`, not shipped)."""
SAFE_NAME = re.compile(r"^Pulumi\.[A-Za-z0-9_.-]+\.yaml$")
"""Stack file names that can travel in $GITHUB_OUTPUT and a shell word list unquoted (no newline, no space)."""


def stack_name(path: Path) -> str:
    return path.name.removeprefix("Pulumi.").removesuffix(".yaml")


def spec_of(path: Path) -> dict[str, Any]:
    config = (yaml.safe_load(path.read_text()) or {}).get("config") or {}
    spec = config.get("airflow-oidc:spec") or {}
    return spec if isinstance(spec, dict) else {}


def environment(path: Path) -> str:
    return str(spec_of(path).get("environment", ""))


def credentials(path: Path) -> dict[str, Any]:
    """What the stack's providers need from CI: its IdP kind (that kind's credentials) and whether it
    calls Google Cloud (kind google, or the client secret in Secret Manager: workload identity federation).
    The store may come from the environment's defaults file (stacks/defaults/<env>.yaml)."""
    spec = spec_of(path)
    idp = spec.get("idp") if isinstance(spec.get("idp"), dict) else {}
    kind = str(idp.get("kind", ""))
    store = _get(spec, "clientSecret", "store")
    if store is None:
        defaults_file = path.parent / "defaults" / f"{environment(path)}.yaml"
        if defaults_file.is_file():
            store = _get(
                (yaml.safe_load(defaults_file.read_text()) or {}).get("defaults") or {}, "clientSecret", "store"
            )
    return {"kind": kind, "gcp": kind == "google" or store == "gcp-secret-manager"}


def _get(value: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def is_stack_file(name: str) -> bool:
    path = Path(name)
    return path.parent == STACKS and path.name.startswith("Pulumi.") and path.suffix == ".yaml"


def changed_files(changed: list[str], all_stacks: list[Path]) -> list[Path]:
    """The stack files to review for these changed paths (repository-relative, as `git diff --name-only`)."""
    touched: list[Path] = []
    for name in changed:
        if is_stack_file(name):
            if not Path(name).is_file():
                return all_stacks  # a removed stack: plan everything so the removal is reported
            touched.append(Path(name))
        elif name.endswith(".md") or name.startswith(NO_EFFECT_PREFIXES):
            continue
        else:
            return all_stacks
    return sorted(set(touched))


def write_outputs(outputs: dict[str, str]) -> None:
    target = os.environ.get("GITHUB_OUTPUT")
    lines = "".join(f"{key}={value}\n" for key, value in outputs.items())
    if target:
        with open(target, "a", encoding="utf-8") as handle:
            handle.write(lines)
    else:
        sys.stdout.write(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    changed = commands.add_parser("changed")
    changed.add_argument("--base", required=True, help="git revision the pull request merges into")
    commands.add_parser("by-environment")
    args = parser.parse_args(argv)
    all_stacks = sorted(STACKS.glob("Pulumi.*.yaml"))
    unsafe = [repr(path.name) for path in all_stacks if not SAFE_NAME.match(path.name)]
    if unsafe:
        print(f"error: stack file names must match {SAFE_NAME.pattern}: {', '.join(unsafe)}", file=sys.stderr)
        return 2

    if args.command == "changed":
        diff = subprocess.run(
            ["git", "diff", "--name-only", f"{args.base}...HEAD"], check=True, capture_output=True, text=True
        ).stdout.split()
        files = changed_files(diff, all_stacks)
        previewed = [path for path in files if environment(path) not in NOT_DEPLOYED]
        write_outputs(
            {
                "files": " ".join(str(path) for path in files),
                "preview-stacks": json.dumps([stack_name(path) for path in previewed]),
                "preview-matrix": json.dumps([{"stack": stack_name(path), **credentials(path)} for path in previewed]),
            }
        )
    else:
        deploy = [
            {"stack": stack_name(path), "environment": environment(path), **credentials(path)} for path in all_stacks
        ]
        write_outputs(
            {
                "pre-prod": json.dumps([d for d in deploy if d["environment"] not in NOT_DEPLOYED | {"prod"}]),
                "prod": json.dumps([d for d in deploy if d["environment"] == "prod"]),
            }
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
