"""The package installed NON-editable into a virtualenv of its own works on whichever checkout you stand in.

A wheel is built from this checkout's files (offline: `--no-deps --no-build-isolation`, setuptools from
.venv) and installed into a fresh virtualenv whose dependencies are .venv's (a `.pth` line: no download).
The commands then run from inside a temporary clone of the repository: they must read and write that
clone's stacks/, stacks/defaults/ and policy/, and nothing of this checkout or of the installed package.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT


def run(argv: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    environment.pop("AIRFLOW_OIDC_PROJECT_DIR", None)
    return subprocess.run(argv, cwd=cwd, env={**environment, **env}, capture_output=True, text=True, timeout=180)


def checked(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, f"{result.args}: {result.stdout}\n{result.stderr}"
    return result


def tracked_files(root: Path) -> list[str]:
    listed = checked(run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=root))
    return [name for name in listed.stdout.split("\0") if name and (root / name).is_file()]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtualenv with the package installed from a wheel (its `bin/`)."""
    scratch = tmp_path_factory.mktemp("installed")
    source = scratch / "source"  # a copy: building in this checkout would leave build/ and *.egg-info here
    for name in tracked_files(ROOT):
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, source / name)
    wheels = scratch / "wheels"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    checked(run([*pip, "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(source)], scratch))
    venv = scratch / "venv"
    checked(run([sys.executable, "-m", "venv", "--without-pip", str(venv)], scratch))
    python = venv / "bin" / "python"
    checked(
        run([*pip, "--python", str(python), "install", "-q", "--no-deps", *map(str, wheels.glob("*.whl"))], scratch)
    )
    # The dependencies: .venv's site-packages as a plain path (its own .pth files, the editable finder of
    # this checkout among them, are not processed from there).
    purelib = checked(run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], scratch))
    Path(purelib.stdout.strip(), "airflow_oidc_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return venv / "bin"


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    """A clone of this repository (its committed files)."""
    checked(run(["git", "clone", "-q", "--no-hardlinks", str(ROOT), str(tmp_path / "clone")], tmp_path))
    clone = tmp_path / "clone"
    return clone


def snapshot(root: Path) -> dict[str, float]:
    """Every file of a tree with its modification time (what a command could have written)."""
    return {
        str(path.relative_to(root)): path.stat().st_mtime
        for path in root.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and ".git" not in path.parts
    }


def test_the_installed_package_works_on_the_clone_it_runs_in(installed: Path, clone: Path) -> None:
    cli = str(installed / "airflow-oidc")
    site = Path(
        checked(
            run([str(installed / "python"), "-I", "-c", "import components; print(components.__file__)"], clone)
        ).stdout.strip()
    )
    assert installed.parent in site.parents, site  # the installed copy, not this checkout's nor the clone's
    package = site.parent
    this_checkout = snapshot(ROOT / "stacks")
    installed_files = snapshot(package)

    # The clone's own stack files: one more than this checkout's, written by new-stack from a subdirectory.
    inside = clone / "components" / "idp"
    written = checked(run([cli, "new-stack", "--team", "zeta", "--env", "dev", "--idp", "oidc"], inside))
    new = clone / "stacks" / "Pulumi.zeta-dev.yaml"
    assert f"wrote {new}" in written.stdout, written.stdout
    assert not (ROOT / "stacks" / new.name).exists()

    validated = checked(run([cli, "validate"], inside))
    names = [line.split()[1] for line in validated.stdout.splitlines()]
    assert names == [f"stacks/{path.name}" for path in sorted((clone / "stacks").glob("Pulumi.*.yaml"))]
    assert "stacks/Pulumi.zeta-dev.yaml" in names

    # The clone's environment defaults decide: a value its dev defaults set is inherited from THEM.
    defaults = clone / "stacks" / "defaults" / "dev.yaml"
    document = yaml.safe_load(defaults.read_text())
    document["defaults"]["tokens"]["sessionMinutes"] = 555
    defaults.write_text(yaml.safe_dump(document))
    planned = checked(run([cli, "plan", "zeta-dev"], inside))
    assert "555 (from stacks/defaults/dev.yaml)" in planned.stdout, planned.stdout

    # The clone's own policy pack judges the plan: a rule that refuses every stack shows up.
    rules = clone / "policy" / "rules" / "__init__.py"
    rules.write_text(rules.read_text().replace("def check_all(", "def _check_all(", 1) + CLONE_ONLY_RULE)
    judged = run([cli, "plan", "zeta-dev"], inside)
    assert judged.returncode == 1 and "clone-only-rule: refused by the clone's pack" in judged.stdout, judged.stdout

    # And by name from elsewhere: --project-dir, or the environment variable.
    elsewhere = clone.parent
    assert run([cli, "validate"], elsewhere).returncode == 2
    by_flag = checked(run([cli, "validate", "--project-dir", str(clone)], elsewhere))
    by_env = checked(run([cli, "validate"], elsewhere, AIRFLOW_OIDC_PROJECT_DIR=str(clone)))
    assert by_flag.stdout == by_env.stdout == validated.stdout

    assert snapshot(ROOT / "stacks") == this_checkout  # nothing read-write happened here
    assert snapshot(package) == installed_files  # nor in the installed package


CLONE_ONLY_RULE = """

def check_all(declared, config, stack):
    verdict = _check_all(declared, config, stack)
    verdict["clone-only-rule"] = ["refused by the clone's pack"]
    return verdict
"""
