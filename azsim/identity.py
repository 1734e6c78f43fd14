"""Managed identity for the local cloud: the App Service / Functions token endpoint and token checks.

Azure Functions gives an app its managed identity through two settings, ``IDENTITY_ENDPOINT`` and
``IDENTITY_HEADER``; ``DefaultAzureCredential`` (via MSAL's managed-identity client) then sends
``GET {IDENTITY_ENDPOINT}?api-version=2019-08-01&resource=<resource>[&client_id=|object_id=|mi_res_id=]``
with ``X-IDENTITY-HEADER: <secret>`` and expects ``{"access_token", "expires_on", "resource",
"token_type"}``. This module serves that endpoint (plain http on 127.0.0.1, as on App Service) and
mints JWTs shaped like Entra ID v1 access tokens (``aud``, ``iss``, ``tid``, ``oid``, ``appid``,
``iat``/``nbf``/``exp``) for a principal of the world. Tokens are HMAC-signed with a per-run key:
Azurite (``--oauth basic``) ignores signatures but checks issuer, audience and lifetime;
:class:`JwtTokenVerifier` checks all of them for the ARM simulator.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from azsim.interfaces import InvalidToken, Principal

log = logging.getLogger("azsim.identity")

ARM_AUDIENCE = "https://management.azure.com"
STORAGE_AUDIENCE = "https://storage.azure.com"
# Resources Entra ID issues tokens for, normalised (no trailing slash) to the audience we check.
_AUDIENCE_ALIASES = {
    "https://management.azure.com": ARM_AUDIENCE,
    "https://management.core.windows.net": ARM_AUDIENCE,
    "https://storage.azure.com": STORAGE_AUDIENCE,
}
TOKEN_LIFETIME_SECONDS = 24 * 3600  # managed-identity tokens live about a day
_CLOCK_SKEW_SECONDS = 300  # Entra ID validators allow five minutes of skew
MSI_PATH = "/msi/token"


def issuer_for(tenant_id: str) -> str:
    return f"https://sts.windows.net/{tenant_id}/"


def normalise_audience(resource: str) -> str | None:
    """The audience a token for ``resource`` carries, or None if Entra ID would not know the resource."""
    trimmed = resource.strip().rstrip("/")
    if trimmed.endswith("/.default"):
        trimmed = trimmed[: -len("/.default")]
    if trimmed in _AUDIENCE_ALIASES:
        return _AUDIENCE_ALIASES[trimmed]
    host = urlsplit(trimmed).hostname or ""
    if trimmed.startswith("https://") and host.endswith(".blob.core.windows.net"):
        return STORAGE_AUDIENCE
    return None


@dataclass(frozen=True)
class Identity:
    """A managed identity the endpoint can issue tokens for."""

    object_id: str
    client_id: str
    resource_id: str | None = None
    name: str = ""


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenIssuer:
    """Mints JWT access tokens for the world's identities in one tenant."""

    def __init__(
        self,
        tenant_id: str,
        identities: Iterable[Identity],
        default: Identity,
        *,
        signing_key: bytes | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.tenant_id = tenant_id
        self.identities = list(identities)
        if default not in self.identities:
            self.identities.append(default)
        self.default = default
        self.signing_key = signing_key or secrets.token_bytes(32)
        self._clock = clock

    def find(self, *, client_id: str = "", object_id: str = "", resource_id: str = "") -> Identity | None:
        """The identity a token request selects (no selector = the default identity)."""
        if not (client_id or object_id or resource_id):
            return self.default
        for ident in self.identities:
            if client_id and ident.client_id.lower() == client_id.lower():
                return ident
            if object_id and ident.object_id.lower() == object_id.lower():
                return ident
            if resource_id and ident.resource_id and ident.resource_id.lower() == resource_id.lower():
                return ident
        return None

    def mint(self, identity: Identity, resource: str, *, lifetime: int = TOKEN_LIFETIME_SECONDS) -> str:
        """A signed JWT for ``identity`` with ``aud`` = ``resource`` (as requested, like Entra v1)."""
        now = int(self._clock())
        claims: dict[str, Any] = {
            "aud": resource,
            "iss": issuer_for(self.tenant_id),
            "iat": now,
            "nbf": now,
            "exp": now + lifetime,
            "tid": self.tenant_id,
            "oid": identity.object_id,
            "sub": identity.object_id,
            "appid": identity.client_id,
            "appidacr": "2",
            "idtyp": "app",
            "uti": _b64url(uuid.uuid4().bytes),
            "ver": "1.0",
        }
        if identity.resource_id:
            claims["xms_mirid"] = identity.resource_id
        header = {"alg": "HS256", "typ": "JWT"}
        signing_input = (
            _b64url(json.dumps(header, separators=(",", ":")).encode())
            + "."
            + _b64url(json.dumps(claims, separators=(",", ":")).encode())
        )
        sig = hmac.new(self.signing_key, signing_input.encode(), hashlib.sha256).digest()
        return signing_input + "." + _b64url(sig)

    def verifier(self) -> JwtTokenVerifier:
        return JwtTokenVerifier(self.tenant_id, self.signing_key, clock=self._clock)


class JwtTokenVerifier:
    """``azsim.interfaces.TokenVerifier`` for tokens minted by :class:`TokenIssuer`."""

    def __init__(self, tenant_id: str, signing_key: bytes, *, clock: Callable[[], float] = time.time) -> None:
        self.tenant_id = tenant_id
        self._key = signing_key
        self._clock = clock

    def verify(self, authorization_header: str | None, *, audience: str) -> Principal:
        if not authorization_header:
            raise InvalidToken("The request has no Authorization header; a Bearer token is required.")
        scheme, _, token = authorization_header.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise InvalidToken("The Authorization header must be 'Bearer <access token>'.")
        parts = token.strip().split(".")
        if len(parts) != 3:
            raise InvalidToken("The access token is malformed: expected a JWT of three dot-separated parts.")
        try:
            header = json.loads(_b64url_decode(parts[0]))
            claims = json.loads(_b64url_decode(parts[1]))
            signature = _b64url_decode(parts[2])
        except (ValueError, binascii.Error):
            raise InvalidToken("The access token is malformed: its parts are not base64url JSON.") from None
        if not isinstance(header, dict) or not isinstance(claims, dict):
            raise InvalidToken("The access token is malformed: header and claims must be JSON objects.")
        if header.get("alg") != "HS256":
            raise InvalidToken("The access token's signing algorithm is not accepted.")
        expected = hmac.new(self._key, f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(expected, signature):
            raise InvalidToken("The access token's signature is invalid.")
        want = normalise_audience(audience) or audience.rstrip("/")
        got = normalise_audience(str(claims.get("aud", "")))
        if got != want:
            raise InvalidToken(
                f"The access token has an invalid audience {claims.get('aud')!r}; expected {audience!r}."
            )
        if claims.get("iss") != issuer_for(self.tenant_id) or claims.get("tid") != self.tenant_id:
            raise InvalidToken(
                f"The access token is from the wrong issuer; expected tenant {self.tenant_id}."
            )
        now = self._clock()
        try:
            nbf, exp = float(claims["nbf"]), float(claims["exp"])
        except (KeyError, TypeError, ValueError):
            raise InvalidToken("The access token has no valid 'nbf'/'exp' lifetime claims.") from None
        if now + _CLOCK_SKEW_SECONDS < nbf:
            raise InvalidToken("The access token is not yet valid.")
        if now >= exp:
            raise InvalidToken("The access token has expired.")
        oid = claims.get("oid")
        if not isinstance(oid, str) or not oid:
            raise InvalidToken("The access token names no principal ('oid' claim missing).")
        return Principal(object_id=oid, tenant_id=self.tenant_id, audience=want)


class _MsiHandler(BaseHTTPRequestHandler):
    server: IdentityServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("msi %s", format % args)

    def _reply(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path.rstrip("/") != MSI_PATH:
            self._reply(404, {"statusCode": 404, "message": f"No managed identity endpoint at {url.path}."})
            return
        if not hmac.compare_digest(self.headers.get("X-IDENTITY-HEADER", ""), self.server.identity_header):
            # App Service answers a missing/wrong secret header this way.
            self._reply(401, {"statusCode": 401, "message": "X-IDENTITY-HEADER is missing or wrong."})
            return
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        if not query.get("api-version"):
            self._reply(400, {"statusCode": 400, "message": "The api-version query parameter is required."})
            return
        resource = query.get("resource", "")
        if not resource:
            self._reply(400, {"statusCode": 400, "message": "The resource query parameter is required."})
            return
        if normalise_audience(resource) is None:
            self._reply(
                400,
                {
                    "statusCode": 400,
                    "message": f"AADSTS500011: The resource principal named {resource} was not found "
                    f"in the tenant {self.server.issuer.tenant_id}.",
                },
            )
            return
        issuer = self.server.issuer
        ident = issuer.find(
            client_id=query.get("client_id", ""),
            object_id=query.get("object_id") or query.get("principal_id", ""),
            resource_id=query.get("mi_res_id", ""),
        )
        if ident is None:
            self._reply(
                400,
                {
                    "statusCode": 400,
                    "message": "No managed identity matches the requested client_id/object_id/mi_res_id; "
                    "assign that identity to the app (a principal in the world file).",
                },
            )
            return
        token = issuer.mint(ident, resource)
        claims = json.loads(_b64url_decode(token.split(".")[1]))
        self._reply(
            200,
            {
                "access_token": token,
                "expires_on": str(claims["exp"]),
                "resource": resource,
                "token_type": "Bearer",
                "client_id": ident.client_id,
            },
        )


class IdentityServer(ThreadingHTTPServer):
    """The managed-identity endpoint; ``url`` and ``identity_header`` go into the app settings."""

    daemon_threads = True

    def __init__(self, issuer: TokenIssuer, *, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__((host, port), _MsiHandler)
        self.issuer = issuer
        self.identity_header = secrets.token_urlsafe(24)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{MSI_PATH}"

    def start(self) -> None:
        self._thread = threading.Thread(target=self.serve_forever, name="azsim-msi", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
