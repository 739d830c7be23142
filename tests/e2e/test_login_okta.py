"""End-to-end SSO for the Okta stacks, deployed from what the program declares at Okta.

dev: the org authorization server (issuer without a path, app-level groups claim `groups`).
prod: a custom authorization server (issuer path /oauth2/default, its own scope and claim),
defaultRole Viewer for signIn.extraGroups. The provider filters the groups claim with the
declared regex and refuses users in none of the assigned groups, as Okta does.
"""

from __future__ import annotations

import pytest

pytest.importorskip("playwright", reason="!!! playwright is not importable: run with .venv-airflow/bin/pytest")
pytest.importorskip("airflow", reason="!!! airflow is not importable: run with .venv-airflow/bin/pytest")

from tests.e2e.conftest import stack_deployment
from tests.e2e.rotation_cases import RotationCases
from tests.e2e.sso_cases import SsoLoginCases

pytestmark = pytest.mark.e2e


deployment = stack_deployment("dev", "prod")


class TestOktaStacks(RotationCases, SsoLoginCases):
    """Okta: assignment refusals at the IdP, the claim filter, the custom server's scope and claim; a
    client-secret rotation applied while a user is signed in."""
