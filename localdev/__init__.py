"""The local deployment: a stack's captured declarations served on this machine (`make demo`, the e2e tier).

`localdev` is what `make demo` runs and what the end-to-end tests deploy through; it is product code,
not test code, but it is NOT part of the installed package (the wheel ships `components` only): it
needs this checkout (stacks/, the stand-in provider's npm packages in `localdev/provider/`), system
packages (PostgreSQL, nginx, Chromium, Node, a JDK for Keycloak) and the Airflow virtualenv.

Two virtualenvs, as everywhere in this repository:

- Everything here runs under `.venv-airflow` (Airflow + FAB, Playwright, psycopg2):
  `.venv-airflow/bin/python -m localdev.demo`, `python -m localdev.harness.install`.
- Except `localdev.capture`, which runs the Pulumi program under the mock engine and so runs under
  `.venv` (`.venv/bin/python -m localdev.capture <stack file> --out capture.json`); the deployment
  calls it as a subprocess and reads its JSON.

Layers, each importing only the ones below it:

- `localdev.demo`: `make demo` (`python -m localdev.demo [--check]`).
- `localdev.pool`: `DeploymentPool`, one deployment per stack for a test run.
- `localdev.deployment`: `LocalDeployment`, one stack served from its capture.
- `localdev.services`, `localdev.keycloak_idp`: what deployments share (PostgreSQL, Keycloak,
  Chromium) and the Keycloak side of a stack.
- `localdev.harness.*`: one real process each (PostgreSQL, Keycloak, the stand-in OpenID provider,
  nginx, the Airflow processes, Chromium), plus `install` (the prerequisites).
- `localdev.capture`, `localdev.ports`: the capture (Pulumi venv) and the fixed ports (light).

From `components` it imports pure things only (the mock engine that captures declarations, the kinds'
pure helpers); it never imports `tests`, and `tests` imports it.
"""
