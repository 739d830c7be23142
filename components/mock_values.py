"""Deterministic stand-ins for values a provider computes (ids, generated secrets), for the mock engine.

`airflow-oidc plan` and the tests run the real program under Pulumi's mock engine: these are the
values it gets back instead of a cloud's, the same for the same resource name on every run.

Every stand-in is recorded in `GENERATED`: it is a value the real provider computes at `pulumi up`,
so `plan` shows it as `(known after apply)`, never as the made-up value (three stacks would otherwise
print one client id, which reads as one shared app).
"""

from __future__ import annotations

import hashlib

GENERATED: set[str] = set()
"""Every value handed out below in this process: unknown until the provider computes the real one."""


def generated(value: str) -> str:
    """Record `value` as a stand-in for a provider-computed value, and return it."""
    GENERATED.add(value)
    return value


def fake(name: str, kind: str) -> str:
    """A deterministic stand-in for a provider-generated value."""
    return generated(f"{kind}-{hashlib.sha256(name.encode()).hexdigest()[:12]}")


def fake_secret(name: str) -> str:
    """What a mocked secret 'generates': recognisable, so tests can hunt for leaks."""
    return generated("MOCKSECRET" + hashlib.sha256(name.encode()).hexdigest()[:40])


def fake_guid(name: str) -> str:
    """A deterministic GUID-shaped id (Entra object and client ids, Keycloak ids)."""
    digest = hashlib.sha256(name.encode()).hexdigest()
    return generated(f"{digest[:8]}-{digest[8:12]}-4{digest[13:16]}-8{digest[17:20]}-{digest[20:32]}")
