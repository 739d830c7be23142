"""Running the sides: one worker process per side, and the `--base` revision checked out to run its own code.

Each side (the working tree, and the base revision in a detached `git worktree`) runs every stack file
through ITS OWN `__main__.py` under this revision's mock engine (`components/mock_engine.py`), all stacks
of a side in one process (`worker.py`, SDKs loaded once); the two sides run at once.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from components.plan.facts import Side, side_of

WORKER = Path(__file__).resolve().with_name("worker.py")
ENGINE = Path(__file__).resolve().parent.parent / "mock_engine.py"


class PlanError(Exception):
    """Something that stops the plan (exit status 2); the message says what and where."""


def policy_dir(root: Path) -> Path:
    """The policy pack whose rules judge both sides: the planned project's own (`policy/rules/`)."""
    return root / "policy"


def rules_file(policy: Path) -> Path | None:
    """The pack's rules as the worker loads them (by path): the package `policy/rules/` (its `__init__.py`),
    or a project's older single module `policy/rules.py`; None when the pack has no rules."""
    return next((file for file in (policy / "rules" / "__init__.py", policy / "rules.py") if file.is_file()), None)


def start_worker(root: Path, files: Sequence[str], policy: Path | None = None) -> subprocess.Popen[str]:
    """The side's worker process: its own checkout on sys.path, this revision's engine and `policy` rules."""
    command = [sys.executable, str(WORKER), "--root", str(root), "--engine", str(ENGINE)]
    policy = policy or policy_dir(root)
    rules = rules_file(policy)
    if rules is not None:
        command += ["--rules", str(rules)]
        if (policy / "config.json").is_file():
            command += ["--policy-config", str(policy / "config.json")]
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("PYTHONPATH", None)
    return subprocess.Popen(
        [*command, *files], cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )


def finish_worker(label: str, process: subprocess.Popen[str], started: float) -> Side:
    """The side's facts, once its worker is done; a worker that failed stops the plan."""
    stdout, stderr = process.communicate()
    if process.returncode != 0:
        last = stderr.strip().splitlines()[-1:] or ["no output"]
        hint = ""
        if "ModuleNotFoundError" in last[0] or "ImportError" in last[0]:
            hint = " (a revision the mock engine can run has components/idp/ and components/mock_values.py)"
        raise PlanError(f"{label}: the program could not be run under mocks: {last[0]}{hint}")
    return side_of(label, json.loads(stdout), time.perf_counter() - started)


def base_worktree(root: Path, rev: str, into: Path) -> Path:
    """A detached `git worktree` of `rev` (its own code and stack files)."""

    def git(*args: str) -> str:
        done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True)
        if done.returncode != 0:
            raise PlanError(f"--base {rev}: git {' '.join(args[:2])}: {done.stderr.strip() or 'failed'}")
        return done.stdout.strip()

    found = subprocess.run(
        ["git", "-C", str(root), "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"],
        capture_output=True,
        text=True,
    )
    if found.returncode != 0:
        raise PlanError(f"--base {rev}: not a commit of the repository at {root}")
    commit = found.stdout.strip()
    path = into / "base"
    git("worktree", "add", "--detach", "--quiet", str(path), commit)
    return path


def remove_worktree(root: Path, path: Path) -> None:
    """Remove the base checkout and git's record of it."""
    subprocess.run(["git", "-C", str(root), "worktree", "remove", "--force", str(path)], capture_output=True)
    shutil.rmtree(path, ignore_errors=True)
    subprocess.run(["git", "-C", str(root), "worktree", "prune"], capture_output=True)
