"""Check group: the IdP's discovery document and its signing keys (issuer, endpoints, response type,
signing algorithm, scopes, JWKS)."""

from __future__ import annotations

from components.doctor.http_client import unreachable
from components.doctor.report import CANNOT, FAIL, PASS
from components.doctor.state import DoctorState, spec_key

DISCOVERY_PATH = "/.well-known/openid-configuration"
REQUIRED_ENDPOINTS = ("authorization_endpoint", "token_endpoint", "userinfo_endpoint", "jwks_uri")
# Algorithms whose key the relying party gets from the JWKS (not `none`, not a shared HMAC secret).
ASYMMETRIC_KTY = {"RS": "RSA", "PS": "RSA", "ES": "EC", "Ed": "OKP"}


class DiscoveryChecks(DoctorState):
    """The IdP as it describes itself: discovery, then the keys it publishes."""

    @property
    def discovery_url(self) -> str:
        return self.target.issuer_url.rstrip("/") + DISCOVERY_PATH

    def check_discovery(self) -> None:
        where = self.discovery_url
        fix = f"{self.issuer_keys()} must name the provider's issuer; this machine must reach {where}"
        try:
            response = self.http.session()(where)
        except (OSError, ValueError) as error:
            self.add("discovery", FAIL, f"{where} unreachable ({unreachable(error)})", fix)
            return
        if response.status != 200:
            self.add("discovery", FAIL, f"{where} answered HTTP {response.status}", fix)
            return
        try:
            document = response.json()
        except ValueError:
            document = None
        if not isinstance(document, dict):
            self.add("discovery", FAIL, f"{where} is not a JSON object (not an OpenID provider's discovery)", fix)
            return
        self.discovery = document
        self.idp_responses.append(response)
        self.add("discovery", PASS, f"{where} answered")

    def check_issuer(self) -> None:
        if not self._needs_discovery("issuer"):
            return
        advertised, declared = self.discovery.get("issuer"), self.contract.issuer  # type: ignore[union-attr]
        if advertised == declared:
            self.add("issuer", PASS, f"discovery's issuer is {declared!r}, as declared")
            return
        hint = " (they differ only by a trailing slash)" if str(advertised).rstrip("/") == declared.rstrip("/") else ""
        self.add(
            "issuer",
            FAIL,
            f"discovery's issuer is {advertised!r}, the stack declares {declared!r}{hint}: tokens carry the "
            "provider's, so the two must agree byte for byte",
            f"change {self.issuer_keys()} so the issuer is exactly {advertised!r}",
        )

    def check_endpoints(self) -> None:
        if not self._needs_discovery("endpoints"):
            return
        missing = [name for name in REQUIRED_ENDPOINTS if not self.discovery.get(name)]  # type: ignore[union-attr]
        logout = "ends the IdP session too" if self.discovery.get("end_session_endpoint") else "ends Airflow's only"  # type: ignore[union-attr]
        if missing:
            self.add(
                "endpoints",
                FAIL,
                f"discovery lacks {', '.join(missing)}",
                f"{self.issuer_keys()} must point at the OpenID issuer itself (not an OAuth-only or parent URL)",
            )
        else:
            self.add(
                "endpoints", PASS, f"{', '.join(REQUIRED_ENDPOINTS)} present; end_session_endpoint: logout {logout}"
            )

    def check_response_type(self) -> None:
        if not self._needs_discovery("response type code"):
            return
        supported = self.discovery.get("response_types_supported") or []  # type: ignore[union-attr]
        if "code" in supported:
            self.add("response type code", PASS, "the authorization code flow is supported")
        else:
            self.add(
                "response type code",
                FAIL,
                f"response_types_supported is {supported}, without `code`",
                "enable the authorization code flow for this client at the IdP (Airflow uses nothing else)",
            )

    def check_signing_alg(self) -> str | None:
        if not self._needs_discovery("signing alg"):
            return None
        algs = [str(alg) for alg in self.discovery.get("id_token_signing_alg_values_supported") or []]  # type: ignore[union-attr]
        usable = [alg for alg in algs if alg[:2] in ASYMMETRIC_KTY]
        if not usable:
            self.add(
                "signing alg",
                FAIL,
                f"id_token_signing_alg_values_supported is {algs}: no algorithm Airflow can verify with the JWKS",
                "sign ID tokens with an asymmetric key (RS256) at the IdP",
            )
            return None
        self.add(
            "signing alg", PASS, f"ID tokens signed with {usable[0]}" + (f" (also {usable[1:]})" if usable[1:] else "")
        )
        return usable[0]

    def check_scopes(self) -> None:
        if not self._needs_discovery("scopes"):
            return
        supported = self.discovery.get("scopes_supported")  # type: ignore[union-attr]
        wanted = list(self.contract.scopes)
        if not isinstance(supported, list):
            self.add("scopes", CANNOT, f"discovery lists no scopes_supported; Airflow asks for {wanted}")
            return
        missing = [scope for scope in wanted if scope not in supported]
        if missing:
            key = spec_key(self.spec, "scopes", "the scopes the program registers (run `pulumi up`)")
            self.add(
                "scopes",
                FAIL,
                f"the provider does not support {missing} of {wanted}",
                f"remove {missing} from {key}, or create the scope at the IdP",
            )
        else:
            self.add("scopes", PASS, f"{wanted} supported")

    def check_jwks(self, alg: str | None) -> None:
        if not self._needs_discovery("jwks"):
            return
        uri = self.discovery.get("jwks_uri")  # type: ignore[union-attr]
        if not uri:
            self.add("jwks", CANNOT, "discovery names no jwks_uri")
            return
        fix = (
            f"Airflow's api-server must reach {uri} (egress, proxy, network policy); it fetches the keys at the "
            "first sign-in of each process"
        )
        try:
            response = self.http.session()(str(uri))
            self.idp_responses.append(response)
            document = response.json() if response.status == 200 else None
        except (OSError, ValueError) as error:
            self.add("jwks", FAIL, f"{uri} unreachable ({unreachable(error)})", fix)
            return
        if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
            status = response.status
            self.add("jwks", FAIL, f"{uri} answered HTTP {status}" + ("" if status != 200 else ", not a key set"), fix)
            return
        self.jwks = document
        if alg is None:
            self.add("jwks", CANNOT, f"{len(document['keys'])} keys published; no usable signing algorithm to match")
            return
        kty = ASYMMETRIC_KTY[alg[:2]]
        keys = [
            k for k in document["keys"] if isinstance(k, dict) and k.get("kty") == kty and k.get("use", "sig") == "sig"
        ]
        if keys:
            self.add("jwks", PASS, f"{len(keys)} {kty} signing key(s) for {alg} published")
        else:
            self.add(
                "jwks",
                FAIL,
                f"{uri} publishes no {kty} signing key for {alg}",
                "publish the ID token signing key at the IdP (or sign with an algorithm whose key it publishes)",
            )
