"""Which resources the program protects (`pulumi destroy` and replacements refused), one rule for the program
and the policy pack (`policy/rules/protection.py`, `protected-in-prod`).

Protected only where losing the resource loses what users cannot recreate:
- identity resources (the IdP app or client, its groups, the realm) in a protected environment (prod):
  replacing one logs everyone out, changes the client id or drops memberships;
- the Fernet key (its random bytes and its Secret) wherever it encrypts data that outlives the release: in a
  protected environment, and whenever the metadata database is external (`airflow.database.secretName`),
  whose stored connections and variables it encrypts. With the chart's bundled Postgres the database dies
  with the release, so a throwaway dev or local stack can be destroyed.

The escape, for a stack that really must go: `pulumi state unprotect --all` (or one URN), then `pulumi destroy`.
"""

from __future__ import annotations

from collections.abc import Collection

DEFAULT_PROTECTED_ENVIRONMENTS = ("prod",)


def identity_protected(
    environment: str | None, protected_environments: Collection[str] = DEFAULT_PROTECTED_ENVIRONMENTS
) -> bool:
    """Whether the IdP's resources are protected in this environment."""
    return environment in protected_environments


def fernet_key_protected(
    environment: str | None,
    *,
    external_database: bool,
    protected_environments: Collection[str] = DEFAULT_PROTECTED_ENVIRONMENTS,
) -> bool:
    """Whether the Fernet key and its Secret are protected: in a protected environment, or when the metadata
    database it encrypts is external (it outlives the release)."""
    return external_database or environment in protected_environments
