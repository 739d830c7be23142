"""Benchmark of `airflow-oidc plan`: 1, 10, 50 and 200 generated team stacks in one process, beside one
process per stack at 10 and 50, and `plan --base` over 200 stacks (both sides), in the same run.

The fleet is generated in a throwaway copy of the project: every example stack file that is not a
loopback demo, cloned per team (team, hostname, namespace changed), so every kind is in the mix.
Prints figures; asserts nothing. The issue's target: 200 stacks plan in under 60 s on 2 cores.

    make bench
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from components.plan import ENGINE, WORKER, plan  # noqa: E402
from components.spec import CONFIG_KEY  # noqa: E402

SIZES = (1, 10, 50, 200)
PER_PROCESS_SIZES = (10, 50)


def templates() -> list[dict]:
    """The example stacks a fleet is cloned from: every one not served on loopback."""
    found = []
    for path in sorted((ROOT / "stacks").glob("Pulumi.*.yaml")):
        document = yaml.safe_load(path.read_text())
        spec = document["config"][CONFIG_KEY]
        if not str(spec["hostname"]).startswith(("localhost", "127.0.0.1", "http://")):
            found.append(document)
    return found


def make_project(directory: Path, count: int) -> list[Path]:
    """A project copy with `count` team stacks; returns their files."""
    shutil.copytree(ROOT / "components", directory / "components", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "__main__.py", directory / "__main__.py")
    shutil.copy(ROOT / "Pulumi.yaml", directory / "Pulumi.yaml")
    stacks = directory / "stacks"
    stacks.mkdir()
    if (ROOT / "stacks" / "defaults").is_dir():
        shutil.copytree(ROOT / "stacks" / "defaults", stacks / "defaults")
    sources = templates()
    files = []
    for index in range(count):
        document = yaml.safe_load(yaml.safe_dump(sources[index % len(sources)]))
        spec = document["config"][CONFIG_KEY]
        team = f"team{index:03d}"
        spec["team"] = team
        spec["hostname"] = f"airflow.{team}.example.com"
        spec.setdefault("airflow", {})["namespace"] = f"airflow-{team}"
        path = stacks / f"Pulumi.{team}-{spec['environment']}.yaml"
        path.write_text(yaml.safe_dump(document, sort_keys=False))
        files.append(path)
    return files


def one_process_per_stack(root: Path, files: list[Path]) -> float:
    """Each stack in a fresh interpreter (SDKs loaded every time), one after the other."""
    started = time.perf_counter()
    for path in files:
        subprocess.run(
            [sys.executable, str(WORKER), "--root", str(root), "--engine", str(ENGINE), f"stacks/{path.name}"],
            cwd=root,
            check=True,
            capture_output=True,
            env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        )
    return time.perf_counter() - started


def git(root: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=root, check=True, capture_output=True)


def main() -> None:
    print(f"plan benchmark: {os.cpu_count()} cores, kinds cloned from {len(templates())} example stacks")
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-plan-") as scratch:
        for size in SIZES:
            root = Path(scratch) / f"fleet-{size}"
            files = make_project(root, size)
            started = time.perf_counter()
            result = plan([], None, root=root)
            seconds = time.perf_counter() - started
            assert not result.errors, result.errors[:3]
            figures[f"plan, {size} stacks, one process"] = seconds
            print(
                f"plan  {size:>4} stacks, one process          {seconds:8.2f} s   {seconds / size * 1000:8.1f} ms/stack"
            )
            if size in PER_PROCESS_SIZES:
                seconds = one_process_per_stack(root, files)
                figures[f"{size} stacks, one process per stack"] = seconds
                print(
                    f"      {size:>4} stacks, one process per stack {seconds:8.2f} s   "
                    f"{seconds / size * 1000:8.1f} ms/stack"
                )
        root = Path(scratch) / f"fleet-{SIZES[-1]}"
        git(root, "init", "-q")
        git(root, "add", "-A")
        git(root, "-c", "user.name=bench", "-c", "user.email=bench@example.com", "commit", "-q", "-m", "base")
        first = sorted((root / "stacks").glob("Pulumi.*.yaml"))[0]
        first.write_text(first.read_text().replace("role: User", "role: Op", 1))
        started = time.perf_counter()
        result = plan([], "HEAD", root=root)
        seconds = time.perf_counter() - started
        figures["plan --base, 200 stacks"] = seconds
        risky = sum(change.risky for change in result.changes)
        print(f"plan --base HEAD, {SIZES[-1]} stacks (both sides)  {seconds:8.2f} s   ({risky} risky change(s) found)")
    target = figures[f"plan, {SIZES[-1]} stacks, one process"]
    verdict = "under" if target < 60 else "OVER"
    print(f"200 stacks planned in {target:.1f} s: {verdict} the 60 s target on this machine")


if __name__ == "__main__":
    main()
