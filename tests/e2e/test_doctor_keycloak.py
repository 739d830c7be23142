"""`airflow-oidc doctor` and the logout against a real Keycloak 26 (stacks/Pulumi.local.yaml, `idp.kind: keycloak`).

The doctor reads nothing kind-specific: the client id comes from Airflow's own authorization request
(the Keycloak kind has no `idp.clientId`), the refusal of an unregistered redirect URI is Keycloak's
own error page, and the logout goes through Keycloak's end_session_endpoint. Keycloak on
http://127.0.0.1:8180 and nginx on https://localhost:8443: both ports must be free.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("playwright", reason="!!! playwright is not importable: run with .venv-airflow/bin/pytest")
pytest.importorskip("airflow", reason="!!! airflow is not importable: run with .venv-airflow/bin/pytest")

from localdev.deployment import LocalDeployment, one_character_off  # noqa: E402
from tests.e2e.conftest import stack_deployment  # noqa: E402
from tests.e2e.doctor_cases import assert_logout_ends_the_idp_session, failed, run_doctor  # noqa: E402

pytestmark = pytest.mark.e2e


# The Keycloak stack (shared with tests/e2e/test_login_keycloak.py).
deployment = stack_deployment("local")


@pytest.fixture
def work_dir(tmp_path: Path) -> Path:
    tmp_path.chmod(0o700)
    return tmp_path


def test_doctor_passes_on_keycloak_as_declared(deployment: LocalDeployment, work_dir: Path) -> None:
    """No check fails; left unchecked at most: the nonce (not in Keycloak's discovery) and the clock."""
    status, checks, _ = run_doctor(deployment, work_dir)

    assert failed(checks) == {}
    assert status == 0
    unchecked = {name for name, check in checks.items() if check["status"] == "cannot check"}
    # Keycloak's discovery lists no nonce, and Keycloak (Quarkus) answers without a Date header.
    assert unchecked <= {"idp nonce", "clock skew"}, {name: checks[name]["detail"] for name in unchecked}
    print(f"[doctor] on Keycloak: clock skew {checks['clock skew']['status']}: {checks['clock skew']['detail']}")
    if "clock skew" in unchecked:
        assert "no Date header" in checks["clock skew"]["detail"]
    assert "ends the IdP session too" in checks["endpoints"]["detail"]
    assert checks["redirect uri accepted"]["status"] == "pass"


def test_doctor_reads_keycloaks_refusal_of_an_unregistered_redirect_uri(
    deployment: LocalDeployment, work_dir: Path
) -> None:
    """Keycloak holding a redirect URI one character off: its own error page, told from its login page."""
    with deployment.provider_registered_with(redirect_uris=[one_character_off(deployment.redirect_uri)]):
        status, checks, _ = run_doctor(deployment, work_dir)

    assert status == 1
    assert list(failed(checks)) == ["redirect uri accepted"]
    assert "redirect_uri" in checks["redirect uri accepted"]["detail"]
    assert deployment.redirect_uri in checks["redirect uri accepted"]["fix"]


def test_logout_ends_the_keycloak_session(deployment: LocalDeployment) -> None:
    """After the UI's logout, signing in again shows Keycloak's login form."""
    deployment.use_airflow()
    user = next(user for user in deployment.users_of("mapped") if "Viewer" in user.expected_roles)
    assert_logout_ends_the_idp_session(deployment, user)
