"""`airflow-oidc plan`: what `pulumi up` would declare per stack, and with `--base` what a change does.

    airflow-oidc plan [STACK_FILE ...] [--base GIT_REV] [--format text|markdown|json]

No credentials, no network. Each side (the working tree, and the base revision checked out with
`git worktree add`) runs every stack file through ITS OWN `__main__.py` under the mock engine, all
stacks of a side in one process (`components/plan/worker.py`, SDKs loaded once; the two sides run in
parallel). What is shown and compared is what the program declared (resources, inputs, protection,
outputs), never the program's source: a change in code alone shows up like a change in a stack file.

Every difference is classified; the risky classes set exit status 1:
privilege escalation, new redirect host or URI, lifetime increase, protection removed, IdP app or
client replaced (logical name or type changes, or an input the kind's `REPLACE_ON_CHANGE` lists),
secret rotation or store change, stack added or removed, and the policy pack's rules
(`policy/rules/`) failing on the run. Exit status 2: an error (a bad spec on either side: the
program's own message, naming the file and key).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from components.plan.diff import POLICY, Change, Plan, allowlist_changes, build_plan, policy_config_change
from components.plan.render import RENDERERS
from components.plan.worktree import (
    PlanError,
    base_worktree,
    finish_worker,
    policy_dir,
    remove_worktree,
    rules_file,
    start_worker,
)
from components.project import ProjectNotFoundError, find_project


def stack_files(root: Path, given: Sequence[Path], must_exist: bool = True) -> list[str]:
    """Stack files as paths relative to `root` (they must be in its stack config directory, `stacks/`).

    With `must_exist` false a file may be missing (deleted by the change, present at the base)."""
    stacks = (root / "stacks").resolve()
    if not given:
        return [f"stacks/{path.name}" for path in sorted(stacks.glob("Pulumi.*.yaml"))]
    files = []
    for path in given:
        resolved = path.resolve()
        if resolved.parent != stacks or not resolved.name.startswith("Pulumi.") or resolved.suffix != ".yaml":
            raise PlanError(f"{path}: plan runs stack files of {stacks} (Pulumi.<stack>.yaml, stackConfigDir)")
        if must_exist and not resolved.is_file():
            raise PlanError(f"{path}: no such stack file")
        files.append(f"stacks/{resolved.name}")
    return files


def plan(files: Sequence[Path], base: str | None, root: Path | None = None) -> Plan:
    """Plan the stack files of `root` (default: the project around the working directory)."""
    root = (root or find_project().root).resolve()
    requested = stack_files(root, files, must_exist=base is None)
    head_files = [file for file in requested if (root / file).is_file()]
    if not head_files and base is None:
        raise PlanError(f"no stack files (Pulumi.*.yaml) in {root / 'stacks'}")
    started = time.perf_counter()
    if base is None:
        head = finish_worker("this change", start_worker(root, head_files), started)
        return build_plan(head, None, head_files, [])
    with tempfile.TemporaryDirectory(prefix="airflow-oidc-plan-") as scratch:
        worktree = base_worktree(root, base, Path(scratch))
        try:
            stacks = worktree / "stacks"
            if files:
                base_files = [file for file in requested if (worktree / file).is_file()]
                missing = [file for file in requested if file not in head_files and file not in base_files]
                if missing:
                    raise PlanError(f"{missing[0]}: no such stack file here or at {base}")
            else:
                base_files = [f"stacks/{path.name}" for path in sorted(stacks.glob("Pulumi.*.yaml"))]
            policy = policy_dir(root)  # the change's rules and configuration judge both sides
            head_process = start_worker(root, head_files, policy)
            base_process = start_worker(worktree, base_files, policy)  # both sides at once: two cores
            config_changes: list[str] = []
            if rules_file(policy) is not None:  # a change to the pack's configuration is risky
                config_change = policy_config_change(worktree / "policy" / "config.json", policy / "config.json")
                config_changes += [config_change] if config_change else []
            # The Admin allowlists are the environments' defaults files: a change there is a policy change too.
            config_changes += allowlist_changes(worktree / "stacks" / "defaults", root / "stacks" / "defaults")
            head = finish_worker("this change", head_process, started)
            prior = finish_worker(f"base {base}", base_process, started)
        finally:
            remove_worktree(root, worktree)
    result = build_plan(head, prior, head_files, base_files)
    result.changes[:0] = [Change("(policy pack)", POLICY, change) for change in config_changes]
    return result


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="*", type=Path, metavar="STACK_FILE", help="default: every stacks/Pulumi.*.yaml")
    parser.add_argument("--base", metavar="GIT_REV", help="compare with this revision (its own code and stack files)")
    parser.add_argument("--format", choices=sorted(RENDERERS), default="text")


def run(args: argparse.Namespace) -> int:
    """`airflow-oidc plan`: print the plan; exit 0 (no risky change), 1 (risky changes) or 2 (an error)."""
    try:
        project = find_project(getattr(args, "project_dir", None))
        files = [project.stack_path(path) for path in args.files]
        result = plan(files, args.base, project.root)
    except (PlanError, ProjectNotFoundError) as error:
        print(f"airflow-oidc plan: {error}", file=sys.stderr)
        return 2
    sys.stdout.write(RENDERERS[args.format](result))
    for problem in result.errors:
        print(problem, file=sys.stderr)
    return result.status
