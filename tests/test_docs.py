"""The README and docs/: a short README that starts with what runs without any account, links that resolve,
and every `airflow-oidc` command the README shows run here, in a fresh copy of the repository.

A block the README marks `<!-- doc-test -->` runs as one shell session (an `export` carries on); a line's
comment `# exit status N` says the status it must end with (default 0). Every other `airflow-oidc`
command in a README shell block runs on its own. The copy uses this checkout's `.venv` (a symlink), so
`make cli` has nothing to build.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT

README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
DOC_TEST = "<!-- doc-test -->"
EXPECTED = re.compile(r"#.*\bexit status (\d+)")


def fenced_blocks(text: str) -> list[tuple[bool, list[str]]]:
    """(marked doc-test, the lines) of every ```sh block."""
    blocks, lines, index = [], text.splitlines(), 0
    while index < len(lines):
        if lines[index].strip() in ("```sh", "```bash"):
            marked = any(line.strip() == DOC_TEST for line in lines[max(0, index - 2) : index])
            end = next(i for i in range(index + 1, len(lines)) if lines[i].startswith("```"))
            blocks.append((marked, lines[index + 1 : end]))
            index = end
        index += 1
    return blocks


def slugs(text: str) -> set[str]:
    """The anchors GitHub makes of a page's headings."""
    found, fenced = set(), False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        match = re.match(r"^#{1,6} (.*)$", line)
        if match and not fenced:
            found.add(re.sub(r"[^\w\- ]", "", match.group(1).strip().lower()).replace(" ", "-"))
    return found


def test_the_readme_is_short_and_starts_with_what_runs_without_any_account() -> None:
    lines = README.read_text().splitlines()
    assert len(lines) <= 250, f"README.md has {len(lines)} lines: move details to docs/"
    sections = [line for line in lines if line.startswith("## ")]
    assert sections[0] == "## Try it without any account", sections
    assert sections.index("## Try it without any account") < sections.index("## Quick start")


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_every_link_resolves(page: Path) -> None:
    text = re.sub(r"`[^`\n]*`", "", page.read_text())  # code spans (regular expressions) hold no links
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue  # https:, mailto:
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        assert file.exists(), f"{page.name}: {target}: no such file"
        if anchor:
            assert anchor in slugs(file.read_text()), f"{page.name}: {target}: no such heading in {file.name}"


@pytest.fixture
def fresh_copy(tmp_path: Path) -> Path:
    """The checkout's files in a git repository of their own, with this checkout's CLI virtualenv."""
    listed = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True,
        text=True,
        check=True,
    )
    copy = tmp_path / "airflow-oidc"
    for name in (name for name in listed.stdout.split("\0") if name and (ROOT / name).is_file()):
        (copy / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, copy / name)
    (copy / ".venv").symlink_to(ROOT / ".venv")
    for name in ("requirements/pulumi.lock", "pyproject.toml"):  # older than the venv's stamp: `make cli` is done
        os.utime(copy / name, (0, 0))
    git = ["git", "-C", str(copy), "-c", "user.name=docs", "-c", "user.email=docs@example.com"]
    subprocess.run([*git, "init", "-q", "-b", "main"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "the checkout"], check=True)
    return copy


def session_script(commands: list[str]) -> str:
    """A shell session that stops at the first command ending with another status than it expects."""
    lines = ["set -u"]
    for number, command in enumerate(commands, 1):
        expected = int(match.group(1)) if (match := EXPECTED.search(command)) else 0
        shown = shlex.quote(f"doc-test: command {number} ({command.split(' #')[0].strip()}) ended with status")
        lines += [
            command,
            f'status=$?; if [ "$status" -ne {expected} ]; then',
            f'  echo {shown} "$status, expected {expected}" >&2; exit 1',
            "fi",
        ]
    return "\n".join(lines) + "\n"


def readme_commands() -> tuple[list[list[str]], list[str]]:
    """(the doc-test blocks, every other `airflow-oidc` command line) of the README."""
    sessions, single = [], []
    for marked, lines in fenced_blocks(README.read_text()):
        commands = [line for line in lines if line.strip() and not line.lstrip().startswith("#")]
        if marked:
            sessions.append(commands)
        else:
            single += [line for line in commands if re.match(r"(\S*/)?airflow-oidc ", line.strip())]
    return sessions, single


def test_the_readme_shows_commands_to_try_first() -> None:
    sessions, _ = readme_commands()
    assert sessions and any(line.startswith("airflow-oidc plan --base") for line in sessions[0])


def test_every_airflow_oidc_command_the_readme_shows_runs(fresh_copy: Path) -> None:
    sessions, single = readme_commands()
    environment = {key: value for key, value in os.environ.items() if key not in ("VIRTUAL_ENV", "PYTHONPATH")}
    environment.pop("AIRFLOW_OIDC_PROJECT_DIR", None)
    for commands in [*sessions, *([line] for line in single)]:
        done = subprocess.run(
            ["bash", "-c", session_script(commands)],
            cwd=fresh_copy,
            env=environment,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, f"{done.stderr[-3000:]}\n{done.stdout[-2000:]}"
    # What the session wrote is what the README says it writes.
    assert (fresh_copy / "stacks" / "Pulumi.ledger-prod.yaml").is_file()
    assert '"version": "2.1.0"' in (fresh_copy / "validate.sarif").read_text()
