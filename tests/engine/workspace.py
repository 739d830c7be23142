"""The real Pulumi CLI on a copy of the project, with a file backend and a Pulumi home of its own.

`PulumiWorkspace(root, engine, env)` lays out `root/project` (Pulumi.yaml pointing at this checkout's `.venv`,
`__main__.py`, a copy of `stacks/` the tier may edit with `pulumi config set`, the stand-in chart), logs in to
`file://root/state`, and runs `pulumi` with:
PULUMI_HOME (its `plugins/` the providers `make engine` installed), PULUMI_CONFIG_PASSPHRASE,
PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true, PULUMI_SKIP_UPDATE_CHECK=true and the CLI's bin folder (the
Python language host) first on PATH. Every command and its output go to `root/pulumi.log`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from localdev.harness.process import REPO_ROOT, HarnessError, tail
from tools.engine import Engine


@dataclass(frozen=True)
class Result:
    """One finished `pulumi` command."""

    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


class PulumiWorkspace:
    """A project copy, its state and its Pulumi home under `root`."""

    def __init__(self, root: Path, engine: Engine, env: Mapping[str, str]) -> None:
        self.root = root
        self.engine = engine
        self.project = root / "project"
        self.home = root / "pulumi-home"
        self.state = root / "state"
        self.log_path = root / "pulumi.log"
        self.extra_env = dict(env)
        self.timings: dict[str, float] = {}

    def prepare(self) -> None:
        for folder in (self.project, self.home, self.state):
            folder.mkdir(parents=True, exist_ok=True)
        project = yaml.safe_load((REPO_ROOT / "Pulumi.yaml").read_text())
        project["runtime"]["options"]["virtualenv"] = str(REPO_ROOT / ".venv")
        (self.project / "Pulumi.yaml").write_text(yaml.safe_dump(project, sort_keys=False))
        shutil.copy(REPO_ROOT / "__main__.py", self.project / "__main__.py")
        shutil.copytree(REPO_ROOT / "stacks", self.project / "stacks")
        # The providers `make engine` installed, read in place (nothing is ever downloaded).
        (self.home / "plugins").symlink_to(self.engine.plugins_dir)
        self.run("login", f"file://{self.state}")

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        return {
            **os.environ,
            **self.extra_env,
            **(extra or {}),
            "PATH": f"{self.engine.bin_dir}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            "PULUMI_HOME": str(self.home),
            "PULUMI_CONFIG_PASSPHRASE": "engine-tier-passphrase",
            "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
            "PULUMI_SKIP_UPDATE_CHECK": "true",
            "PULUMI_SKIP_CONFIRMATIONS": "true",
        }

    def run(
        self,
        *args: str,
        stack: str | None = None,
        check: bool = True,
        env: Mapping[str, str] | None = None,
        timeout: float = 1200,
    ) -> Result:
        """`pulumi <args> [--stack <stack>] --non-interactive` in the project; raise with the log tail on failure."""
        argv = [str(self.engine.pulumi), *args, "--non-interactive", "--color=never"]
        if stack:
            argv += ["--stack", stack]
        started = time.monotonic()
        proc = subprocess.run(
            argv, cwd=self.project, env=self.env(env), capture_output=True, text=True, timeout=timeout, check=False
        )
        seconds = time.monotonic() - started
        with self.log_path.open("a") as log:
            log.write(f"\n$ {' '.join(argv)}  # exit {proc.returncode} in {seconds:.1f} s\n{proc.stdout}{proc.stderr}")
        result = Result(tuple(args), proc.returncode, proc.stdout, proc.stderr, seconds)
        self.timings[" ".join(args[:1]) + (f" {stack}" if stack else "")] = seconds
        if check and proc.returncode != 0:
            raise HarnessError(f"pulumi {' '.join(args)} exited {proc.returncode}:\n{tail(self.log_path, 60)}")
        return result

    # --- stacks -------------------------------------------------------------------------------------

    def stack_file(self, stack: str) -> Path:
        return self.project / "stacks" / f"Pulumi.{stack}.yaml"

    def init_stack(self, stack: str, *, copy_of: str | None = None) -> None:
        """`pulumi stack init` for a committed stack file (or a new stack file copied from a committed one)."""
        if copy_of is not None:
            shutil.copy(REPO_ROOT / "stacks" / f"Pulumi.{copy_of}.yaml", self.stack_file(stack))
        self.run("stack", "init", stack, "--secrets-provider", "passphrase")

    def set_path(self, stack: str, key: str, value: str) -> None:
        """`pulumi config set --path <key> <value>` (a spec key: `airflow-oidc:spec.hostname`)."""
        self.run("config", "set", "--path", key, value, stack=stack)

    def set(self, stack: str, key: str, value: str) -> None:
        self.run("config", "set", key, value, stack=stack)

    def outputs(self, stack: str) -> dict[str, Any]:
        return dict(json.loads(self.run("stack", "output", "--json", "--show-secrets", stack=stack).stdout))

    def export(self, stack: str) -> dict[str, Any]:
        return dict(json.loads(self.run("stack", "export", "--show-secrets", stack=stack).stdout))

    def resources(self, stack: str) -> list[dict[str, Any]]:
        """The stack's resources in the state (without the Stack itself)."""
        deployment = self.export(stack)["deployment"]
        return [r for r in deployment.get("resources") or [] if r["type"] != "pulumi:pulumi:Stack"]

    def preview_steps(self, stack: str, env: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
        """`pulumi preview --json`'s steps: each with `op` (same, update, replace, create, delete...) and `urn`."""
        result = self.run("preview", "--json", stack=stack, env=env)
        return list(json.loads(result.stdout).get("steps") or [])


def changed(steps: list[dict[str, Any]]) -> dict[str, str]:
    """URN -> op of every step that is not `same` (and not a read)."""
    return {step["urn"]: step["op"] for step in steps if step["op"] not in ("same", "read")}
