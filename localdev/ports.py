"""The local deployment's fixed loopback ports (a light module: the e2e tier's collection hooks import it)."""

from __future__ import annotations

KEYCLOAK_PORT = 8180
"""The shared Keycloak's port when free: stacks/Pulumi.local.yaml's `idp.url` (served as is, like `make demo`)."""
