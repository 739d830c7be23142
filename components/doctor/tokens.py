"""Check group: ID tokens (the clocks that bound them, a pasted token's signature, issuer, audience,
expiry, claims and roles, the IdP's nonce)."""

from __future__ import annotations

from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from typing import Any

from components.airflow_values import render_webserver_config
from components.doctor.http_client import Response
from components.doctor.id_token import LEEWAY_SECONDS, Jwt, TokenError, verify_signature
from components.doctor.report import CANNOT, FAIL, PASS
from components.doctor.roles import RoleMapping
from components.doctor.state import DoctorState, spec_key


class TokenChecks(DoctorState):
    """Whether Airflow would accept an ID token from this IdP, and with which roles."""

    def check_clock_skew(self) -> None:
        name = "clock skew"
        idp = next((offset for r in self.idp_responses if (offset := _clock_offset(r)) is not None), None)
        airflow = _clock_offset(self.airflow_login)
        if idp is None:
            seen = f"{len(self.idp_responses)} answers" if self.idp_responses else "no answer"
            known = "; Keycloak sends none" if self.spec.idp.kind == "keycloak" else ""
            self.add(name, CANNOT, f"the IdP sends no Date header ({seen}{known})")
            return
        if airflow is not None:
            skew, between = idp - airflow, "the IdP's clock against Airflow's"
        else:
            skew, between = idp, "the IdP's clock against this machine's (Airflow not reached)"
        detail = f"{between}: {skew:+.0f} s; Airflow tolerates {LEEWAY_SECONDS} s (Authlib's ID token leeway)"
        if abs(skew) <= LEEWAY_SECONDS:
            self.add(name, PASS, detail)
        else:
            ahead = "ahead of" if skew > 0 else "behind"
            self.add(
                name,
                FAIL,
                detail
                + f": the IdP is {abs(skew):.0f} s {ahead} "
                + ("Airflow" if airflow is not None else "this machine"),
                "not a spec key: synchronise the clocks (NTP) of the api-server nodes and the IdP; ID tokens are "
                "refused as issued in the future or expired",
            )

    # --- a pasted ID token ---------------------------------------------------------------------------

    def check_token(self) -> None:
        if self.target.id_token is None:
            return
        try:
            self.token = Jwt.parse(self.target.id_token)
        except TokenError as error:
            self.add("token", FAIL, f"the pasted ID token cannot be decoded: {error}", "paste the `id_token` itself")
            return
        token, claims = self.token, self.token.claims
        if self.jwks is None:
            self.add("token signature", CANNOT, "the JWKS was not reached: decoded without verifying")
        else:
            status, detail = verify_signature(token, self.jwks)
            self.add(
                "token signature", status, detail, "the token was not signed by this IdP (another tenant or issuer?)"
            )

        iss = claims.get("iss")
        advertised = self.discovery.get("issuer") if self.discovery else None
        if iss == self.contract.issuer and advertised in (None, iss):
            self.add("token issuer", PASS, f"iss is {iss!r}")
        else:
            expected = advertised or self.contract.issuer
            self.add(
                "token issuer",
                FAIL,
                f"iss is {iss!r}; the stack declares {self.contract.issuer!r}"
                + (f", discovery says {advertised!r}" if advertised and advertised != self.contract.issuer else ""),
                f"a token from another issuer is refused: paste one issued by {expected!r}, "
                f"or change {self.issuer_keys()}",
            )

        raw_audience = claims.get("aud")
        audience = (
            [str(item) for item in raw_audience]
            if isinstance(raw_audience, list)
            else ([] if raw_audience is None else [str(raw_audience)])
        )
        if not self.client_id:
            self.add("token audience", CANNOT, f"aud is {audience}; the client id is unknown (give --client-id)")
        elif self.client_id in audience and (len(audience) == 1 or claims.get("azp") == self.client_id):
            self.add("token audience", PASS, f"issued to this client ({self.client_id!r})")
        else:
            key = spec_key(self.spec, "clientId", "the client the program registers")
            self.add(
                "token audience",
                FAIL,
                f"aud is {audience}"
                + (f", azp {claims.get('azp')!r}" if claims.get("azp") else "")
                + f": not this stack's client {self.client_id!r}, so Airflow refuses it",
                f"the token was issued to another application: paste one issued to {self.client_id!r}, or make {key} "
                "name the client users sign in with",
            )

        exp, now = claims.get("exp"), self.http.now()
        if not isinstance(exp, int | float):
            self.add("token expiry", FAIL, "no numeric exp claim", "the IdP must issue standard ID tokens")
        elif exp < now - LEEWAY_SECONDS:
            self.add(
                "token expiry",
                FAIL,
                f"expired {_duration(now - exp)} ago (Airflow allows {LEEWAY_SECONDS} s of leeway)",
                "not a spec key: sign in again and paste a fresh token (or sync this machine's clock)",
            )
        else:
            self.add("token expiry", PASS, f"valid for another {_duration(exp - now)}")

        wrong = {
            name: claims.get(name) for name, value in self.contract.required_claims.items() if claims.get(name) != value
        }
        missing_user = self.contract.username_claim not in claims
        if wrong:
            self.add(
                "token claims",
                FAIL,
                f"required claims differ: {wrong} (the stack requires {dict(self.contract.required_claims)})",
                "the token comes from another tenant/directory than the `idp` keys declare",
            )
        elif missing_user:
            self.add(
                "token claims",
                CANNOT,
                f"no {self.contract.username_claim!r} in the ID token: Airflow then reads it from userinfo",
            )
        else:
            self.add("token claims", PASS, f"username claim {self.contract.username_claim!r} present")

        self.check_token_roles(claims)

    def check_token_roles(self, claims: Mapping[str, Any]) -> None:
        name = "token role"
        claim = self.contract.role_claim
        source = getattr(self.contract, "role_source", "token")
        if source != "token":
            self.add(name, CANNOT, f"the roles come from {source!r} at sign-in, not from the ID token")
            return
        if claim not in claims:
            self.add(name, CANNOT, f"the ID token has no {claim!r} claim: Airflow then reads it from userinfo")
            return
        mapping = RoleMapping.from_rendered_config(render_webserver_config(self.contract))
        values, roles = mapping.claim_values(claims), mapping.roles(claims)
        user = f"{self.contract.provider}_{claims.get(self.contract.username_claim, '?')}"
        if roles:
            self.add(name, PASS, f"{claim} = {values}: {user} would sign in with {roles}")
            return
        mapped = sorted(self.contract.role_by_claim_value)
        self.add(
            name,
            FAIL,
            f"{claim} = {values}: none is mapped ({mapped}), so Airflow refuses {user}",
            "`access[].group` must equal a value the IdP emits, exactly (full paths such as '/group', object ids); "
            "or give a wider audience `defaultRole` through `signIn.everyone` / `signIn.extraGroups`",
        )

    def check_nonce_support(self) -> None:
        """Discovery has no nonce flag: `claims_supported` listing it is the only hint; a token proves it."""
        name = "idp nonce"
        if self.token is not None:
            if self.token.claims.get("nonce"):
                self.add(name, PASS, "the pasted ID token echoes a nonce")
            else:
                self.add(
                    name,
                    FAIL,
                    "the pasted ID token carries no nonce: Airflow (Authlib) refuses it (missing_claim nonce)",
                    "not a spec key: the IdP must echo the authorization request's nonce in the ID token "
                    "(a client set to another flow, or an IdP without OpenID nonce support)",
                )
            return
        if not self._needs_discovery(name):
            return
        supported = self.discovery.get("claims_supported")  # type: ignore[union-attr]
        if isinstance(supported, list) and "nonce" in supported:
            self.add(name, PASS, "discovery lists `nonce` in claims_supported")
        else:
            self.add(
                name,
                CANNOT,
                "discovery does not list `nonce` in claims_supported (Keycloak and Google omit it and still echo "
                "it): paste a token with --id-token to check",
            )


def _clock_offset(response: Response | None) -> float | None:
    """The server's clock minus this machine's, from its Date header (1 s resolution)."""
    if response is None or not response.header("Date"):
        return None
    try:
        server = parsedate_to_datetime(str(response.header("Date"))).timestamp()
    except (TypeError, ValueError):
        return None
    return server - response.received_at


def _duration(seconds: float) -> str:
    seconds = abs(int(seconds))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h"
