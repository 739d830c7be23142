"""A TLS-terminating reverse proxy (nginx) in front of the Airflow api-servers, like an ingress."""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import socket
import ssl
import textwrap
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from localdev.harness.process import (
    HarnessError,
    ManagedProcess,
    Service,
    free_port,
    port_is_free,
    run_logged,
    wait_until,
)

NGINX = "/usr/sbin/nginx"
# The proxy connects to the upstreams from this address: the backend must not see 127.0.0.1,
# which uvicorn trusts for forwarded headers by default (a real ingress is not on loopback).
UPSTREAM_BIND = "127.0.0.2"
# With TLS ended upstream: the load balancer's address as the plain-HTTP ingress sees it.
LOAD_BALANCER_BIND = "127.0.0.3"


# pin_paths for two api-servers: every sign-in starts on the first (login page, redirect to the
# provider, OAuth state saved) and finishes on the second (callback, token exchange).
SPLIT_OAUTH_FLOW = {"/auth/login/": 0, "/auth/oauth-authorized/": 1}

ACCESS_LINE = re.compile(r'^\S+ "(?P<method>\S+) (?P<target>\S+) [^"]*" (?P<status>\d+) upstream=(?P<upstream>\S+) ')


@dataclass(frozen=True)
class ProxiedRequest:
    """One line of the proxy's access log."""

    method: str
    target: str
    """Path and query string, as the browser sent them."""
    status: int
    upstream: str
    """`127.0.0.1:<port>` of the api-server that answered."""


def split_host_port(server_name: str, default_port: int = 443) -> tuple[str, int]:
    """`"localhost:8443"` -> `("localhost", 8443)`; `"airflow.example.com"` -> (that, default_port)."""
    host, sep, port = server_name.rpartition(":")
    if sep and port.isdigit():
        return host, int(port)
    return server_name, default_port


def choose_https_port(preferred: int = 443) -> int:
    """`preferred` when it can be bound (443 needs root), else a free high port."""
    if (preferred >= 1024 or os.geteuid() == 0) and port_is_free(preferred):
        return preferred
    return free_port()


class Nginx(Service):
    """nginx with its own prefix, config, pid and logs in `log_dir`, run in the foreground as a child.

    Listens on 127.0.0.1:<listen_port> with a self-signed certificate for `hostname` (SAN), and
    proxies round-robin to `upstreams` ("127.0.0.1:<port>"), forwarding Host and X-Forwarded-*.
    `pin_paths` sends requests under a path prefix to one upstream (by index), e.g.
    `{"/auth/login/": 0, "/auth/oauth-authorized/": 1}` makes every OAuth sign-in start on one
    api-server and finish on the other, instead of wherever round-robin happens to be.
    """

    def __init__(
        self,
        log_dir: Path,
        server_name: str,
        upstreams: Sequence[str],
        *,
        listen_port: int | None = None,
        pin_paths: Mapping[str, int] | None = None,
        tls_terminated_upstream: bool = False,
    ) -> None:
        if not upstreams:
            raise ValueError("at least one upstream is needed")
        for prefix, index in (pin_paths or {}).items():
            if not prefix.startswith("/") or not 0 <= index < len(upstreams):
                raise ValueError(
                    f"pin_paths: {prefix!r} -> {index} (prefixes start with '/'; {len(upstreams)} upstreams)"
                )
        self.pin_paths = dict(pin_paths or {})
        self.tls_terminated_upstream = tls_terminated_upstream
        """Two hops, as a load balancer ending TLS in front of a plain-HTTP ingress (ALB, GCLB, Front Door):
        the TLS server forwards to an HTTP-only server, which passes the load balancer's X-Forwarded-* on
        (ingress-nginx's `use-forwarded-headers: "true"`) and is the only one that reaches the api-servers."""
        self.ingress_port = free_port() if tls_terminated_upstream else None
        self.lb_access_log = log_dir / "lb-access.log"
        self.log_dir = log_dir
        self.hostname, port_in_name = split_host_port(server_name)
        self.listen_port = listen_port or port_in_name
        self.upstreams = list(upstreams)
        self.conf_path = log_dir / "nginx.conf"
        self.cert_path = log_dir / "tls.crt"
        self.key_path = log_dir / "tls.key"
        self.error_log = log_dir / "error.log"
        self.access_log = log_dir / "access.log"
        self.log_path = log_dir / "nginx.log"
        self._process: ManagedProcess | None = None

    @property
    def base_url(self) -> str:
        """The public URL: `https://<hostname>` (with `:<port>` unless 443)."""
        port = "" if self.listen_port == 443 else f":{self.listen_port}"
        return f"https://{self.hostname}{port}"

    def start(self) -> None:
        """Make the certificate and config, start nginx, wait until it accepts TLS."""
        if not Path(NGINX).exists():
            raise HarnessError(f"{NGINX} not found: apt-get install nginx-light")
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for temp in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (self.log_dir / "temp" / temp).mkdir(parents=True, exist_ok=True)
        self._make_certificate()
        self.conf_path.write_text(self._config())
        run_logged(
            [NGINX, "-t", "-p", str(self.log_dir), "-c", str(self.conf_path)],
            self.log_path,
            what="nginx -t",
            timeout=30,
        )
        self._process = ManagedProcess(
            "nginx", [NGINX, "-p", str(self.log_dir), "-c", str(self.conf_path)], self.log_path, stop_timeout=5
        )
        self._process.start()
        wait_until(self._tls_handshake, timeout=15, what="nginx", log_path=self.error_log, alive=self._process.alive)

    def stop(self) -> None:
        """Stop nginx (master and workers: one process group)."""
        if self._process is not None:
            self._process.stop()
            self._process = None

    def requests(self) -> list[ProxiedRequest]:
        """Every proxied request so far, from the access log."""
        if not self.access_log.exists():
            return []
        matches = (ACCESS_LINE.match(line) for line in self.access_log.read_text(errors="replace").splitlines())
        return [
            ProxiedRequest(match["method"], match["target"], int(match["status"]), match["upstream"])
            for match in matches
            if match
        ]

    def upstream_hits(self) -> Counter[str]:
        """How many proxied requests each upstream answered."""
        return Counter(request.upstream for request in self.requests())

    def _make_certificate(self) -> None:
        try:
            ipaddress.ip_address(self.hostname)
            san = f"IP:{self.hostname}"
        except ValueError:
            san = f"DNS:{self.hostname}"
        openssl = shutil.which("openssl")
        if openssl is None:
            raise HarnessError("openssl not found: apt-get install openssl")
        run_logged(
            [
                openssl,
                "req",
                "-x509",
                "-nodes",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-days",
                "2",
                "-subj",
                f"/CN={self.hostname}",
                "-addext",
                f"subjectAltName={san}",
                "-keyout",
                str(self.key_path),
                "-out",
                str(self.cert_path),
            ],
            self.log_path,
            what="openssl req",
            timeout=30,
        )

    def _config(self) -> str:
        # Inserted lines carry the template's indentation (placeholders sit at column 0 for dedent).
        # max_fails=0: a connection refused while an api-server restarts must not make nginx
        # shun it (and answer 502 "no live upstreams") for the next 10 s once it is back.
        servers = "\n".join(f"{' ' * 20}server {upstream} max_fails=0;" for upstream in self.upstreams)
        pinned = "\n".join(
            f"{' ' * 20}location ^~ {prefix} {{ proxy_pass http://{self.upstreams[index]}; }}"
            for prefix, index in self.pin_paths.items()
        )
        # Where TLS ends and what the hop to the api-servers forwards: the browser's scheme here, or
        # (behind a load balancer) the X-Forwarded-* the load balancer sent.
        if self.tls_terminated_upstream:
            forwarded = ("$http_x_forwarded_host", "$http_x_forwarded_proto", "$http_x_forwarded_port")
            front = textwrap.indent(self._load_balancer(), " " * 16)
            listen = f"listen 127.0.0.1:{self.ingress_port};  # the ingress: plain HTTP, no certificate"
            certificate = ""
        else:
            forwarded = ("$http_host", "$scheme", "$server_port")
            front = ""
            listen = f"listen 127.0.0.1:{self.listen_port} ssl http2;"
            certificate = f"ssl_certificate {self.cert_path};\n{' ' * 20}ssl_certificate_key {self.key_path};"
        return textwrap.dedent(
            f"""\
            # Generated by localdev/harness/nginx.py
            daemon off;
            master_process on;
            worker_processes 1;
            pid {self.log_dir}/nginx.pid;
            error_log {self.error_log} info;

            events {{
                worker_connections 256;
            }}

            http {{
                client_body_temp_path {self.log_dir}/temp/client_body;
                proxy_temp_path {self.log_dir}/temp/proxy;
                fastcgi_temp_path {self.log_dir}/temp/fastcgi;
                uwsgi_temp_path {self.log_dir}/temp/uwsgi;
                scgi_temp_path {self.log_dir}/temp/scgi;

                log_format upstreams '$remote_addr "$request" $status upstream=$upstream_addr '
                                     'host=$http_host rt=$request_time';  # parsed by ACCESS_LINE
                access_log {self.access_log} upstreams;

                # Round-robin (nginx's default). No upstream keepalive: every request picks anew,
                # so one login's redirects and API calls land on both api-servers.
                upstream airflow {{
{servers}
                }}

{front}
                server {{
                    # HTTP/2 as ingress-nginx serves it (and one connection for the ~30 login-page assets).
                    {listen}
                    server_name {self.hostname};
                    {certificate}
                    client_max_body_size 10m;

                    # What ingress-nginx sends: the browser's Host (with its port, if any) and the
                    # X-Forwarded-* set Airflow's ProxyFix reads. Inherited by every location.
                    proxy_bind {UPSTREAM_BIND};
                    proxy_set_header Host $http_host;
                    proxy_set_header X-Forwarded-Host {forwarded[0]};
                    proxy_set_header X-Forwarded-Proto {forwarded[1]};
                    proxy_set_header X-Forwarded-Port {forwarded[2]};
                    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
                    proxy_set_header X-Real-IP $remote_addr;
                    proxy_read_timeout 120s;
                    proxy_buffer_size 16k;
                    proxy_buffers 8 16k;
{pinned}
                    location / {{
                        proxy_pass http://airflow;
                    }}
                }}
            }}
            """
        )

    def _load_balancer(self) -> str:
        """The server block of a load balancer that ends TLS and forwards plain HTTP to the ingress."""
        return textwrap.dedent(
            f"""\
            server {{
                # The load balancer: TLS ends here; the ingress behind it gets plain HTTP.
                listen 127.0.0.1:{self.listen_port} ssl http2;
                server_name {self.hostname};
                ssl_certificate {self.cert_path};
                ssl_certificate_key {self.key_path};
                client_max_body_size 10m;
                access_log {self.lb_access_log} upstreams;
                proxy_bind {LOAD_BALANCER_BIND};
                proxy_set_header Host $http_host;
                proxy_set_header X-Forwarded-Host $http_host;
                proxy_set_header X-Forwarded-Proto $scheme;
                proxy_set_header X-Forwarded-Port $server_port;
                proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
                proxy_read_timeout 120s;
                proxy_buffer_size 16k;
                proxy_buffers 8 16k;
                location / {{
                    proxy_pass http://127.0.0.1:{self.ingress_port};
                }}
            }}
            """
        )

    def load_balancer_requests(self) -> list[ProxiedRequest]:
        """With TLS ended upstream: every request the load balancer forwarded to the ingress."""
        if not self.lb_access_log.exists():
            return []
        matches = (ACCESS_LINE.match(line) for line in self.lb_access_log.read_text(errors="replace").splitlines())
        return [
            ProxiedRequest(match["method"], match["target"], int(match["status"]), match["upstream"])
            for match in matches
            if match
        ]

    def _tls_handshake(self) -> bool:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        with (
            socket.create_connection(("127.0.0.1", self.listen_port), timeout=2) as sock,
            context.wrap_socket(sock, server_hostname=self.hostname),
        ):
            return True
