"""The airflow-oidc guardrails: plain rules (`policy.rules`) and their Pulumi policy-pack adapters (`policy.pack`)."""
