"""`make demo` is tested: `python -m localdev.demo --check` brings the local stack (Keycloak) up on its
fixed ports, signs in once through the browser on Keycloak's page, triggers the demo DAG as that user,
tears everything down and exits 0."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("playwright", reason="!!! playwright is not importable: run with .venv-airflow/bin/pytest")
pytest.importorskip("airflow", reason="!!! airflow is not importable: run with .venv-airflow/bin/pytest")

from localdev.demo import HTTPS_PORT, PROVIDER_PORT
from localdev.harness.process import REPO_ROOT, port_is_free

pytestmark = pytest.mark.e2e


def _secret_values(capture: dict[str, object]) -> set[str]:
    airflow = capture["airflow"]
    assert isinstance(airflow, dict)
    return {value for data in airflow["secrets"].values() for value in data.values()}


def test_demo_check_signs_in_and_stops_everything(e2e_prerequisites: None, released_ports: None) -> None:
    """The demo's own login and DAG run succeed; it prints the URLs, users, passwords and redirect URI, no
    secret of the stack; ports are freed."""
    taken = [port for port in (PROVIDER_PORT, HTTPS_PORT) if not port_is_free(port)]
    assert not taken, f"ports {taken} are taken: stop `make demo`"
    done = subprocess.run(
        [sys.executable, "-m", "localdev.demo", "--check"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    assert "demo check: OK" in output, output[-4000:]
    assert f"https://localhost:{HTTPS_PORT}/auth/oauth-authorized/keycloak" in output
    assert re.search(rf"^\s+Keycloak\s+http://127\.0\.0\.1:{PROVIDER_PORT}\s", output, re.MULTILINE), output
    assert re.search(r"^\s+admin\s+admin-\S+\s+/airflow-admins\s+Admin$", output, re.MULTILINE), output
    assert re.search(r"^\s+outsider\s+\S+\s+\(none\)\s+\(refused", output, re.MULTILINE), output
    # The DAG ran, attributed to the user who signed in (keycloak_<Keycloak user id>).
    ran = r"^demo check: hello_sso run \S+ success in .* triggered by .*keycloak_[0-9a-f-]{36}\)?$"
    assert re.search(ran, output, re.MULTILINE), output
    up = re.search(r"^demo: up in (\d+) s \((.*)\)$", output, re.MULTILINE)
    assert up, output
    print(f"\n[demo] up in {up.group(1)} s ({up.group(2)})")

    logs = re.search(r"logs: (\S+)", output)
    assert logs, output
    capture = json.loads((Path(logs.group(1)) / "capture.json").read_text())
    leaked = {secret for secret in _secret_values(capture) if secret in output}
    assert not leaked, "the demo printed a secret"
    assert port_is_free(PROVIDER_PORT) and port_is_free(HTTPS_PORT), "the demo left a process listening"
