"""The `airflow-oidc` command: validate stack files, print the spec's JSON Schema or its Markdown reference.

airflow-oidc validate [STACK_FILE ...]   # default: every stacks/Pulumi.*.yaml
airflow-oidc schema                      # JSON Schema of `airflow-oidc:spec`, for editors
airflow-oidc reference [--update docs/reference.md]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from components import new_stack as new_stack_command
from components import plan as plan_command
from components import validate_report as report
from components.fleet import fleet_clash_list, fleet_of
from components.project import Project, ProjectNotFoundError, find_project
from components.spec import CONFIG_KEY, json_schema
from components.spec_reference import REFERENCE_BEGIN, REFERENCE_END, REGENERATE, reference, render_reference
from components.stack_files import check_stack_file, shown_name, stack_notes

__all__ = [
    "REFERENCE_BEGIN",
    "REFERENCE_END",
    "REGENERATE",
    "check_stack_file",
    "main",
    "render_reference",
    "validate",
]


# --- validate -------------------------------------------------------------------------------------


def validate(paths: Sequence[Path], project: Project | None = None, form: str = "text") -> int:
    """Validate each stack file's spec: `ok` lines on stdout, problems on stderr; 1 if any file is bad.
    No file given: every stack file of the project (found from the working directory unless given).
    `form` json or sarif: one document on stdout instead (components/validate_report.py).

    Then the fleet (components/fleet.py): the files and the other stack files beside them must not
    share a hostname, a kube context + namespace + release, or a name at the IdP.
    """
    given = list(paths)
    if not paths:
        project = project or find_project()
        paths = project.stack_files()
        if not paths:
            print(f"airflow-oidc: no stack files (Pulumi.*.yaml) in {project.stacks_dir}", file=sys.stderr)
            return 1
    checked = []
    for path in paths:
        ok, text = check_stack_file(path)
        checked.append(report.Checked(path, shown_name(path), ok, text))
        if form == "text":
            print(text, file=sys.stdout if ok else sys.stderr)
            for note in stack_notes(path) if ok else []:
                print(note, file=sys.stderr)  # not a problem: the exit status stays 0
    clashes = fleet_clash_list(fleet_of(paths), only=given or None)
    if form == "text":
        for clash in clashes:
            print(clash, file=sys.stderr)
    else:
        findings = [finding for item in checked for finding in report.findings_of(item)]
        findings += report.clash_findings(clashes, {item.file: item.path for item in checked})
        if form == "json":
            print(report.render_json(checked, findings))
        else:
            uris = {item.file: artifact_uri(item.path, project) for item in checked}
            print(report.render_sarif(findings, lambda file: uris.get(file, file), version()))
    return 1 if any(not item.ok for item in checked) or clashes else 0


def artifact_uri(path: Path, project: Project | None) -> str:
    """Where a SARIF consumer finds the file: relative to the project (the repository) root, else to the
    working directory, else absolute."""
    for base in (project.root if project else None, Path.cwd()):
        if base is not None:
            try:
                return path.resolve().relative_to(base.resolve()).as_posix()
            except ValueError:
                continue
    return path.resolve().as_uri()


# --- entry point ----------------------------------------------------------------------------------


PROJECT_HELP = "the project's root (holds Pulumi.yaml); default: found from the working directory, as pulumi finds it"


def _subcommand(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], name: str, summary: str, details: str = ""
) -> argparse.ArgumentParser:
    """A sub-command whose one-line summary shows in `airflow-oidc --help` and heads its own --help."""
    parser = commands.add_parser(
        name,
        help=summary,
        description=summary[0].upper() + summary[1:] + "." + (f" {details}" if details else ""),
    )
    # Also accepted after the sub-command (`airflow-oidc validate --project-dir DIR`).
    parser.add_argument("--project-dir", type=Path, metavar="DIR", default=argparse.SUPPRESS, help=PROJECT_HELP)
    return parser


def version() -> str:
    """The installed package's version (pyproject.toml's, as pip recorded it)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("airflow-oidc")
    except PackageNotFoundError:
        return "unknown (not installed: pip install .)"


def main(argv: Sequence[str] | None = None) -> int:
    """The console script `airflow-oidc`; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="airflow-oidc",
        description=f"Tools for the stack config key {CONFIG_KEY}. Every command works on the project around "
        "the working directory (the nearest Pulumi.yaml above it): its stacks/, stacks/defaults/ and policy/.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    parser.add_argument("--project-dir", type=Path, metavar="DIR", default=None, help=PROJECT_HELP)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    check = _subcommand(
        commands,
        "validate",
        "validate stack files offline: the spec, the environment defaults, the fleet",
        "Default: every stack file of the project. A STACK_FILE is a path or a stack name.",
    )
    check.add_argument("files", nargs="*", type=Path, metavar="STACK_FILE")
    check.add_argument(
        "--format",
        choices=("text", "json", "sarif"),
        default="text",
        help="text (default), json, or sarif (SARIF 2.1.0: upload it and each problem annotates its line)",
    )
    schema = _subcommand(
        commands,
        "schema",
        "print the JSON Schema of the spec, or of a whole stack file, for editors",
        "With --stack-file: the schema of Pulumi.<stack>.yaml (the project ships it as schema/stack-file.schema.json).",
    )
    schema.add_argument(
        "--stack-file",
        action="store_true",
        help="the whole Pulumi.<stack>.yaml: the spec under config, the provider settings, secure: values",
    )
    docs = _subcommand(commands, "reference", "print the Markdown reference of every spec key")
    docs.add_argument(
        "--update",
        type=Path,
        metavar="FILE",
        help="rewrite the block between the spec-reference markers in FILE (docs/reference.md)",
    )
    plan_command.add_arguments(
        _subcommand(
            commands,
            "plan",
            "show what `pulumi up` would declare per stack, offline; with --base, what a change does",
            "Runs every stack file through the program under the mock engine (no credentials, no network).",
        )
    )
    new_stack_command.add_arguments(
        _subcommand(
            commands,
            "new-stack",
            "write a team's new stack file, valid as written, and print the next commands",
            "Sees the team's other stacks and shares their IdP groups the way the kind allows.",
        )
    )
    from components import doctor  # its own module: the live checks of a deployed stack

    doctor.add_arguments(
        _subcommand(
            commands,
            "doctor",
            "check a live setup (IdP discovery, Airflow's login redirect, a pasted ID token) against a stack file",
            "Exit status 1 when a check fails.",
        )
    )
    args = parser.parse_args(argv)
    try:
        return _run(args)
    except ProjectNotFoundError as error:
        print(f"airflow-oidc {args.command}: {error}", file=sys.stderr)
        return 2


def project_of(args: argparse.Namespace) -> Project:
    """The project the command works on (`--project-dir`, else `AIRFLOW_OIDC_PROJECT_DIR`, else found)."""
    return find_project(getattr(args, "project_dir", None))


def _run(args: argparse.Namespace) -> int:
    if args.command == "doctor":
        from components import doctor

        return doctor.doctor(args)
    if args.command == "plan":
        return plan_command.run(args)
    if args.command == "new-stack":
        return new_stack_command.run(args)
    if args.command == "validate":
        if not args.files:
            return validate([], project_of(args), args.format)
        project = find_project_or_none(args)
        return validate([project.stack_path(path) if project else path for path in args.files], project, args.format)
    if args.command == "schema":
        if args.stack_file:
            from components.stack_schema import render

            sys.stdout.write(render())
        else:
            print(json.dumps(json_schema(), indent=2))
        return 0
    return reference(args.update)


def find_project_or_none(args: argparse.Namespace) -> Project | None:
    """The project when there is one: stack files given by path need none (stack names do)."""
    try:
        return project_of(args)
    except ProjectNotFoundError:
        if getattr(args, "project_dir", None) is not None:
            raise
        return None


if __name__ == "__main__":
    sys.exit(main())
