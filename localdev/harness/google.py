"""Google stand-ins for `idp.kind: google`: the provider at Google's issuer, Cloud Identity, the metadata server.

- `GoogleOidcProvider`: the stand-in OpenID provider (server.js) as Google behaves for a Workspace
  user: `hd` and a verified `email` in every ID token, no groups claim at all;
- `CloudIdentityStandIn`: one loopback HTTP server answering what the api-server asks at login,
  (1) the GCE metadata server as google-auth's application default credentials use it on GKE with
  Workload Identity (the `Metadata-Flavor: Google` ping, the service account, its access token) and
  (2) the Cloud Identity Groups API's `groups.memberships.searchTransitiveGroups` (paged), answered
  from a membership directory the tests change while it runs (nested groups resolved, as Google does).

The api-servers reach it only through environment variables (`api_server_env`): google-auth's
GCE_METADATA_HOST / GCE_METADATA_IP and the rendered config's AIRFLOW_OIDC_CLOUD_IDENTITY_URL.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from localdev.harness.process import Service
from localdev.harness.provider import OidcProvider

ACCESS_TOKEN = "ya29.e2e-metadata-stand-in"
SEARCH_PATH = "/v1/groups/-/memberships:searchTransitiveGroups"
QUERY = re.compile(r"member_key_id == '([^']+)' && 'cloudidentity\.googleapis\.com/groups\.discussion_forum' in labels")
PAGE_SIZE = 2
"""Groups per page: small, so that paging (nextPageToken) is exercised by real logins."""


class WorkspaceDirectory:
    """Who is a direct member of which group (users and groups alike), and lookups that must fail."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._direct: dict[str, list[str]] = {}
        self._failing: dict[str, int] = {}
        self._slow: dict[str, float] = {}
        self.lookups: list[str] = []
        """Every member looked up, in order."""

    def set_member(self, member: str, groups: Sequence[str]) -> None:
        """`member` (a user or a group email) is a direct member of exactly `groups`."""
        with self._lock:
            self._direct[member.lower()] = list(groups)

    def fail_for(self, member: str, status: int | None) -> None:
        """Answer lookups for `member` with this HTTP status (None: answer normally)."""
        with self._lock:
            if status is None:
                self._failing.pop(member.lower(), None)
            else:
                self._failing[member.lower()] = status

    def delay_for(self, member: str, seconds: float | None) -> None:
        """Answer lookups for `member` only after this many seconds (None: at once)."""
        with self._lock:
            if seconds is None:
                self._slow.pop(member.lower(), None)
            else:
                self._slow[member.lower()] = seconds

    def delay(self, member: str) -> float:
        with self._lock:
            return self._slow.get(member.lower(), 0.0)

    def failure(self, member: str) -> int | None:
        with self._lock:
            return self._failing.get(member.lower())

    def transitive_groups(self, member: str) -> list[str]:
        """Every group `member` belongs to, directly or through groups (breadth first, once each)."""
        with self._lock:
            found: list[str] = []
            pending = list(self._direct.get(member.lower(), []))
            while pending:
                group = pending.pop(0)
                if group.lower() not in (known.lower() for known in found):
                    found.append(group)
                    pending.extend(self._direct.get(group.lower(), []))
            return found


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's signature
        self.server.log(f"{self.command} {self.path} -> {args[1] if len(args) > 1 else ''}")

    def _send(self, status: int, body: Any, *, content_type: str = "application/json", metadata: bool = False) -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        if metadata:
            self.send_header("Metadata-Flavor", "Google")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        url = urlparse(self.path)
        query = {key: values[0] for key, values in parse_qs(url.query).items()}
        self.server.calls.append({"path": url.path, "query": query, "authorization": self.headers.get("Authorization")})
        if url.path == "/" or url.path.startswith("/computeMetadata/"):
            self._metadata(url.path)
        elif url.path == SEARCH_PATH:
            self._search(query)
        else:
            self._send(404, {"error": {"code": 404, "status": "NOT_FOUND"}})

    def _metadata(self, path: str) -> None:
        if self.headers.get("Metadata-Flavor") != "Google":
            return self._send(403, {"error": "Missing required header: Metadata-Flavor: Google"})
        if path == "/":
            return self._send(200, {}, metadata=True)
        if path.endswith("/instance/service-accounts/default/"):
            body: dict[str, Any] = {
                "email": self.server.service_account,
                "aliases": ["default"],
                "scopes": self.server.scopes,
            }
            return self._send(200, body, metadata=True)
        if path.endswith("/instance/service-accounts/default/token"):
            body = {"access_token": ACCESS_TOKEN, "expires_in": 3599, "token_type": "Bearer"}
            return self._send(200, body, metadata=True)
        if path.endswith("/project/project-id"):
            return self._send(200, self.server.project.encode(), content_type="application/text", metadata=True)
        return self._send(404, {"error": "not found"}, metadata=True)

    def _search(self, query: Mapping[str, str]) -> None:
        if self.headers.get("Authorization") != f"Bearer {ACCESS_TOKEN}":
            return self._send(401, {"error": {"code": 401, "status": "UNAUTHENTICATED"}})
        match = QUERY.fullmatch(query.get("query", ""))
        if not match:
            return self._send(400, {"error": {"code": 400, "status": "INVALID_ARGUMENT"}})
        member = match.group(1)
        directory = self.server.directory
        directory.lookups.append(member)
        time.sleep(directory.delay(member))
        status = directory.failure(member)
        if status is not None:
            return self._send(status, {"error": {"code": status, "message": "e2e stand-in failure"}})
        groups = directory.transitive_groups(member)
        start = int(query.get("pageToken") or 0)
        body: dict[str, Any] = {
            "memberships": [
                {
                    "groupKey": {"id": group},
                    "group": f"groups/e2e{index:012d}",
                    "displayName": group.split("@")[0],
                    "labels": {"cloudidentity.googleapis.com/groups.discussion_forum": ""},
                }
                for index, group in enumerate(groups[start : start + PAGE_SIZE], start=start)
            ]
        }
        if start + PAGE_SIZE < len(groups):
            body["nextPageToken"] = str(start + PAGE_SIZE)
        return self._send(200, body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, stand_in: CloudIdentityStandIn) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.directory = stand_in.directory
        self.service_account = stand_in.service_account
        self.project = stand_in.project
        self.scopes = ["https://www.googleapis.com/auth/cloud-identity.groups.readonly"]
        self.calls = stand_in.calls
        self._log_path = stand_in.log_path
        self._log_lock = threading.Lock()

    def log(self, line: str) -> None:
        with self._log_lock, self._log_path.open("a") as log:
            log.write(line + "\n")


class CloudIdentityStandIn(Service):
    """The GCE metadata server and the Cloud Identity Groups API on one loopback port."""

    def __init__(self, log_dir: Path, *, service_account: str, project: str) -> None:
        self.log_path = log_dir / "google-stand-ins.log"
        self.directory = WorkspaceDirectory()
        self.service_account = service_account
        self.project = project
        self.calls: list[dict[str, Any]] = []
        """Every request: path, query and Authorization header (the tokens are the stand-in's own)."""
        self._server: _Server | None = None

    @property
    def address(self) -> str:
        """`127.0.0.1:<port>`."""
        if self._server is None:
            raise RuntimeError("the Google stand-ins are not running")
        return f"127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._server = _Server(self)
        threading.Thread(target=self._server.serve_forever, name="google-stand-ins", daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


class GoogleOidcProvider(OidcProvider):
    """The stand-in provider serving Google's issuer path (none), with the Cloud Identity stand-in
    beside it: a user's `groups` are their Workspace memberships, looked up by the api-server, never
    emitted in a token (give it `idp_groups` with empty `claim_values`)."""

    def __init__(self, *args: Any, service_account: str, project: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.google = CloudIdentityStandIn(self.log_dir, service_account=service_account, project=project)
        for claims in self.users.values():
            self.google.directory.set_member(claims["email"], claims.get("groups") or [])
        self._restarting = False

    @property
    def api_server_env(self) -> dict[str, str]:
        """What points the api-servers at the stand-ins (set only by the harness, never declared)."""
        return {
            "AIRFLOW_OIDC_CLOUD_IDENTITY_URL": f"http://{self.google.address}",
            "GCE_METADATA_HOST": self.google.address,
            "GCE_METADATA_IP": self.google.address,
            # No gcloud user credentials may win over the metadata server.
            "CLOUDSDK_CONFIG": str(self.log_dir / "no-gcloud-config"),
        }

    def start(self) -> None:
        if self.google._server is None:
            self.google.start()
        super().start()

    def stop(self) -> None:
        super().stop()
        if not self._restarting:
            self.google.stop()

    def restart(self, client: Any = None) -> None:
        """Only the OpenID provider restarts: the api-servers keep the stand-ins' address."""
        self._restarting = True
        try:
            super().restart(client)
        finally:
            self._restarting = False

    def set_user_claims(self, account_id: str, claims: Mapping[str, Any]) -> None:
        """The claims at the provider, and the user's memberships in the Workspace directory."""
        super().set_user_claims(account_id, claims)
        self.google.directory.set_member(claims["email"], claims.get("groups") or [])
