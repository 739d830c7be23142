"""What every IdP kind's Pulumi side shares: the hooks a kind's `resources.py` answers (`KindResources`),
the `IdpClient` component base, the explicit provider, program-generated secrets.

Imports `pulumi` only inside functions (and `ComponentResource` when installed): the Airflow venv, which
cannot install Pulumi, still imports the kinds' packages.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol, cast

if TYPE_CHECKING:
    import pulumi

    from components.idp.base.context import BuildContext
    from components.service_accounts import ServiceAccountContract, ServiceAccountIdentities
    from components.spec_base import Spec

try:
    from pulumi import ComponentResource
except ImportError:  # the Airflow venv: specs and contracts only, no resources are declared there
    ComponentResource = object  # type: ignore[assignment,misc]


class KindResources(Protocol):
    """The hooks of a kind's Pulumi side: the module `components/idp/<kind>/resources.py` (found by the
    registry, `components.idp.kind_resources`). Each takes what the pure model derived, never re-derives it."""

    def lookup(self, spec: Spec, provider: Mapping[str, str]) -> None:
        """Ask the IdP what the spec names by lookup (existing groups, say), refusing with
        `ProviderConfigError` (naming the key) what matches nothing or more than one thing, and keep the
        answer on the model (`IdpModel.record_found`). Run by the program only (it has the provider's
        credentials), after `check_provider`, before declaring anything."""

    def provision(self, ctx: BuildContext) -> IdpClient:
        """The IdP side: declare the kind's resources (one component, `ctx.name`) and return it."""

    def provision_service_accounts(
        self, ctx: BuildContext, *, accounts: ServiceAccountContract, client: IdpClient
    ) -> ServiceAccountIdentities:
        """The IdP side of `serviceAccounts`: declare the machine identities (children of `client`, the
        kind's component: `ctx.opts`) and return each account's identity value and credentials."""


PROVIDER_RESOURCE_NAME = "airflow-oidc-idp"
"""Logical name of the kind's explicit provider (`pulumi:providers:<package>`), a top-level resource."""
_explicit_providers: dict[int, Any] = {}


def explicit_provider(spec: Spec, provider: Mapping[str, str]) -> pulumi.ProviderResource | None:
    """The kind's explicit provider, bound to the spec (`IdpModel.provider_settings`) over the stack's
    `<package>:*` config; None for a kind that declares no IdP resources. One per program run: the lookups
    before anything else is declared and the kind's resources use the same one."""
    import importlib
    import os

    idp = spec.idp
    package = type(idp).PROVIDER_PACKAGE
    if package is None or type(idp).SDK is None:
        return None
    cached = _explicit_providers.get(id(spec))
    if cached is not None and cached[0] is spec:
        return cast("pulumi.ProviderResource", cached[1])
    sdk = importlib.import_module(str(type(idp).SDK))
    args = stack_provider_args(sdk.ProviderArgs, package)
    for name, (env, default) in type(idp).PROVIDER_DEFAULTS.items():
        if name not in args and not os.environ.get(env):
            args[name] = default
    args.update(idp.provider_settings(spec, provider))
    resource = sdk.Provider(PROVIDER_RESOURCE_NAME, **args)
    _explicit_providers.clear()  # one spec per run; a new run (tests) starts afresh
    _explicit_providers[id(spec)] = (spec, resource)
    return cast("pulumi.ProviderResource", resource)


def stack_provider_args(args_class: type, package: str) -> dict[str, Any]:
    """The `<package>:*` keys the stack config sets, as the SDK's `ProviderArgs` takes them (what the default
    provider would have read): typed by the argument's annotation, secret where the config is."""
    import inspect
    import typing

    import pulumi
    from pulumi.runtime.config import is_config_secret
    from pydantic.alias_generators import to_camel

    config = pulumi.Config(package)
    args: dict[str, Any] = {}
    for name, parameter in inspect.signature(args_class).parameters.items():
        if parameter.kind is not inspect.Parameter.KEYWORD_ONLY:
            continue
        key = to_camel(name)
        # `Input[T]` is a Union whose first member is T itself.
        members = typing.get_args(parameter.annotation)
        base = members[0] if members else parameter.annotation
        secret = is_config_secret(f"{package}:{key}")
        value: Any
        if base is bool:
            value = config.get_secret_bool(key) if secret else config.get_bool(key)
        elif base is int:
            value = config.get_secret_int(key) if secret else config.get_int(key)
        elif base is str:
            value = config.get_secret(key) if secret else config.get(key)
        else:
            value = config.get_secret_object(key) if secret else config.get_object(key)
        if value is not None:
            args[name] = value
    return args


class IdpClient(ComponentResource):
    """The IdP side of one OIDC client, as the Airflow side uses it (the same for every kind)."""

    client_id: pulumi.Output[str]
    """The OAuth client id Airflow presents."""
    client_secret: pulumi.Output[str]
    """The client secret Airflow presents (a Pulumi secret)."""
    secret_version: pulumi.Output[str]
    """Non-secret: the kind's rotation period of the secret (`"0"`: the program never rotates it). The
    Airflow side adds a keyed digest of the value itself and the store's version, so the api-server
    rolls whenever the value it must read changes, a given secret edited included."""
    outputs: dict[str, pulumi.Output[Any]]
    """Further stack outputs of this kind (e.g. `registration`: what to register by hand)."""
    api_server_annotations: dict[str, pulumi.Output[str]]
    """Annotations the api-server's Kubernetes service account needs (e.g. a GKE Workload Identity)."""

    def finish(
        self,
        *,
        client_id: pulumi.Input[str],
        client_secret: pulumi.Input[str],
        secret_version: pulumi.Input[str],
        outputs: Mapping[str, pulumi.Input[Any]] | None = None,
        api_server_annotations: Mapping[str, pulumi.Input[str]] | None = None,
    ) -> None:
        """Set the outputs and register them (the last call of a kind's constructor)."""
        import pulumi

        self.client_id = pulumi.Output.from_input(client_id)
        self.client_secret = pulumi.Output.secret(client_secret)
        self.secret_version = pulumi.Output.from_input(secret_version)
        self.outputs = {key: pulumi.Output.from_input(value) for key, value in (outputs or {}).items()}
        self.api_server_annotations = {
            key: pulumi.Output.from_input(value) for key, value in (api_server_annotations or {}).items()
        }
        self.register_outputs({"client_id": self.client_id, "secret_version": self.secret_version, **self.outputs})


def program_secret(
    owner: pulumi.Resource,
    name: str,
    *,
    generation: int | None,
    aliases: list[pulumi.Input[pulumi.Alias]] | None = None,
) -> pulumi.Output[str]:
    """A client secret the program generates (and sets at the IdP): 64 letters and digits.

    `generation` (see `secret_generation`) replaces it when it changes; None never rotates it (a
    secret registered by hand must not change under the person who registered it).
    """
    import pulumi
    import pulumi_random as random

    password = random.RandomPassword(
        name,
        length=64,
        special=False,
        keepers={"generation": str(generation)} if generation is not None else None,
        opts=pulumi.ResourceOptions(parent=owner, aliases=aliases),
    )
    return pulumi.Output.secret(password.result)
