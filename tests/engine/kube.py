"""A Kubernetes API for the engine tier: kube-apiserver (etcd embedded) and kube-controller-manager, no nodes.

Built by `make engine` (tools/kube). Everything listens on loopback on free ports; the data lives in the run
directory. The controller-manager runs the garbage collector (without it every delete of an object with
foreground-deletion finalizers waits ten minutes), the namespace controller (a deleted namespace is emptied and
goes away) and the serviceaccount controller (each namespace gets its `default` account). No kubelet: pods
never start, so a Helm release must not wait for workloads here (`airflow.wait: false`).
"""

from __future__ import annotations

import base64
import secrets
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import requests
import yaml

from localdev.harness.process import HarnessError, ManagedProcess, Service, free_port, wait_until
from tools.engine import Engine

CLUSTER = "engine-tier"
CONTROLLERS = "garbage-collector-controller,namespace-controller,serviceaccount-controller"


class KubeApi(Service):
    """One kube-apiserver + kube-controller-manager; `kubeconfig` names `contexts` (all this API), the first
    current (stack files name theirs, e.g. `kubernetes:context: prod-cluster`)."""

    def __init__(self, run_dir: Path, engine: Engine, contexts: Iterable[str] = ()) -> None:
        self.dir = run_dir
        self.engine = engine
        self.contexts = [CLUSTER, *(name for name in contexts if name != CLUSTER)]
        self.port = free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        self.token = secrets.token_urlsafe(32)
        self.kubeconfig = run_dir / "kubeconfig"
        self.apiserver_log = run_dir / "kube-apiserver.log"
        self.controller_log = run_dir / "kube-controller-manager.log"
        self._processes: list[ManagedProcess] = []
        self.session = requests.Session()
        self.session.trust_env = False  # no CA bundle or proxy from the environment: loopback, our own CA
        self.session.headers["Authorization"] = f"Bearer {self.token}"
        self.ca_file = run_dir / "certs" / "apiserver.crt"
        """The apiserver's self-signed certificate and its CA (written at its first start)."""

    def start(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        key, pub = self.dir / "sa.key", self.dir / "sa.pub"
        subprocess.run(["openssl", "genrsa", "-out", str(key), "2048"], check=True, capture_output=True)
        subprocess.run(
            ["openssl", "rsa", "-in", str(key), "-pubout", "-out", str(pub)], check=True, capture_output=True
        )
        (self.dir / "tokens.csv").write_text(f"{self.token},engine-tier-admin,engine-tier-admin,system:masters\n")
        etcd_client, etcd_peer = free_port(), free_port()
        apiserver = ManagedProcess(
            "kube-apiserver",
            [
                str(self.engine.kube_apiserver),
                f"--etcd-servers=http://127.0.0.1:{etcd_client}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={self.port}",
                f"--cert-dir={self.dir / 'certs'}",
                f"--token-auth-file={self.dir / 'tokens.csv'}",
                "--authorization-mode=AlwaysAllow",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={pub}",
                f"--service-account-signing-key-file={key}",
                "--service-cluster-ip-range=10.96.0.0/24",
            ],
            self.apiserver_log,
            env={
                "PATH": "/usr/bin:/bin",
                "EMBEDDED_ETCD_DIR": str(self.dir / "etcd"),
                "EMBEDDED_ETCD_CLIENT_URL": f"http://127.0.0.1:{etcd_client}",
                "EMBEDDED_ETCD_PEER_URL": f"http://127.0.0.1:{etcd_peer}",
            },
        )
        self._processes.append(apiserver)
        apiserver.start()
        wait_until(self.ca_file.is_file, timeout=60, what="kube-apiserver's certificate", log_path=self.apiserver_log)
        self.session.verify = str(self.ca_file)
        wait_until(
            lambda: self.session.get(f"{self.url}/readyz", timeout=5).status_code == 200,
            timeout=180,
            what="kube-apiserver",
            log_path=self.apiserver_log,
            alive=apiserver.alive,
            interval=0.5,
        )
        self.write_kubeconfig()
        manager = ManagedProcess(
            "kube-controller-manager",
            [
                str(self.engine.kube_controller_manager),
                f"--kubeconfig={self.kubeconfig}",
                f"--controllers={CONTROLLERS}",
                "--secure-port=0",
                "--leader-elect=false",
            ],
            self.controller_log,
            env={"PATH": "/usr/bin:/bin"},
        )
        self._processes.append(manager)
        manager.start()
        # The serviceaccount controller gives `default` its account once it runs.
        wait_until(
            lambda: self.exists("/api/v1/namespaces/default/serviceaccounts/default"),
            timeout=180,
            what="kube-controller-manager",
            log_path=self.controller_log,
            alive=manager.alive,
            interval=0.5,
        )

    def stop(self) -> None:
        for process in reversed(self._processes):
            process.stop()
        self._processes.clear()

    def write_kubeconfig(self) -> None:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {"name": CLUSTER, "cluster": {"server": self.url, "certificate-authority": str(self.ca_file)}}
            ],
            "users": [{"name": CLUSTER, "user": {"token": self.token}}],
            "contexts": [{"name": name, "context": {"cluster": CLUSTER, "user": CLUSTER}} for name in self.contexts],
            "current-context": CLUSTER,
        }
        self.kubeconfig.write_text(yaml.safe_dump(config))
        self.kubeconfig.chmod(0o600)

    # --- reading and writing objects ------------------------------------------------------------------

    def get(self, path: str) -> dict[str, Any]:
        response = self.session.get(self.url + path, timeout=30)
        if response.status_code != 200:
            raise HarnessError(f"GET {path}: {response.status_code} {response.text[:300]}")
        return dict(response.json())

    def exists(self, path: str) -> bool:
        return self.session.get(self.url + path, timeout=30).status_code == 200

    def names(self, path: str) -> list[str]:
        """The names of the objects a list path returns (`/api/v1/namespaces/x/secrets`)."""
        return sorted(item["metadata"]["name"] for item in self.get(path)["items"])

    def secret_data(self, namespace: str, name: str) -> dict[str, str]:
        data = self.get(f"/api/v1/namespaces/{namespace}/secrets/{name}").get("data") or {}
        return {key: base64.b64decode(value).decode() for key, value in data.items()}

    def config_map_data(self, namespace: str, name: str) -> dict[str, str]:
        return dict(self.get(f"/api/v1/namespaces/{namespace}/configmaps/{name}").get("data") or {})

    def create_secret(self, namespace: str, name: str, data: dict[str, str]) -> None:
        body = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "stringData": data}
        response = self.session.post(f"{self.url}/api/v1/namespaces/{namespace}/secrets", json=body, timeout=30)
        if response.status_code != 201:
            raise HarnessError(f"creating Secret {namespace}/{name}: {response.status_code} {response.text[:300]}")
