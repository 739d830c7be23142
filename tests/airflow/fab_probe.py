"""Load a stack's rendered webserver_config.py into real Airflow + FAB and report what they do.

Run by tests/airflow/test_webserver_config_fab.py with .venv-airflow's Python, one process per stack
(Airflow's configuration and auth manager are process-wide). Reads a JSON request on stdin:
`{"stack_file", "stack", "provider", "home", "out", "steps": [...]}` and writes one JSON result per step to `out`.
Steps: `{"op": "callback", "headers": {...}}` (where /auth/login/<provider> redirects the browser)
and `{"op": "login", "claims": {...}, "userinfo": {...}|null}` (the ID token's verified claims as
Authlib hands them to the security manager, and what the userinfo endpoint would answer).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from components.airflow_values import render_webserver_config  # noqa: E402
from components.contract import client_contract  # noqa: E402
from components.stack_config import spec_from_stack_file  # noqa: E402


def main() -> None:
    request = json.load(sys.stdin)
    spec = spec_from_stack_file(Path(request["stack_file"]))
    contract = client_contract(spec, stack=request["stack"], provider=request.get("provider") or {})
    home = Path(request["home"])
    config_file = home / f"webserver_config_{request['stack']}.py"
    config_file.write_text(render_webserver_config(contract))
    os.environ.update(
        {
            "AIRFLOW__FAB__CONFIG_FILE": str(config_file),
            "AIRFLOW__API__BASE_URL": spec.public_url,
            "AIRFLOW__FAB__ENABLE_PROXY_FIX": "True",
            "AIRFLOW_OIDC_CLIENT_ID": request["client_id"],
            "AIRFLOW_OIDC_CLIENT_SECRET": "probe-secret",
        }
    )
    import airflow.providers.fab.auth_manager.fab_auth_manager as fab_auth_manager
    from airflow.api_fastapi.app import create_app, get_auth_manager
    from fastapi.testclient import TestClient

    # Keep a handle on the Flask app the FAB auth manager builds (for an application context).
    flask_apps: list[Any] = []
    build_flask_app = fab_auth_manager.create_app

    def capture(*args: Any, **kwargs: Any) -> Any:
        flask_apps.append(build_flask_app(*args, **kwargs))
        return flask_apps[-1]

    fab_auth_manager.create_app = capture  # type: ignore[assignment]
    app = create_app()
    client = TestClient(app, base_url="http://127.0.0.1:8080")
    manager: Any = get_auth_manager()
    sm = manager.security_manager
    remote = sm.oauth_remotes[contract.provider]
    # The discovery document of the real issuer is out of reach here; the e2e tier fetches a real one.
    remote.server_metadata.update(
        {
            "_loaded_at": time.time(),
            "issuer": contract.issuer,
            "authorization_endpoint": contract.issuer + "/authorize",
            "token_endpoint": contract.issuer + "/token",
            "userinfo_endpoint": contract.issuer + "/userinfo",
            "jwks_uri": contract.issuer + "/keys",
        }
    )
    results = []
    for step in request["steps"]:
        if step["op"] == "callback":
            response = client.get(f"/auth/login/{contract.provider}", headers=step["headers"], follow_redirects=False)
            location = response.headers.get("location", "")
            query = parse_qs(urlparse(location).query)
            results.append(
                {
                    "status": response.status_code,
                    "redirect_uri": query.get("redirect_uri", [None])[0],
                    "scope": query.get("scope", [None])[0],
                    "code_challenge_method": query.get("code_challenge_method", [None])[0],
                    "authorize": location.split("?")[0],
                }
            )
        elif step["op"] == "login":
            results.append(login(flask_apps[-1], sm, remote, contract.provider, step))
        else:
            raise ValueError(step["op"])
    # Airflow logs to stdout: the result goes to a file of its own.
    Path(request["out"]).write_text(
        json.dumps({"provider": contract.provider, "config_file": str(config_file), "results": results})
    )


def login(flask_app: Any, sm: Any, remote: Any, provider: str, step: dict[str, Any]) -> dict[str, Any]:
    calls: list[str] = []

    def userinfo(**kwargs: Any) -> dict[str, Any]:
        calls.append("userinfo")
        if step.get("userinfo") is None:
            raise AssertionError("the userinfo endpoint was not expected to be called")
        return dict(step["userinfo"])

    remote.userinfo = userinfo
    with flask_app.test_request_context("/auth/oauth-authorized/" + provider):
        info = sm.get_oauth_user_info(provider, {"access_token": "at", "userinfo": step["claims"]})
        user = sm.auth_user_oauth(info) if info else None
        username = info.get("username") if info else None
        stored = sm.find_user(username=username) if username else None
        return {
            "info": info,
            "logged_in": user is not None,
            "userinfo_calls": calls,
            "user": None
            if stored is None
            else {
                "username": stored.username,
                "email": stored.email,
                "first_name": stored.first_name,
                "last_name": stored.last_name,
                "roles": sorted(role.name for role in stored.roles),
            },
            "user_count": len(sm.get_all_users()),
        }


if __name__ == "__main__":
    main()
