"""Check group: the client at the IdP (its redirect URI registered, its secret accepted), asked without
signing anybody in."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from urllib.parse import parse_qsl, urlencode, urlsplit

from components.contract import CLIENT_SECRET_ENV
from components.doctor.http_client import unreachable
from components.doctor.report import CANNOT, FAIL, PASS
from components.doctor.state import DoctorState, spec_key

# Errors an IdP sends back to the redirect URI when it accepted the client and the redirect URI
# but needs the user (no sign-in is attempted): proof the redirect URI is registered.
NEEDS_A_USER = frozenset({"login_required", "interaction_required", "consent_required", "account_selection_required"})
# How IdPs word "this redirect URI is not registered" (oidc-provider, generic OAuth, Google, Keycloak,
# Okta, Entra ID); only read on error pages, where they name the refusal.
REDIRECT_REFUSED = re.compile(
    r"invalid_redirect_uri|redirect_uri_mismatch|invalid redirect[ _]uri|Invalid parameter: redirect_uri"
    r"|must be a Login redirect URI|AADSTS50011|AADSTS900971",
    re.IGNORECASE,
)
CLIENT_REFUSED = re.compile(
    r"invalid_client|unauthorized_client|Client not found|Invalid parameter: client_id|AADSTS700016", re.IGNORECASE
)
MAX_HOPS = 6


class ClientChecks(DoctorState):
    """This stack's client as the IdP knows it."""

    def check_redirect_uri_accepted(self) -> None:
        name = "redirect uri accepted"
        if not self._needs_discovery(name):
            return
        endpoint = self.discovery.get("authorization_endpoint")  # type: ignore[union-attr]
        if not endpoint:
            self.add(name, CANNOT, "discovery names no authorization_endpoint")
            return
        if not self.client_id:
            self.add(name, CANNOT, "the client id is unknown: give --client-id (or let the doctor reach Airflow)")
            return
        (redirect_uri,) = self.contract.redirect_uris[:1]
        verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        query = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": redirect_uri,
            "scope": " ".join(self.contract.scopes),
            "state": secrets.token_urlsafe(16),
            "nonce": secrets.token_urlsafe(16),
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
        get = self.http.session()
        url = f"{endpoint}{'&' if '?' in str(endpoint) else '?'}{urlencode(query)}"
        register = (
            f"register {redirect_uri} as a redirect URI of client {self.client_id!r} at the IdP (it follows from "
            "`hostname`; a kind the program manages registers it at `pulumi up`, `oidc` is registered by hand)"
        )
        try:
            for _ in range(MAX_HOPS):
                response = get(url)
                self.idp_responses.append(response)
                location = response.location()
                if location and location.startswith(redirect_uri):
                    error = dict(parse_qsl(urlsplit(location).query)).get("error")
                    if error is None or error in NEEDS_A_USER:
                        self.add(name, PASS, f"the IdP sends the browser back to {redirect_uri} (without a sign-in)")
                    else:
                        scopes = spec_key(self.spec, "scopes", "the kind's scopes")
                        self.add(
                            name,
                            FAIL,
                            f"the IdP accepted {redirect_uri} but answered error={error}",
                            f"{error}: check the client's grant types, PKCE and {scopes} at the IdP",
                        )
                    return
                if location and 300 <= response.status < 400:
                    url = location
                    continue
                break
        except (OSError, ValueError) as error:
            self.add(name, CANNOT, f"the authorization endpoint is unreachable ({unreachable(error)})")
            return
        page = response.text()
        if REDIRECT_REFUSED.search(page) and (response.status >= 400 or "AADSTS" in page or "_redirect_uri" in page):
            marker = REDIRECT_REFUSED.search(page).group(0)  # type: ignore[union-attr]
            self.add(name, FAIL, f"the IdP refuses {redirect_uri} (HTTP {response.status}, {marker!r})", register)
        elif response.status >= 400 and CLIENT_REFUSED.search(page):
            marker = CLIENT_REFUSED.search(page).group(0)  # type: ignore[union-attr]
            key = spec_key(self.spec, "clientId", "the client the program registers (run `pulumi up`)")
            self.add(name, FAIL, f"the IdP does not know client {self.client_id!r} ({marker!r})", f"check {key}")
        elif response.status == 200:
            self.add(name, PASS, f"the IdP shows its sign-in page for {redirect_uri} (nobody signed in)")
        else:
            self.add(name, FAIL, f"the authorization request ended with HTTP {response.status}", register)

    def check_client_secret(self) -> None:
        """Redeem a made-up code with the client's credentials: an IdP authenticates the client before it
        looks at the code, so `invalid_grant` means the secret is right and `invalid_client` that it is not."""
        name = "client secret"
        if not self._needs_discovery(name):
            return
        endpoint = self.discovery.get("token_endpoint")  # type: ignore[union-attr]
        if not endpoint or not self.client_id:
            self.add(name, CANNOT, "no token endpoint or no client id")
            return
        if not self.target.client_secret:
            self.add(
                name,
                CANNOT,
                f"no client secret given: run the doctor where ${CLIENT_SECRET_ENV} is set (the api-server pod), "
                "or give --client-secret-file",
            )
            return
        form = {
            "grant_type": "authorization_code",
            "code": "airflow-oidc-doctor-" + secrets.token_urlsafe(16),
            "redirect_uri": self.contract.redirect_uris[0],
            "code_verifier": secrets.token_urlsafe(48),
        }
        try:
            response = self.http.post_form(str(endpoint), form, basic_auth=(self.client_id, self.target.client_secret))
            error = str(response.json().get("error", ""))
        except (OSError, ValueError, AttributeError) as problem:
            self.add(name, CANNOT, f"the token endpoint gave no OAuth error ({type(problem).__name__})")
            return
        if error in ("invalid_client", "unauthorized_client"):
            key = spec_key(self.spec, "clientSecret", "the client secret the program registers")
            self.add(
                name,
                FAIL,
                f"the IdP refuses client {self.client_id!r}'s credentials ({error}, HTTP {response.status}): "
                "the sign-in fails at the token exchange",
                f"the secret the api-server holds and the IdP's differ: set {key} to the IdP's secret (or register "
                "the program's), `pulumi up`, and let the api-server pods roll",
            )
        elif error == "invalid_grant":
            self.add(name, PASS, "the IdP accepts the client's credentials (it refused only the made-up code)")
        else:
            self.add(name, CANNOT, f"the token endpoint answered HTTP {response.status} error={error or '(none)'}")
