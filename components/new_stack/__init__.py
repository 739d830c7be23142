"""`airflow-oidc new-stack --team T --env E [--idp KIND] [--hostname H]`: a team's stack file in one step.

Writes `stacks/Pulumi.<team>-<env>.yaml` in the project, valid as written (it is validated, environment
defaults included, before this command returns), and prints the commands that follow. Generic over the
IdP kinds: the `idp` keys come from the kind's model (`components/idp/<kind>.py`); a required key gets a
placeholder the spec accepts, marked by a comment to replace it. Values the environment's defaults
file sets (lifetimes, rotation, chart, image, replicas) are left out: the stack inherits them.

A team's next environment shares what its other stacks set up: the same IdP (their `idp` keys and
provider settings, never a client id or a secret) and the same `access` groups. Groups are created by
one stack and bound by the others, the way the kind binds them (`GROUPS_BOUND_BY`); `--groups` decides
instead. An environment without a defaults file is refused unless `--no-defaults` says so.

The package: `values` (the stack's own values), `sharing` (what it takes from the team's other stacks),
`render` (the file's text and the commands that follow), `command` (the sub-command).
"""

from components.new_stack.command import add_arguments, clash_fix, known_environments, new_stack, run
from components.new_stack.render import SECRET_PLACEHOLDER, next_commands, render_stack_file
from components.new_stack.sharing import GROUPS_KEY, SHARED_SPEC_KEYS, Sharing, Sibling, plan_sharing, team_stacks
from components.new_stack.values import (
    FORWARDED_PLACEHOLDER,
    PER_STACK_KEYS,
    PLACEHOLDERS,
    assign_policy_slot,
    base_spec,
    fill_required,
    kind_model,
    leave_out_defaults,
    name_groups,
    secret_keys,
)

__all__ = [
    "FORWARDED_PLACEHOLDER",
    "GROUPS_KEY",
    "PER_STACK_KEYS",
    "PLACEHOLDERS",
    "SECRET_PLACEHOLDER",
    "SHARED_SPEC_KEYS",
    "Sharing",
    "Sibling",
    "add_arguments",
    "assign_policy_slot",
    "base_spec",
    "clash_fix",
    "fill_required",
    "kind_model",
    "known_environments",
    "leave_out_defaults",
    "name_groups",
    "new_stack",
    "next_commands",
    "plan_sharing",
    "render_stack_file",
    "run",
    "secret_keys",
    "team_stacks",
]
