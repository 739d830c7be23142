"""End-to-end harness: real processes (PostgreSQL, an OpenID provider, nginx, Airflow api-servers, Chromium)."""
