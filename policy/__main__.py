"""The airflow-oidc policy pack: `pulumi preview --policy-pack policy --policy-pack-config policy/config.json`.

Constructing a PolicyPack starts the analyzer server and blocks, so the policies live in `pack.py`
(importable, tested) and only this entry point builds the pack.
"""

from pulumi_policy import EnforcementLevel, PolicyPack

try:
    from policy.pack import policies
except ImportError:  # the CLI runs the pack from inside policy/
    from pack import policies  # type: ignore[no-redef]

PolicyPack("airflow-oidc", enforcement_level=EnforcementLevel.MANDATORY, policies=policies())
