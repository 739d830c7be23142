"""The demo's one DAG: trigger it from the UI; the run names who triggered it (the SSO user)."""

from __future__ import annotations

from airflow.sdk import dag, get_current_context, task


@dag(dag_id="hello_sso", schedule=None, catchup=False, tags=["airflow-oidc", "demo"])
def hello_sso() -> None:
    """Say who triggered the run."""

    @task
    def greet() -> str:
        run = get_current_context()["dag_run"]
        message = f"hello from run {run.run_id}, triggered by {run.triggering_user_name or 'the scheduler'}"
        print(message)
        return message

    greet()


hello_sso()
