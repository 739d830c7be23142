"""What every IdP kind's model provides: its `idp` keys and the pure answers the composer asks of it.

A kind is one package under `components/idp/<kind>/`, registered by one line in `components/idp/__init__.py`.
Its `model.py` subclasses `IdpModel` and answers the composer's questions (the hooks below, all pure); its
`resources.py` answers the Pulumi side's (`KindResources`: lookup, provision, provision_service_accounts, each
given a `BuildContext`), and its component subclasses `IdpClient`, so the Airflow side sees the same outputs
whatever the kind.

Two import rules keep the pure derivations usable everywhere:
- a kind's `model.py` imports neither `pulumi` nor its provider SDK; `resources.py` imports the SDK only
  inside its components, so a stack loads only its own kind's SDK (tests assert it on `sys.modules`);
- the spec, the contract and the rendered webserver_config.py are also computed in the Airflow venv (the
  FAB tier), which cannot install Pulumi (their protobuf pins conflict): they import models only.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import PrivateAttr

from components.idp.base.contract import ClientContract
from components.model import Model, at
from components.spec_base import KIND_ONLY_SERVICE_ACCOUNT_KEYS

if TYPE_CHECKING:
    from components.access import AccessModel, GroupGrant, ServiceAccountGrant
    from components.service_accounts import ServiceAccountContract
    from components.spec_base import ServiceAccount, Spec

ProviderConfig = Mapping[str, str]
"""The stack's provider settings by full config key (`okta:orgName`, `azuread:tenantId`, ...)."""

ROTATION_EPOCH = datetime.date(2024, 1, 1)

SERVICE_ACCOUNTS_NOT_OFFERED: Mapping[str, str] = {
    "google": "idp.kind google offers no service accounts: Google's OAuth server has no client-credentials "
    "grant and issues access tokens only for Google's own APIs (opaque, no audience of yours); machine "
    "identities there are Cloud IAM service accounts, outside the Workspace sign-in this kind manages. "
    "Run automation against a kind whose IdP issues access tokens for the Airflow API (okta custom server, "
    "oidc), or keep serviceAccounts empty",
}
"""Kinds that never offer service accounts, and why (the default refusal names the kind)."""


def secret_generation(today: datetime.date, rotation_days: int) -> int:
    """Which rotation period `today` falls in: deterministic within a period, never `now()` per run."""
    return (today - ROTATION_EPOCH).days // rotation_days


CREDENTIAL_PERIODS = 3
"""A program-made credential at the IdP expires this many rotation periods after its period began."""


def credential_end_date(generation: int, rotation_days: int) -> str:
    """RFC 3339 end date of a credential created in rotation period `generation`: the start of period
    `generation + 3`. It outlives the next rotation (and a stack not deployed for a whole period), and
    is a function of the period, never of `now()`: an end date that moved every run would replace the
    credential every run (Entra's password `end_date` forces replacement)."""
    end = ROTATION_EPOCH + datetime.timedelta(days=(generation + CREDENTIAL_PERIODS) * rotation_days)
    return f"{end.isoformat()}T00:00:00Z"


class MockLookupError(Exception):
    """Raised by a kind's `mock_call` for a lookup the provider would fail (e.g. no such group): the
    mock engine answers the invoke with this failure, as the provider's error reaches the program."""


class ProviderConfigError(Exception):
    """A provider setting the kind needs is missing or malformed; the message names the config key."""


STORE_PROVIDER_CONFIG: Mapping[str, Mapping[str, str]] = {
    "kubernetes": {},
    "gcp-secret-manager": {"gcp:project": "GOOGLE_PROJECT"},
}
"""Provider config keys each store reads -> the environment variable the provider also honours."""


def check_store_provider(spec: Spec, provider: ProviderConfig) -> None:
    """Refuse a store whose provider settings are missing (`ProviderConfigError`, naming the key)."""
    for key, env in STORE_PROVIDER_CONFIG[spec.clientSecret.store].items():
        if not provider.get(key):
            raise ProviderConfigError(
                f"{key} is not set: clientSecret.store {spec.clientSecret.store} needs it "
                f"(`pulumi config set {key} <value>`, or {env})"
            )


class IdpModel(Model):
    """Base of each kind's `idp` model. The hooks have kind-neutral defaults; a kind overrides them."""

    SDK: ClassVar[str | None] = None
    """The Python module of the kind's Pulumi provider (None: the kind declares no IdP resources)."""
    PROVIDER_CONFIG: ClassVar[Mapping[str, str]] = {}
    """Provider config keys the kind reads -> the environment variable the provider also honours."""
    PROVIDER_PACKAGE: ClassVar[str | None] = None
    """The Pulumi package of the kind's resources (`keycloak`, `okta`, ...; its stack config namespace). The
    program binds an explicit provider of it to what the spec says (`explicit_provider`): no resource of the
    kind falls back to the default provider, which reads the stack config alone."""
    REPLACE_ON_CHANGE: ClassVar[Mapping[str, tuple[str, ...]]] = {}
    """Resource type token -> the inputs (camelCase, as the engine sees them) the provider cannot update
    in place: changing one replaces the resource. `airflow-oidc plan` flags such a change as the IdP app
    or client being replaced (a new client id logs everyone out)."""

    DEFAULTS_FROM_PROVIDER: ClassVar[Mapping[str, tuple[str, ...]]] = {}
    """`idp` keys that, when unset, take their value from provider settings (`tenantId` from
    `azuread:tenantId`): hints then name the key the value really came from."""
    GROUPS_BOUND_BY: ClassVar[str | None] = None
    """How a stack with `idp.createGroups: false` finds the `access` groups at the IdP (`by exact name`),
    as `new-stack` says it when a team's stacks share their groups; None: the kind creates no groups."""
    PROVIDER_DEFAULTS: ClassVar[Mapping[str, tuple[str, Any]]] = {}
    """Explicit-provider argument -> (the environment variable that sets it instead, the program's default), for
    arguments whose provider default does not hold up (timeouts): used when neither the stack config nor that
    environment variable sets it."""

    kind: str
    """The `idp.kind` value; each kind narrows it to its own Literal."""

    # What the program's lookups found at the IdP (the kind's `resources.lookup`, before anything is
    # declared), e.g. spec group -> group id; None before (validate, doctor, the pure access model).
    _found: Any = PrivateAttr(default=None)

    @property
    def found(self) -> Any:
        """What the kind's lookups found (None: not looked up in this process)."""
        return self._found

    def record_found(self, found: Any) -> None:
        """Keep what the kind's `resources.lookup` found: its provisioning binds it, and a contract may
        depend on it (Okta: the name a group given by id has)."""
        self._found = found

    def check_spec(self, spec: Spec) -> None:
        """Spec-wide checks of this kind (what the IdP cannot do): raise `components.model.at(...)`."""

    def check_provider(self, spec: Spec, provider: ProviderConfig) -> None:
        """Refuse missing, malformed or contradictory provider settings (`ProviderConfigError`, naming the
        key and the fix). Pure: run by the program before it declares anything and by `airflow-oidc
        validate` (from the stack file's config and environment variables), so they agree."""

    def provider_settings(self, spec: Spec, provider: ProviderConfig) -> Mapping[str, Any]:
        """The arguments of the kind's explicit provider that the spec decides (snake_case, as the SDK's
        `Provider` takes them): they win over the stack's `<package>:*` config, which fills the rest."""
        return {}

    def setup_notes(self, spec: Spec, provider: ProviderConfig) -> list[str]:
        """What must be set by hand at the IdP for this stack to work, which the program cannot declare
        (`airflow-oidc validate` prints each under the file's `ok` line)."""
        return []

    def fleet_names(self, spec: Spec, *, stack: str, provider: ProviderConfig) -> Mapping[str, str]:
        """Names this stack takes at the IdP that no other stack may take too: what (scoped to the IdP
        instance, e.g. `Okta app label at https://acme.okta.com`) -> name. `airflow-oidc validate`
        refuses a fleet where two stacks take the same one."""
        return {}

    def contract(self, spec: Spec, *, stack: str, provider: ProviderConfig) -> ClientContract:
        """The client contract for this kind (pure)."""
        raise NotImplementedError

    # --- the effective-access model (components/access.py) -------------------------------------

    ACCESS_NOTES: ClassVar[tuple[str, ...]] = ()
    """What the kind's model cannot say exactly, in words (shown with the model)."""
    ACCESS_GRANT_TYPES: ClassVar[tuple[str, ...]] = ()
    """Resource types that only grant what the access model describes (Entra's app-role assignment):
    `plan` shows one re-created for a new role as a change, the model's change naming the grant."""

    def access_model(self, spec: Spec, *, stack: str, provider: ProviderConfig) -> AccessModel:
        """What the IdP will let in and as what (pure): each group by the identity the IdP binds, the
        audience, each service account with the subject the IdP trusts. Built from `group_grant` and
        `service_account_grant`, which a kind overrides.

        A group's role is what Airflow's rendered mapping (the contract) gives the claim value the IdP
        emits for its members, not a copy of the spec: the model says what the deployment does."""
        import dataclasses

        from components.access import AccessModel, key_of

        contract = self.contract(spec, stack=stack, provider=provider)
        groups = tuple(
            dataclasses.replace(grant, role=contract.role_by_claim_value.get(grant.claim_value))
            for grant in (
                self.group_grant(spec, rule.group, role=rule.role, loc=("access", index, "group"), contract=contract)
                for index, rule in enumerate(spec.access)
            )
        )
        extra = tuple(
            dataclasses.replace(
                grant,
                role=contract.default_role if grant.claim_value in contract.default_role_claim_values else None,
            )
            for grant in (
                self.group_grant(
                    spec,
                    group,
                    role=spec.defaultRole,
                    loc=("signIn", "extraGroups", index),
                    contract=contract,
                    extra=True,
                )
                for index, group in enumerate(spec.signIn.extraGroups)
            )
        )
        accounts = tuple(
            self.service_account_grant(
                spec, account, key=key_of(("serviceAccounts", index)), stack=stack, provider=provider
            )
            for index, account in enumerate(spec.serviceAccounts)
        )
        return AccessModel(
            kind=self.kind,
            environment=spec.environment,
            groups=groups,
            extra_groups=extra,
            everyone=contract.default_role_everyone,
            default_role=contract.default_role,
            service_accounts=accounts,
            notes=self.ACCESS_NOTES,
        )

    def group_grant(
        self,
        spec: Spec,
        group: str,
        *,
        role: str | None,
        loc: tuple[str | int, ...],
        contract: ClientContract,
        extra: bool = False,
    ) -> GroupGrant:
        """One group as the IdP binds it. Default: the claim value itself, as a provider registered by
        hand emits it (the program declares nothing there)."""
        from components.access import GroupGrant, key_of

        return GroupGrant(
            group=group,
            principal=group,
            binding=f"`{contract.role_claim}` claim value, as the provider emits it (registered by hand)",
            claim_value=group,
            role=role,
            key=key_of(loc),
        )

    def service_account_grant(
        self, spec: Spec, account: ServiceAccount, *, key: str, stack: str, provider: ProviderConfig
    ) -> ServiceAccountGrant:
        """One service account and the subject the IdP trusts for it. Default: a client the IdP names."""
        from components.access import KNOWN_AFTER_APPLY, ServiceAccountGrant

        return ServiceAccountGrant(
            name=account.name,
            role=account.role,
            subject=KNOWN_AFTER_APPLY,
            trust="client credentials of its IdP client",
            key=key,
        )

    # --- service accounts (`serviceAccounts`, components/service_accounts.py) -------------------

    SERVICE_ACCOUNT_KEYS: ClassVar[frozenset[str]] = frozenset()
    """Kind-only keys of `serviceAccounts[]` this kind accepts (e.g. Entra's `githubRepository`)."""

    def service_accounts_refusal(self, spec: Spec) -> str | None:
        """Why this kind (as configured) cannot create service accounts; None: it can."""
        return SERVICE_ACCOUNTS_NOT_OFFERED.get(
            self.kind, f"idp.kind {self.kind} does not create service accounts (yet): remove serviceAccounts"
        )

    def check_service_accounts(self, spec: Spec) -> None:
        """Refuse `serviceAccounts` this kind cannot create, naming the kind and the reason."""
        reason = self.service_accounts_refusal(spec)
        if reason:
            raise at(("serviceAccounts",), reason)
        for index, account in enumerate(spec.serviceAccounts):
            for key, kinds in KIND_ONLY_SERVICE_ACCOUNT_KEYS.items():
                if getattr(account, key) is not None and key not in self.SERVICE_ACCOUNT_KEYS:
                    raise at(
                        ("serviceAccounts", index, key),
                        f"{key} is for idp.kind {' or '.join(kinds)} only, not {self.kind}",
                    )

    def service_account_contract(
        self, spec: Spec, contract: ClientContract, *, stack: str, provider: ProviderConfig
    ) -> ServiceAccountContract:
        """How Airflow recognises the accounts' access tokens: issuer, audience, the claim naming the
        account (pure). Called only when `serviceAccounts` passed `check_service_accounts`; the kind's
        `resources.provision_service_accounts` declares them."""
        raise NotImplementedError

    @staticmethod
    def mock_outputs(type_: str, name: str, inputs: Mapping[str, Any]) -> dict[str, Any] | None:
        """What the provider would compute for one of this kind's resources, for the mock engine
        (`plan`, tests): None for types the kind does not know."""
        return None

    @staticmethod
    def mock_call(token: str, args: Mapping[str, Any]) -> dict[str, Any] | None:
        """What one of this kind's data sources (lookups) would return, for the mock engine: None for
        tokens the kind does not know; raise `MockLookupError` for a lookup the provider fails."""
        return None
