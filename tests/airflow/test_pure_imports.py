"""The pure derivations load where Pulumi cannot be installed (the Airflow venv): every kind's spec,
contract and rendered webserver_config.py, with no Pulumi module imported along the way."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
STACK_FILES = sorted((ROOT / "stacks").glob("Pulumi.*.yaml"))

pytestmark = pytest.mark.airflow

PROBE = """
import sys
from pathlib import Path
from components.airflow_values import render_webserver_config
from components.contract import client_contract
from components.stack_config import provider_from_stack_file, spec_from_stack_file

path = Path(sys.argv[1])
spec = spec_from_stack_file(path)
contract = client_contract(spec, stack=path.stem.split(".", 1)[1], provider=provider_from_stack_file(path, spec))
assert "ROLE_BY_CLAIM_VALUE = " in render_webserver_config(contract)
loaded = sorted(name for name in sys.modules if name == "pulumi" or name.startswith("pulumi"))
print(spec.idp.kind, loaded)
sys.exit(1 if loaded else 0)
"""


@pytest.mark.parametrize("path", STACK_FILES, ids=lambda p: p.name)
def test_spec_contract_and_rendered_config_need_no_pulumi(path: Path) -> None:
    """A fresh interpreter per stack file, so no earlier import hides a module-level `import pulumi`."""
    result = subprocess.run(
        [sys.executable, "-c", PROBE, str(path)], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, f"{path.name}: {result.stdout}{result.stderr[-2000:]}"
