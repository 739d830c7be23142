"""Service accounts on an Okta custom authorization server, end to end: tests/e2e/stacks/Pulumi.okta-automation.yaml
deployed as declared. The stand-in provider registers only the service apps the stack's client-credentials
policy names, with the secrets Okta holds, and shapes their access tokens as Okta's (`cid`, `scp`, the
server's audience `api://default`, issuer `/oauth2/default`). Another stack's service app on the same
shared server gets tokens for the same audience with its own scope: Airflow must refuse them.
"""

from __future__ import annotations

from pathlib import Path

import jwt
import pytest

from localdev.deployment import OTHER_STACK_SCOPE, UNLISTED_SERVICE_ACCOUNT, LocalDeployment
from tests.e2e.conftest import stack_deployment
from tests.e2e.test_service_accounts import DAG_ID, airflow_token, api, refused_with, serialize_test_dag, trigger

pytestmark = pytest.mark.e2e

STACK = Path(__file__).with_name("stacks") / "Pulumi.okta-automation.yaml"


deployment = stack_deployment(STACK, setup=serialize_test_dag)


def test_ci_job_with_an_okta_service_app_triggers_a_dag_run(deployment: LocalDeployment) -> None:
    token = deployment.service_account_token("release-pipeline")
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["iss"].endswith("/oauth2/default") and claims["aud"] == "api://default"
    assert claims["cid"] == deployment.capture["outputs"]["serviceAccountClientIds"]["release-pipeline"]
    assert claims["scp"] == ["airflow_okta_automation_api"]
    run = trigger(deployment, airflow_token(deployment, "release-pipeline"))
    assert run.status_code == 200, run.text
    assert run.json()["triggering_user_name"] == "release-pipeline"
    assert deployment.airflow.user_roles("release-pipeline") == {"Op"}


def test_refused_a_token_without_this_stacks_scope(deployment: LocalDeployment) -> None:
    token = deployment.service_account_token("release-pipeline", scope="")
    assert jwt.decode(token, options={"verify_signature": False})["scp"] == []
    refused_with(deployment, token, "scope 'airflow_okta_automation_api' is not granted")


def test_refused_another_stacks_service_app_on_the_shared_server(deployment: LocalDeployment) -> None:
    token = deployment.service_account_token(UNLISTED_SERVICE_ACCOUNT, scope=OTHER_STACK_SCOPE)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["aud"] == "api://default" and claims["scp"] == [OTHER_STACK_SCOPE]
    refused_with(deployment, token, "scope 'airflow_okta_automation_api' is not granted")
    # Even with this stack's scope (an Okta admin's mistake), its client id names no account here.
    token = deployment.service_account_token(UNLISTED_SERVICE_ACCOUNT)
    refused_with(deployment, token, "names 0 of this stack's service accounts")


def test_the_people_keep_signing_in(deployment: LocalDeployment) -> None:
    admin = deployment.admin
    assert deployment.roles(admin.username) == {"Admin"}
    token = deployment.admin_token()
    assert api(deployment, "GET", f"/api/v2/dags/{DAG_ID}", token).status_code == 200
