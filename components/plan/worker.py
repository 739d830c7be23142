"""The process `airflow-oidc plan` runs per side (the working tree, and the `--base` revision).

Run as a script, never imported by the program: it puts the side's checkout first on `sys.path`, so
`components` (the spec, the kinds, `__main__.py`) is THAT revision's code, while the mock engine and
the policy rules are loaded by path from the revision running `plan`. Every stack file runs through
the side's own `__main__.py` under the mock engine, all in this one process (SDKs loaded once).

It prints one JSON document on stdout: per stack the resources (type, logical name, parent, protect,
inputs with every secret value replaced by `[secret]`, the paths that were secret), the stack outputs
(secrets replaced too), the resolved spec and what it inherited from the environment defaults, and the
policy rules' verdict on the unredacted run. Secret values never leave this process.

    python components/plan/worker.py --root DIR --engine FILE --rules FILE [--policy-config FILE] STACK_FILE...
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import json
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

REDACTED = "[secret]"
UNKNOWN = "(known after apply)"
"""What a value the provider computes at `pulumi up` (an id, a generated secret) reads as in the plan."""


def load_by_path(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is created
    spec.loader.exec_module(module)
    return module


def redact(engine: ModuleType, value: Any, path: str, secret_paths: list[str]) -> Any:
    """`value` with every secret-wrapped part replaced by `[secret]`; the paths replaced are collected."""
    if engine.is_secret(value):
        secret_paths.append(path or ".")
        return REDACTED
    if isinstance(value, dict):
        return {
            key: redact(engine, child, f"{path}.{key}" if path else str(key), secret_paths)
            for key, child in value.items()
        }
    if isinstance(value, list):
        return [redact(engine, child, f"{path}[{index}]", secret_paths) for index, child in enumerate(value)]
    return value


def generated_values() -> set[str]:
    """The side's record of the mock engine's stand-in values (`components.mock_values.GENERATED`). A
    revision without one gets its stand-in functions wrapped to record them (call before loading the engine)."""
    try:
        import components.mock_values as values
    except ImportError:
        return set()
    registry = getattr(values, "GENERATED", None)
    if isinstance(registry, set):
        return registry
    recorded: set[str] = set()

    def recording(original: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            value = original(*args, **kwargs)
            recorded.add(value)
            return value

        return wrapper

    for name in ("fake", "fake_guid", "fake_secret"):
        if callable(getattr(values, name, None)):
            setattr(values, name, recording(getattr(values, name)))
    return recorded


def mark_unknown(value: Any, stand_ins: set[str]) -> Any:
    """`value` with every stand-in value (or a string embedding one) shown as `(known after apply)`."""
    if isinstance(value, str):
        if value in stand_ins:
            return UNKNOWN
        for stand_in in stand_ins:
            if len(stand_in) >= 8 and stand_in in value:
                value = value.replace(stand_in, UNKNOWN)
        return value
    if isinstance(value, dict):
        return {key: mark_unknown(child, stand_ins) for key, child in value.items()}
    if isinstance(value, list):
        return [mark_unknown(child, stand_ins) for child in value]
    return value


def error_text(error: BaseException) -> str:
    """The program's own refusal (it names the stack file and key path), else the exception's type and text."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if type(current).__name__ == "RunError":
            return str(current)
        current = current.__cause__ or current.__context__
    return f"{type(error).__name__}: {error}"


def resolved_spec(path: Path) -> dict[str, Any]:
    """The side's resolved spec for the stack file and what came from its environment defaults."""
    try:
        from components import stack_config
    except Exception:  # noqa: BLE001 - an old revision: no resolved values to show
        return {}
    resolve = getattr(stack_config, "resolved_from_stack_file", None)
    try:
        if resolve is not None:
            resolved = resolve(path)
            spec, inherited = resolved.spec, dict(resolved.inherited)
            source = resolved.defaults.source if resolved.defaults is not None else None
        else:
            spec, inherited, source = stack_config.spec_from_stack_file(path), {}, None
    except Exception:  # noqa: BLE001 - the program run reports the problem itself
        return {}
    return {"spec": spec.model_dump(mode="json", by_alias=True), "inherited": inherited, "defaultsFile": source}


def kind_tables() -> dict[str, Any]:
    """What the side's kinds say about their resources: the provider packages and REPLACE_ON_CHANGE."""
    try:
        from components.idp import KINDS
    except Exception:  # noqa: BLE001
        return {"idpPackages": [], "replaceOnChange": {}, "accessGrantTypes": []}
    packages = sorted({str(kind.SDK).removeprefix("pulumi_") for kind in KINDS if getattr(kind, "SDK", None)})
    replace: dict[str, list[str]] = {}
    for kind in KINDS:
        for type_, inputs in dict(getattr(kind, "REPLACE_ON_CHANGE", {}) or {}).items():
            replace.setdefault(type_, [])
            replace[type_].extend(name for name in inputs if name not in replace[type_])
    grants = sorted({type_ for kind in KINDS for type_ in getattr(kind, "ACCESS_GRANT_TYPES", ())})
    return {"idpPackages": packages, "replaceOnChange": replace, "accessGrantTypes": grants}


def plan_stack(
    engine: ModuleType,
    rules: ModuleType | None,
    policy_config: Any,
    root: Path,
    file: str,
    stand_ins: set[str] | None = None,
) -> dict:
    path = root / file
    stack = path.name.removeprefix("Pulumi.").removesuffix(".yaml")
    result: dict[str, Any] = {"stack": stack, "file": file}
    run = engine.Run(stack=stack)
    started = time.perf_counter()
    try:
        engine.run_stack_file(path, run=run, main=root / "__main__.py")
    except Exception as error:  # noqa: BLE001 - reported as the stack's error (exit status 2)
        result["error"] = error_text(error)
        return result
    result["seconds"] = round(time.perf_counter() - started, 4)
    resources = []
    for registration in run.resources:
        secret_paths: list[str] = []
        inputs = mark_unknown(redact(engine, registration.raw_inputs, "", secret_paths), stand_ins or set())
        resources.append(
            {
                "type": registration.type,
                "name": registration.name,
                "parent": registration.parent.rsplit("::", 1)[-1] if registration.parent else "",
                "protect": bool(registration.protect),
                "inputs": inputs,
                "secretPaths": secret_paths,
            }
        )
    result["resources"] = resources
    result["outputs"] = mark_unknown(redact(engine, run.stack_outputs, "", []), stand_ins or set())
    result.update(resolved_spec(path))
    if rules is not None:
        declared = [rules.Declared.of(registration) for registration in run.resources]
        if hasattr(rules, "project_defaults_dir") and "defaults_dir" in inspect.signature(rules.check_all).parameters:
            # The rules' own project (the change's) holds the Admin allowlists: both sides are judged by them.
            environment = (result.get("spec") or {}).get("environment")
            verdict = rules.check_all(
                declared,
                policy_config,
                stack,
                environment=environment if isinstance(environment, str) else None,
                defaults_dir=rules.project_defaults_dir(Path(str(rules.__file__)).resolve().parent.parent),
            )
        else:  # a project whose policy pack predates the allowlists in its defaults files, or wraps check_all
            verdict = rules.check_all(declared, policy_config, stack)
        result["policy"] = {name: messages for name, messages in verdict.items() if messages}
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="plan_worker")
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--engine", type=Path, required=True)
    parser.add_argument("--rules", type=Path)
    parser.add_argument("--policy-config", type=Path)
    parser.add_argument("files", nargs="*")
    args = parser.parse_args(argv)
    root = args.root.resolve()
    here = str(Path(__file__).resolve().parent)
    # The side's checkout first, and never this script's own directory (its modules are not top-level).
    sys.path[:] = [str(root)] + [entry for entry in sys.path if entry and Path(entry).resolve() != Path(here)]
    # An editable install (`pip install -e .`) maps `components.*` to the installed checkout: a module the
    # side lacks would silently come from another revision. Only the side's own files may be imported.
    sys.meta_path[:] = [finder for finder in sys.meta_path if "__editable__" not in getattr(finder, "__module__", "")]
    started = time.perf_counter()
    stand_ins = generated_values()
    engine = load_by_path("airflow_oidc_plan_engine", args.engine)
    rules = load_by_path("airflow_oidc_plan_rules", args.rules) if args.rules else None
    policy_config = json.loads(args.policy_config.read_text()) if args.policy_config else {}
    loaded = time.perf_counter() - started
    stacks = [plan_stack(engine, rules, policy_config, root, file, stand_ins) for file in args.files]
    document = {
        "stacks": stacks,
        **kind_tables(),
        "timing": {"loadSeconds": round(loaded, 3), "totalSeconds": round(time.perf_counter() - started, 3)},
    }
    json.dump(document, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
