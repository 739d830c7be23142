"""ID tokens (JWTs): decoded here to report on any token; signatures verified with PyJWT."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from components.doctor.report import CANNOT, FAIL, PASS

LEEWAY_SECONDS = 120
"""Clock skew Airflow tolerates on an ID token: Authlib's `parse_id_token(..., leeway=120)` (Authlib 1.9),
which FAB's OAuth login calls; `iat` more than this in the future, or `exp` this far past, is refused."""


class TokenError(ValueError):
    """The pasted text is not a JWT."""


def _b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class Jwt:
    header: dict[str, Any]
    claims: dict[str, Any]
    signing_input: bytes = field(repr=False)
    signature: bytes = field(repr=False)

    @classmethod
    def parse(cls, text: str) -> Jwt:
        """A compact JWS; also accepted: a pasted token response (JSON with `id_token`)."""
        text = text.strip()
        if text.startswith("{"):
            try:
                text = str(json.loads(text)["id_token"]).strip()
            except (ValueError, KeyError, TypeError):
                raise TokenError("JSON without an `id_token` string") from None
        parts = text.split(".")
        if len(parts) != 3:
            raise TokenError(f"not a signed JWT ({len(parts)} dot-separated parts, expected 3)")
        try:
            header, claims = json.loads(_b64url(parts[0])), json.loads(_b64url(parts[1]))
            signature = _b64url(parts[2])
        except ValueError:
            raise TokenError("its header or payload is not base64url JSON") from None
        if not isinstance(header, dict) or not isinstance(claims, dict):
            raise TokenError("its header or payload is not a JSON object")
        return cls(header, claims, f"{parts[0]}.{parts[1]}".encode("ascii"), signature)


def verify_signature(token: Jwt, jwks: Mapping[str, Any]) -> tuple[str, str]:
    """(status, detail) of the token's signature against the provider's published keys."""
    alg, kid = str(token.header.get("alg")), token.header.get("kid")
    if alg == "none" or alg.startswith("HS"):
        return FAIL, f"signed with {alg!r}: Airflow verifies ID tokens with the provider's published keys only"
    keys = [key for key in jwks.get("keys", []) if isinstance(key, dict) and key.get("use", "sig") == "sig"]
    matching = [key for key in keys if kid is None or key.get("kid") == kid]
    if not matching:
        return FAIL, f"no published key has kid {kid!r} ({len(keys)} signing keys published)"
    import jwt  # PyJWT, as Airflow ships it: the same verification the api-server's libraries do

    if alg not in jwt.algorithms.get_default_algorithms():
        return CANNOT, f"{alg} signatures are not verified by the doctor (PyJWT knows no such algorithm)"
    for key in matching:
        try:
            public = jwt.PyJWK(dict(key), algorithm=alg)
        except (jwt.PyJWKError, jwt.InvalidKeyError):
            continue  # a key of another type or curve: not the one that signed
        if public.Algorithm.verify(token.signing_input, public.key, token.signature):
            return PASS, f"{alg} signature verified with the published key {kid!r}"
    return FAIL, f"the {alg} signature does not verify with the published key {kid!r}"
