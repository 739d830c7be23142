"""The `airflow-oidc new-stack` sub-command: choose the values, write the file, check it, say what next."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from components.env_defaults import DEFAULTS_DIR, defaults_path, resolve_spec
from components.env_defaults import known_environments as env_known_environments
from components.fleet import Clash, fleet_clash_list, fleet_of
from components.idp import kind_names
from components.new_stack.render import next_commands, render_stack_file
from components.new_stack.sharing import plan_sharing, team_stacks
from components.new_stack.values import assign_policy_slot, base_spec, fill_required, kind_model, leave_out_defaults
from components.project import find_project
from components.spec import SpecError
from components.stack_files import check_stack_file


def clash_fix(clash: Clash) -> str:
    """The flag or key that resolves a clash with another stack."""
    what = clash.what.lower()
    if clash.what == "hostname":
        return "--hostname (another host for this stack's UI)"
    if "group" in what and "created" in what:
        return f"--groups bind (share the groups {clash.other} creates)"
    if what.startswith("kube context"):
        return "another airflow.namespace or kubernetes:context in the file"
    if what.startswith("okta policy slot"):
        return (
            "idp.authorizationServer.policySlot: a slot no other stack on that server takes (the platform assigns them)"
        )
    return f"another value for {clash.what} in the file"


def known_environments(stacks_dir: Path) -> list[str]:
    return env_known_environments(stacks_dir)


def new_stack(
    team: str,
    env: str,
    kind: str | None,
    hostname: str | None,
    stacks_dir: Path,
    force: bool = False,
    *,
    groups: str | None = None,
    no_defaults: bool = False,
) -> int:
    """Write the stack file; print where and what next. 0 on success, 1 when it cannot be written valid."""

    def refuse(message: str) -> int:
        print(f"airflow-oidc new-stack: {message}", file=sys.stderr)
        return 1

    stack = f"{team}-{env}"
    path = stacks_dir / f"Pulumi.{stack}.yaml"
    if path.exists() and not force:
        return refuse(f"{path} exists (--force replaces it)")
    has_defaults = defaults_path(stacks_dir, env).is_file()
    if not has_defaults and not no_defaults:
        known = known_environments(stacks_dir)
        names = ", ".join(known) if known else f"none (the project has no stacks/{DEFAULTS_DIR}/)"
        return refuse(
            f"environment {env!r} has no defaults file (stacks/{DEFAULTS_DIR}/{env}.yaml): the platform team's "
            f"lifetimes, rotation, chart and image would not apply. Known environments: {names}. Use one of "
            f"them, add stacks/{DEFAULTS_DIR}/{env}.yaml, or pass --no-defaults to write it on the model's defaults"
        )
    siblings = team_stacks(stacks_dir, team, skip=path)
    if kind is None:
        kinds = sorted({sibling.kind for sibling in siblings})
        if len(kinds) != 1:
            why = f"team {team}'s stacks use {', '.join(kinds)}" if kinds else f"team {team} has no stack yet"
            return refuse(f"--idp is required: {why} (one of {', '.join(kind_names())})")
        kind = kinds[0]
    try:
        model = kind_model(kind)
    except ValueError as error:
        return refuse(str(error))
    spec = base_spec(team, env, kind, hostname or f"airflow-{team}.{env}.example.com")
    try:
        sharing = plan_sharing(model, siblings, groups, stack, spec)
        filled = fill_required(spec, model, stack)
        slot = assign_policy_slot(spec, stack, sharing.provider, stacks_dir, skip=path)
        leave_out_defaults(spec, stacks_dir, env)
        resolve_spec(spec, f"stacks/{path.name}", stacks_dir)  # with the environment's defaults
    except (ValueError, SpecError) as error:
        return refuse(str(error))
    stacks_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(
        render_stack_file(
            spec, filled, model, stack, provider=sharing.provider, sharing=sharing, has_defaults=has_defaults
        )
    )
    # With the environment's defaults, as the program reads it; the provider settings come next (printed below).
    ok, text = check_stack_file(path, check_settings=False)
    clashes = fleet_clash_list(fleet_of([path]), only=[path]) if ok else []
    if not ok or clashes:
        path.unlink()
        for line in [text] if not ok else [str(clash) for clash in clashes]:
            print(line, file=sys.stderr)
        if not ok:
            return refuse(f"not written: the spec is refused (check stacks/{DEFAULTS_DIR}/{env}.yaml and the flags)")
        fixes = list(dict.fromkeys(clash_fix(clash) for clash in clashes))
        return refuse("not written; use " + "; or ".join(fixes))
    print(f"wrote {path}")
    if sharing.source is not None:
        print(f"shared with {sharing.source.stack}: {', '.join(sharing.copied) or 'nothing'}")
    elif siblings:
        print(f"team {team}'s stacks ({', '.join(s.stack for s in siblings)}) use another kind: nothing shared")
    if sharing.groups:
        print(f"groups: {sharing.groups}")
    if slot is not None:
        print(f"okta: idp.authorizationServer.policySlot {slot}, the first free on that server")
    if filled:
        print(f"replace the placeholders marked REPLACE (idp: {', '.join(filled)}), then:")
    else:
        print("then:")
    for command in next_commands(stack, model, sharing.provider):
        print(f"  {command}")
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--team", required=True, help="team name (lower-case letters, digits, dashes)")
    parser.add_argument("--env", required=True, help="environment (dev, prod, ...): stacks/defaults/<env>.yaml applies")
    parser.add_argument(
        "--idp", choices=kind_names(), help="the IdP kind (default: the kind of the team's other stacks)"
    )
    parser.add_argument("--hostname", help="public host of the UI (default airflow-<team>.<env>.example.com)")
    parser.add_argument(
        "--groups",
        choices=("create", "bind"),
        help="create the `access` groups at the IdP, or bind existing ones (default: bind when another stack "
        "of the team has them, else the kind's default)",
    )
    parser.add_argument(
        "--no-defaults",
        action="store_true",
        help="write a stack for an environment without stacks/defaults/<env>.yaml (the model's defaults apply)",
    )
    parser.add_argument("--stacks-dir", type=Path, help=argparse.SUPPRESS)  # default: the project's
    parser.add_argument("--force", action="store_true", help="replace an existing stack file")


def run(args: argparse.Namespace) -> int:
    stacks_dir = args.stacks_dir or find_project(getattr(args, "project_dir", None)).stacks_dir
    return new_stack(
        args.team,
        args.env,
        args.idp,
        args.hostname,
        stacks_dir,
        args.force,
        groups=args.groups,
        no_defaults=args.no_defaults,
    )
