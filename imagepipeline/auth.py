"""The credential the client presents: a function key, or an Entra ID token (``azure-identity``).

Both become request headers through a callable, so a token is fetched when first needed and renewed
before it expires. Neither value is ever printed: errors name the option, not its value.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from imagepipeline.api import KEY_HEADER, ApiError, UsageError

RENEW_BEFORE_SECONDS = 300


def key_auth(key: str) -> Callable[[], dict[str, str]]:
    if not key.strip() or any(c in key for c in "\r\n"):
        raise UsageError("The function key (--key / IMAGEPIPELINE_KEY) is empty or holds a line break.")
    return lambda: {KEY_HEADER: key}


class EntraAuth:
    """``Authorization: Bearer`` from ``DefaultAzureCredential`` for ``scope`` (e.g. ``api://<app id>/.default``)."""

    def __init__(self, scope: str, credential: Any = None) -> None:
        self.scope = scope
        self.credential = credential
        self.token: str | None = None
        self.expires_on = 0.0

    def __call__(self) -> dict[str, str]:
        if self.token is None or self.expires_on - RENEW_BEFORE_SECONDS < time.time():
            if self.credential is None:
                try:
                    from azure.identity import DefaultAzureCredential
                except ImportError:
                    raise UsageError(
                        "--entra-scope needs azure-identity: pip install azure-identity"
                    ) from None
                self.credential = DefaultAzureCredential()
            try:
                got = self.credential.get_token(self.scope)
            except Exception as exc:  # every credential in the chain failed: say which scope, not a token
                raise ApiError(f"No Entra ID token for {self.scope}: {type(exc).__name__}: {exc}") from None
            self.token, self.expires_on = str(got.token), float(got.expires_on)
        return {"Authorization": f"Bearer {self.token}"}


def auth_from(key: str | None, entra_scope: str | None) -> Callable[[], dict[str, str]] | None:
    if key and entra_scope:
        raise UsageError("Give either a function key (--key / IMAGEPIPELINE_KEY) or --entra-scope, not both.")
    if key:
        return key_auth(key)
    if entra_scope:
        return EntraAuth(entra_scope)
    return None
