"""A client-secret rotation applied while a user is signed in, for the kinds whose secret the program
makes and sets at the IdP in place (Keycloak, Okta): one secret per client, so the IdP revokes the old
one the moment it takes the new one.

What the next rotation period's `pulumi up` changes comes from the program itself: the stack captured
as on a day of the next period, compared with the deployed capture (the api-server's pod template
changes, nothing else's). The mocks cannot draw the new random value, so the test draws it and applies
it where the program's outputs flow, in the order the engine applies them: the IdP client first (its
input), then the api-servers roll onto the Secret that holds it (the Helm release waits for the Secret,
and the changed annotation replaces the pods).

Subclass `RotationCases` beside `SsoLoginCases` in a module that defines `deployment`. Like every
restarting case it runs on the first stack of each kind the module names (`restarts_once_per_kind`).
"""

from __future__ import annotations

import datetime
import secrets
import string
from typing import Any

import pytest
import requests

from components.contract import CLIENT_SECRET_ENV
from components.stack_config import spec_from_stack_file
from localdev.deployment import LocalDeployment, run_capture
from tests.e2e.sso_cases import AUTHLIB_REFUSED, describe

ROLL_ANNOTATION = "airflow-oidc/config-version"
LONG_RUNNING = ("scheduler", "dagProcessor", "triggerer", "workers")


def next_period_capture(deployment: LocalDeployment) -> dict[str, Any]:
    """What the program declares one rotation period later (a day `rotationDays` ahead is always in it)."""
    spec = spec_from_stack_file(deployment.stack_file)
    day = datetime.date.today() + datetime.timedelta(days=spec.clientSecret.rotationDays)
    return run_capture(deployment.stack_file, deployment.run.path / "capture-next-period.json", today=day)


def new_program_secret() -> str:
    """A secret shaped like the program's (`program_secret`: 64 letters and digits)."""
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(64))


def token_endpoint_error(deployment: LocalDeployment, client_secret: str) -> str:
    """The IdP's answer to a code exchange with a made-up code, authenticated with `client_secret`:
    `invalid_grant` once the client authenticated, a client error when the secret is not (or no
    longer) the client's."""
    discovery = requests.get(deployment.provider.discovery_url, timeout=10).json()
    response = requests.post(
        discovery["token_endpoint"],
        data={"grant_type": "authorization_code", "code": "made-up", "redirect_uri": deployment.redirect_uri},
        auth=(deployment.client.client_id, client_secret),
        timeout=10,
    )
    assert response.status_code in (400, 401), (response.status_code, response.text[:300])
    return str(response.json().get("error"))


class RotationCases:
    """The rotation of a program-made client secret, end to end. List it before `SsoLoginCases` among the
    bases: pytest collects base classes in reverse MRO order, so it then runs after the shared cases."""

    @pytest.mark.restarts_airflow("client-secret-rotated")
    def test_a_rotation_while_signed_in_rolls_the_api_servers_and_no_login_fails_after(
        self, deployment: LocalDeployment
    ) -> None:
        deployment.use_airflow()  # start from the api-servers exactly as declared
        # What the next period's `pulumi up` declares: the api-servers roll, nothing else does.
        current, upcoming = deployment.values, next_period_capture(deployment)["airflow"]["values"]
        rolled = current["apiServer"]["podAnnotations"][ROLL_ANNOTATION]
        assert upcoming["apiServer"]["podAnnotations"][ROLL_ANNOTATION] != rolled, "the api-servers would not roll"
        for component in LONG_RUNNING:
            assert upcoming.get(component) == current.get(component), f"{component} would roll too"
        assert upcoming["apiServer"]["env"] == current["apiServer"]["env"], "the Secret and its key stay"

        old_secret = deployment.client.client_secret
        assert token_endpoint_error(deployment, old_secret) == "invalid_grant"
        # A user signed in before the rotation.
        signed_in = deployment.login(deployment.admin, label="rotation-signed-in")
        assert signed_in.has_token and signed_in.token, describe(signed_in)

        new_secret = new_program_secret()
        with deployment.provider_registered_with(client_secret=new_secret):
            # The IdP took the new secret and revoked the old one at once (one secret per client).
            assert token_endpoint_error(deployment, old_secret) != "invalid_grant"
            assert token_endpoint_error(deployment, new_secret) == "invalid_grant"
            # Until the api-servers roll they still present the old one: the window the README names.
            marks = deployment.airflow_log_marks()
            window = deployment.login(deployment.users_of("mapped")[-1], label="rotation-window")
            assert not window.has_token, describe(window)
            deployment.expect_airflow_log(marks, AUTHLIB_REFUSED)

            # The roll: the api-servers start again on the Secret holding the new value.
            deployment.use_airflow(env={CLIENT_SECRET_ENV: new_secret})

            # The session from before the rotation still works, on every api-server.
            for server in range(deployment.airflow.count):
                response = deployment.airflow.fab_user(signed_in.token, deployment.admin.username, server=server)
                assert response.status_code == 200, (server, response.status_code, response.text[:300])
            # With the old secret revoked at the IdP, no login fails: every mapped user signs in again
            # (each sign-in starts on one api-server and finishes on the other) and holds their role.
            marks = deployment.airflow_log_marks()
            for user in deployment.users_of("mapped"):
                result = deployment.login(user, label=f"rotation-after-{user.account_id}")
                assert result.has_token, f"{user.account_id}: {describe(result)}"
                assert deployment.roles(user.username) == set(user.expected_roles)
            assert AUTHLIB_REFUSED not in deployment.airflow_log_since(marks)
