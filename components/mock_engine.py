"""Run the real `__main__.py` for a stack file under Pulumi's mock engine and record everything.

A product module (`airflow-oidc plan` runs the program with it); `tests/mock_engine.py` re-exports it.

Mocks drop resource options and do not mark provider secret outputs, so the monitor is wrapped to
record `protect`, `additionalSecretOutputs`, dependencies and the raw inputs (where secret values
carry Pulumi's secret signature), and the mock provider outputs are deterministic functions of
the resource name, so two runs can be compared input for input.
"""

from __future__ import annotations

import base64
import hashlib
import json
import runpy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
from google.protobuf import json_format
from pulumi.runtime import settings as pulumi_settings
from pulumi.runtime.mocks import MockCallArgs, MockMonitor, MockResourceArgs, Mocks
from pulumi.runtime.stack import massage

from components.idp import KINDS

try:
    from components.idp.base import MockLookupError

    LOOKUP_FAILURES: tuple[type[Exception], ...] = (MockLookupError,)
except ImportError:  # `plan --base` runs this engine on an older revision's components, which had none
    LOOKUP_FAILURES = ()
from components.mock_values import fake, fake_secret

try:
    from components.mock_values import generated
except ImportError:  # an older revision's stand-ins (`plan --base`): the plan worker records them itself

    def generated(value: str) -> str:
        return value


from components.stack_config import load_stack_file, replace_secure_values

__all__ = [
    "MAIN",
    "ROOT",
    "SECRET_SIG",
    "SECRET_SIG_KEY",
    "ProgramMocks",
    "RecordingMonitor",
    "Registration",
    "Run",
    "fake",
    "fake_secret",
    "is_secret",
    "plain_occurrences",
    "run_program",
    "run_stack_file",
    "stack_config",
    "unwrap_secrets",
]

ROOT = Path(__file__).resolve().parent.parent
MAIN = ROOT / "__main__.py"
SECRET_SIG_KEY = "4dabf18193072939515e22adb298388d"
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"


class ProgramMocks(Mocks):
    def new_resource(self, args: MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        outputs = dict(args.inputs)
        resource_id = fake(args.name, "id")
        for kind in KINDS:
            computed = kind.mock_outputs(args.typ, args.name, args.inputs)
            if computed is not None:
                computed = dict(computed)
                # A kind may give the provider's id shape (Keycloak: GUIDs; a realm's id is its name).
                resource_id = str(computed.pop("id", resource_id))
                outputs.update(computed)
        if args.typ == "random:index/randomPassword:RandomPassword":
            outputs["result"] = fake_secret(args.name)
        elif args.typ == "random:index/randomBytes:RandomBytes":
            raw = hashlib.sha256(("bytes" + args.name).encode()).digest()
            outputs["base64"] = generated(base64.b64encode(raw).decode())
            outputs["hex"] = generated(raw.hex())
        elif args.typ == "kubernetes:helm.sh/v3:Release":
            outputs["status"] = {"status": "deployed"}
        return resource_id, outputs

    def call(self, args: MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        for kind in KINDS:
            try:
                result = kind.mock_call(args.token, args.args)
            except LOOKUP_FAILURES as failure:
                return {}, [("", str(failure))]
            if result is not None:
                return result, []
        return {}, []


@dataclass
class Registration:
    """One resource as the program declared it."""

    type: str
    name: str
    custom: bool
    parent: str
    inputs: dict[str, Any]
    """Inputs with secrets unwrapped (camelCase, as the engine sees them)."""
    raw_inputs: dict[str, Any]
    """Inputs as sent, secret values wrapped in Pulumi's secret signature."""
    protect: bool
    additional_secret_outputs: list[str]
    dependencies: list[str]
    urn: str
    provider: str = ""
    """The explicit provider reference (`<provider URN>::<id>`); empty: the engine's default provider."""
    ignore_changes: list[str] = field(default_factory=list)
    """The `ignore_changes` resource option (inputs the engine never updates after creation)."""


@dataclass
class Run:
    """Everything one program run declared."""

    stack: str
    resources: list[Registration] = field(default_factory=list)
    invokes: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    """Data-source calls (token, arguments), e.g. looking up an existing Okta group."""
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Raw registered outputs by URN (the stack's exports under the Stack's URN)."""

    def of_type(self, type_: str) -> list[Registration]:
        return [resource for resource in self.resources if resource.type == type_]

    def one(self, type_: str) -> Registration:
        found = self.of_type(type_)
        assert len(found) == 1, f"expected one {type_}, found {[r.name for r in found]}"
        return found[0]

    def named(self, name: str) -> Registration:
        found = [resource for resource in self.resources if resource.name == name]
        assert len(found) == 1, f"expected one resource named {name}, found {len(found)}"
        return found[0]

    @property
    def stack_outputs(self) -> dict[str, Any]:
        for urn, outputs in self.outputs.items():
            if urn.endswith("::pulumi:pulumi:Stack::" + f"airflow-oidc-{self.stack}"):
                return outputs
        return {}


class RecordingMonitor(MockMonitor):
    def __init__(self, mocks: Mocks, run: Run) -> None:
        super().__init__(mocks)
        self.run = run

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 - the gRPC method name
        response = super().RegisterResource(request)
        if request.type != "pulumi:pulumi:Stack":
            raw = json_format.MessageToDict(request.object)
            self.run.resources.append(
                Registration(
                    type=request.type,
                    name=request.name,
                    custom=request.custom,
                    parent=request.parent,
                    inputs=unwrap_secrets(raw),
                    raw_inputs=raw,
                    protect=request.protect,
                    additional_secret_outputs=list(request.additionalSecretOutputs),
                    dependencies=list(request.dependencies),
                    urn=response.urn,
                    provider=request.provider,
                    ignore_changes=list(request.ignoreChanges),
                )
            )
        return response

    def Invoke(self, request: Any) -> Any:  # noqa: N802
        self.run.invokes.append((request.tok, json_format.MessageToDict(request.args)))
        return super().Invoke(request)

    def RegisterResourceOutputs(self, request: Any) -> Any:  # noqa: N802
        self.run.outputs[request.urn] = json_format.MessageToDict(request.outputs)
        return super().RegisterResourceOutputs(request)


def is_secret(value: Any) -> bool:
    return isinstance(value, dict) and value.get(SECRET_SIG_KEY) == SECRET_SIG


def unwrap_secrets(value: Any) -> Any:
    if is_secret(value):
        return unwrap_secrets(value.get("value"))
    if isinstance(value, dict):
        return {key: unwrap_secrets(child) for key, child in value.items()}
    if isinstance(value, list):
        return [unwrap_secrets(child) for child in value]
    return value


def plain_occurrences(value: Any, needle: str, path: str = "") -> list[str]:
    """Paths where `needle` appears in a string that is NOT inside a secret-wrapped value."""
    if is_secret(value):
        return []
    if isinstance(value, dict):
        return [hit for key, child in value.items() for hit in plain_occurrences(child, needle, f"{path}.{key}")]
    if isinstance(value, list):
        return [
            hit for index, child in enumerate(value) for hit in plain_occurrences(child, needle, f"{path}[{index}]")
        ]
    if isinstance(value, str) and needle in value:
        return [path or "."]
    return []


def stack_config(path: Path) -> tuple[dict[str, str], list[str]]:
    """The stack file's config as the CLI hands it to a program: JSON strings for structured values.

    `secure:` values cannot be decrypted without the CLI: they become a placeholder and their key
    is listed as secret, as the CLI would list it.
    """
    flat: dict[str, str] = {}
    secret_keys: list[str] = []
    for key, value in load_stack_file(path).items():
        value, has_secret = replace_secure_values(value, placeholder=fake_secret(f"secure:{key}"))
        flat[key] = value if isinstance(value, str) else json.dumps(value)
        if has_secret:
            secret_keys.append(key)
    return flat, secret_keys


def run_program(
    stack: str,
    config: dict[str, str],
    secret_keys: list[str] | None = None,
    run: Run | None = None,
    main: Path = MAIN,
) -> Run:
    """Run `main` (this checkout's `__main__.py`) as stack `stack` with this config; return what it declared.

    Pass `run` to see what was declared even when the program raises (a bad spec must declare nothing).
    """
    run = run if run is not None else Run(stack=stack)
    pulumi_settings.reset_options()  # a fresh root Stack resource for every run
    pulumi.runtime.set_all_config(config, secret_keys or [])
    mocks = ProgramMocks()
    pulumi.runtime.set_mocks(
        mocks, project="airflow-oidc", stack=stack, preview=False, monitor=RecordingMonitor(mocks, run)
    )

    @pulumi.runtime.test
    def program() -> None:
        runpy.run_path(str(main), run_name="__main__")
        # The engine registers the stack's exports when the program ends; under mocks the root
        # stack registered (empty) outputs at creation, so register the exports again here.
        root = pulumi_settings.get_root_resource()
        root.register_outputs(massage(root.outputs, []))  # type: ignore[union-attr]

    program()
    return run


def run_stack_file(path: Path, run: Run | None = None, main: Path = MAIN) -> Run:
    """Run the program with a stack file's config, as `pulumi up -s <stack>` would."""
    stack = path.name.removeprefix("Pulumi.").removesuffix(".yaml")
    config, secret_keys = stack_config(path)
    return run_program(stack, config, secret_keys, run=run, main=main)
