"""The doctor's one runner: every check group, in the order the report lists them."""

from __future__ import annotations

from components.doctor.airflow_request import AirflowChecks
from components.doctor.discovery import DiscoveryChecks
from components.doctor.idp_client import ClientChecks
from components.doctor.report import Check
from components.doctor.tokens import TokenChecks


class Doctor(DiscoveryChecks, ClientChecks, AirflowChecks, TokenChecks):
    """Runs the checks in order; each appends exactly one `Check`."""

    def run(self) -> list[Check]:
        self.check_discovery()
        self.check_issuer()
        self.check_endpoints()
        self.check_response_type()
        alg = self.check_signing_alg()
        self.check_scopes()
        self.check_jwks(alg)
        self.probe_airflow()  # learns the client id Airflow presents, for the IdP's redirect check
        self.check_redirect_uri_accepted()
        self.check_client_secret()
        self.check_airflow_login_page()
        self.check_airflow_authorization_request()
        self.check_session_cookie()
        self.check_clock_skew()
        self.check_token()
        self.check_nonce_support()
        return self.checks
