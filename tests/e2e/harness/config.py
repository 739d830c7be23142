"""Small helpers to prepare webserver_config.py text and Airflow secrets for a test stack."""

from __future__ import annotations

import base64
import re
import secrets
from typing import Any


def render_constants(text: str, **constants: Any) -> str:
    """Replace top-level `NAME = ...` lines (single-line assignments) with `NAME = repr(value)`.

    Raises KeyError when a constant is not assigned at the top level of `text`.
    """
    for name, value in constants.items():
        pattern = re.compile(rf"^{re.escape(name)}(\s*:\s*[^=]+)?\s*=.*$", re.MULTILINE)
        if not pattern.search(text):
            raise KeyError(f"no top-level assignment of {name} in the config text")
        text = pattern.sub(lambda match, name=name, value=value: f"{name}{match.group(1) or ''} = {value!r}", text, count=1)
    return text


def shared_secrets() -> dict[str, str]:
    """Fresh `[api] secret_key`, `[api_auth] jwt_secret` and Fernet key, as Airflow env vars."""
    return {
        "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
        # 32 url-safe base64-encoded bytes: Airflow refuses anything else.
        "AIRFLOW__CORE__FERNET_KEY": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
    }
