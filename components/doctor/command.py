"""The `airflow-oidc doctor` sub-command: its arguments, and the run from a stack file to the report."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from components.contract import CLIENT_SECRET_ENV, client_contract
from components.doctor.http_client import Http
from components.doctor.report import FAIL, render
from components.doctor.runner import Doctor
from components.doctor.state import DoctorTarget
from components.spec import Spec
from components.stack_files import check_stack_file, shown_name, stack_name


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `doctor` subcommand's arguments."""
    parser.add_argument(
        "stack_file", type=Path, metavar="STACK_FILE", help="a stack file, or a stack name of the project"
    )
    parser.add_argument("--airflow-url", help="Airflow's public URL (default: https://<hostname> of the spec)")
    parser.add_argument("--id-token", type=Path, metavar="FILE", help="an ID token a user pasted (never printed)")
    parser.add_argument("--format", choices=("text", "json"), default="text")
    parser.add_argument(
        "--issuer-url",
        help="where to reach the issuer, if not at the declared URL from here (the issuer is still compared "
        "with the declared one, byte for byte)",
    )
    parser.add_argument("--client-id", help="the OAuth client id (default: what Airflow sends, or `idp.clientId`)")
    parser.add_argument(
        "--client-secret-file",
        type=Path,
        metavar="FILE",
        help=f"the client secret, to check it at the token endpoint (default: ${CLIENT_SECRET_ENV}); never printed",
    )
    parser.add_argument("--ca-file", help="CA certificates (PEM) to verify Airflow's and the IdP's TLS with")
    parser.add_argument("--insecure", action="store_true", help="do not verify TLS certificates")
    parser.add_argument("--timeout", type=float, default=10, help="seconds per HTTP request (default 10)")
    parser.add_argument("--stack", help="the stack name (default: from the file name Pulumi.<stack>.yaml)")


def doctor(args: argparse.Namespace, *, now: Callable[[], float] = time.time) -> int:
    """Run every check on the stack file's live setup; print them; 1 if any failed (2: unusable input)."""
    from components.stack_config import provider_from_stack_file, spec_from_stack_file

    path: Path = args.stack_file
    if not path.exists():  # a stack name (`ledger-prod`): the project's Pulumi.ledger-prod.yaml
        from components.project import find_project

        path = find_project(getattr(args, "project_dir", None)).stack_path(path)
    ok, problem = check_stack_file(path)
    if not ok:
        print(problem, file=sys.stderr)
        return 2
    spec = spec_from_stack_file(path)
    source = shown_name(path)
    provider = provider_from_stack_file(path, spec)
    try:
        contract = client_contract(spec, stack=args.stack or stack_name(path), provider=provider)
    except ValueError as error:
        print(f"{source}: {error}", file=sys.stderr)
        return 2
    id_token = None
    if args.id_token is not None:
        try:
            id_token = args.id_token.read_text()
        except (OSError, UnicodeDecodeError) as error:
            print(
                f"{args.id_token}: cannot read the ID token file: {getattr(error, 'strerror', None) or error}",
                file=sys.stderr,
            )
            return 2
    client_secret = os.environ.get(CLIENT_SECRET_ENV) or None
    if args.client_secret_file is not None:
        try:
            client_secret = args.client_secret_file.read_text().strip()
        except (OSError, UnicodeDecodeError) as error:
            why = getattr(error, "strerror", None) or type(error).__name__
            print(f"{args.client_secret_file}: cannot read the client secret file: {why}", file=sys.stderr)
            return 2
    target = DoctorTarget(
        source=source,
        spec=spec,
        contract=contract,
        issuer_url=args.issuer_url or contract.issuer,
        airflow_url=args.airflow_url or spec.public_url,
        client_id=args.client_id or getattr(spec.idp, "clientId", None),
        id_token=id_token,
        client_secret=client_secret,
        provider_sources=provider_sources(path, spec, provider),
    )
    http = Http(timeout=args.timeout, ca_file=args.ca_file, insecure=args.insecure, now=now)
    checks = Doctor(target, http).run()
    print(render(checks, source, args.format))
    return 1 if any(check.status == FAIL for check in checks) else 0


def provider_sources(path: Path, spec: Spec, provider: Mapping[str, str]) -> dict[str, str]:
    """Each provider setting the stack has -> where it came from: the key in the stack file, else its env var."""
    from components.stack_config import load_stack_file

    config = load_stack_file(path)
    return {
        key: key if isinstance(config.get(key), str) else env
        for key, env in type(spec.idp).PROVIDER_CONFIG.items()
        if provider.get(key)
    }
