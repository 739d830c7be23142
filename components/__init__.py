"""airflow-oidc: the identity-provider side and the Airflow side of SSO, from one typed spec."""
