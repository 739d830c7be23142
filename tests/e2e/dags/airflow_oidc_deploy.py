"""A tiny DAG for the service-account tests: a CI job triggers it through Airflow's public REST API."""

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG

with DAG("airflow_oidc_deploy", schedule=None, catchup=False, tags=["airflow-oidc-e2e"]):
    EmptyOperator(task_id="deploy")
