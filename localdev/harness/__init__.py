"""The local deployment's real processes: PostgreSQL, Keycloak, an OpenID provider, nginx, Airflow, Chromium."""
