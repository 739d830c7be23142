"""The real CrossGuard run: `pulumi preview --policy-pack policy --policy-pack-config policy/config.json`.

The shipped stacks pass it (in their own modules). Here, a team project whose own environment defaults let any
group be Admin (the program reads the project's defaults, so it accepts the stack) meets the platform's pack,
which reads the platform's allowlist (`policy/../stacks/defaults/prod.yaml`): the preview fails with the
mandatory policy's message.
"""

from __future__ import annotations

import yaml

from localdev.harness.process import RunDir
from tests.engine.conftest import Keycloak
from tests.engine.scenario import EngineStack
from tests.engine.standin_chart import assemble_standin_chart
from tests.engine.workspace import PulumiWorkspace


def test_admin_outside_the_platforms_allowlist_fails_the_mandatory_policy(
    workspace: PulumiWorkspace, keycloak: Keycloak, run_dir: RunDir
) -> None:
    team = PulumiWorkspace(run_dir.sub("policy-team-project"), workspace.engine, workspace.extra_env)
    team.prepare()
    assemble_standin_chart(team.project / "charts")
    defaults = team.project / "stacks" / "defaults" / "prod.yaml"
    document = yaml.safe_load(defaults.read_text())
    document.pop("allowedAdminGroups", None)  # the team's copy lets any group be Admin
    defaults.write_text(yaml.safe_dump(document))
    grant = EngineStack("search-prod", team, keycloak.url)
    grant.init()
    admin_group = next(index for index, rule in enumerate(grant.raw_spec()["access"]) if rule["role"] == "Admin")
    team.set_path(grant.name, f"airflow-oidc:spec.access[{admin_group}].group", "contractors")
    try:
        assert grant.pulumi("preview", check=False).returncode == 0, "the program accepts it: its defaults allow it"
        result = grant.policy_preview()
        assert result.returncode != 0
        assert "mandatory" in result.output
        assert "admin-only-allowed-groups" in result.output
        assert "grants Admin to `" in result.output and "contractors" in result.output, result.output[-3000:]
        assert "which stacks/defaults/prod.yaml does not allow" in result.output
    finally:
        grant.teardown()
