"""End-to-end SSO for stacks/Pulumi.local-oidc.yaml (`idp.kind: oidc`, a hand-registered provider).

The provider serves the stack's own issuer, http://127.0.0.1:9400 (no replacement in the
webserver_config.py), and nginx the stack's URL, https://localhost:8443: both ports must be free.
"""

from __future__ import annotations

import pytest

pytest.importorskip("playwright", reason="!!! playwright is not importable: run with .venv-airflow/bin/pytest")
pytest.importorskip("airflow", reason="!!! airflow is not importable: run with .venv-airflow/bin/pytest")

from tests.e2e.conftest import stack_deployment
from tests.e2e.sso_cases import SsoLoginCases

pytestmark = pytest.mark.e2e


deployment = stack_deployment("local-oidc")


class TestOidcLocalStack(SsoLoginCases):
    """The generic `oidc` kind: the groups claim as the provider emits it, refusals by Airflow."""
