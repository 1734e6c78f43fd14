"""Data-plane RBAC for the world's storage accounts: which permission a Blob request needs, and who has it.

Azurite's ``--oauth basic`` checks a bearer token's issuer, audience and lifetime but not its roles; Azure
also requires the token's principal to hold the operation's permission through a role assignment at the
container, account, resource group or subscription (e.g. Storage Blob Data Contributor). The blob front
asks :class:`BlobDataAuthorizer` before forwarding a bearer-token request to a world storage account and
answers a refusal the way the Blob service does: ``403 AuthorizationPermissionMismatch``.

Permissions per operation follow "Authorize with Microsoft Entra ID" (Storage REST reference, section
"Permissions for calling data operations"): container create/read/delete are the *actions*
``blobServices/containers/write|read|delete`` (so ARM's Reader, ``*/read``, may list containers and read
their properties), blob operations the *data actions* ``containers/blobs/read|write|delete`` (List Blobs
included) and ``blobs/tags/read|write``. SAS and Shared Key requests are not role-checked (as in Azure);
neither are accounts outside the world (the Functions host's own storage, the managed-disk account).

Simplified: a new blob needs ``blobs/write`` (Azure also accepts ``blobs/add/action`` when nothing is
overwritten); operations not listed in :func:`required_permission` (container ACLs and leases, batch,
find-by-tags, account information, service stats) pass unchecked; conditions and deny assignments are
not modelled (as in ``azsim.core.rbac``).
"""

from __future__ import annotations

import email.utils
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from xml.sax.saxutils import escape

from azsim.core.rbac import Authorizer
from azsim.core.requestlog import AuthorizationLog
from azsim.identity import STORAGE_AUDIENCE
from azsim.interfaces import InvalidToken, TokenVerifier
from azsim.world import World

_B = "Microsoft.Storage/storageAccounts/blobServices"
SERVICE_READ = f"{_B}/read"
SERVICE_WRITE = f"{_B}/write"
USER_DELEGATION_KEY = f"{_B}/generateUserDelegationKey/action"
CONTAINERS_READ = f"{_B}/containers/read"
CONTAINERS_WRITE = f"{_B}/containers/write"
CONTAINERS_DELETE = f"{_B}/containers/delete"
BLOBS_READ = f"{_B}/containers/blobs/read"
BLOBS_WRITE = f"{_B}/containers/blobs/write"
BLOBS_DELETE = f"{_B}/containers/blobs/delete"
TAGS_READ = f"{_B}/containers/blobs/tags/read"
TAGS_WRITE = f"{_B}/containers/blobs/tags/write"

PERMISSION_MISMATCH = "AuthorizationPermissionMismatch"
PERMISSION_MISMATCH_MESSAGE = (
    "This request is not authorized to perform this operation using this permission."
)
_READS = ("GET", "HEAD")


@dataclass(frozen=True)
class Permission:
    action: str
    data_action: bool


@dataclass(frozen=True)
class Denial:
    """A refused request: who, what permission, on which scope (for the log; the answer names none)."""

    object_id: str
    permission: Permission
    scope: str


def required_permission(
    method: str, container: str | None, blob: str | None, query: Mapping[str, str]
) -> Permission | None:
    """The RBAC permission a Blob service request needs, or None if azsim does not check this operation."""
    comp = query.get("comp", "").lower()
    restype = query.get("restype", "").lower()
    reading = method in _READS
    if method == "OPTIONS":
        return None  # CORS preflight carries no credentials
    if not container:
        if comp == "list":
            return Permission(CONTAINERS_READ, False)
        if restype == "service" and comp == "userdelegationkey":
            return Permission(USER_DELEGATION_KEY, False)
        if restype == "service" and comp == "properties":
            return Permission(SERVICE_READ if reading else SERVICE_WRITE, False)
        return None
    if not blob:
        if restype != "container":
            return None
        if comp == "list":
            return Permission(BLOBS_READ, True)
        if comp in ("", "metadata"):
            if reading:
                return Permission(CONTAINERS_READ, False)
            if method == "PUT":
                return Permission(CONTAINERS_WRITE, False)
            if method == "DELETE":
                return Permission(CONTAINERS_DELETE, False)
        return None
    if comp == "tags":
        return Permission(TAGS_READ if reading else TAGS_WRITE, True)
    if reading:
        return Permission(BLOBS_READ, True)
    if method == "PUT":
        return Permission(BLOBS_WRITE, True)
    if method == "DELETE":
        return Permission(BLOBS_DELETE, True)
    return None


def storage_account_scopes(world: World) -> dict[str, str]:
    """ARM resource id of each world storage account, keyed by its (lower-case) Azurite account name."""
    subs = {rg.name.lower(): world.resource_group_subscription(rg) for rg in world.resource_groups}
    scopes: dict[str, str] = {}
    for sa in world.storage_accounts:
        sub = subs.get(sa.resource_group.lower(), world.default_subscription.id)
        scopes[sa.account_name.lower()] = (
            f"/subscriptions/{sub}/resourceGroups/{sa.resource_group}"
            f"/providers/Microsoft.Storage/storageAccounts/{sa.name}"
        )
    return scopes


class BlobDataAuthorizer:
    """Checks bearer-token Blob requests to world storage accounts against the world's role assignments."""

    def __init__(self, accounts: Mapping[str, str], authorizer: Authorizer, tokens: TokenVerifier) -> None:
        self.accounts = {k.lower(): v for k, v in accounts.items()}
        self.authorizer = authorizer
        self.tokens = tokens

    @classmethod
    def for_world(
        cls, world: World, tokens: TokenVerifier, log: AuthorizationLog | None = None
    ) -> BlobDataAuthorizer:
        """``log``: where decisions go (the ARM simulator's, so that one report covers both planes)."""
        return cls(storage_account_scopes(world), Authorizer(world, log), tokens)

    def check(
        self,
        method: str,
        account: str,
        container: str | None,
        blob: str | None,
        query: Mapping[str, str],
        authorization: str | None,
    ) -> Denial | None:
        """None if the request may go on to Azurite; a Denial if Azure would refuse it for missing roles."""
        account_scope = self.accounts.get(account.lower())
        if account_scope is None or not authorization or not authorization.lower().startswith("bearer "):
            return None  # not a world account, or Shared Key / SAS / anonymous: no role check
        try:
            principal = self.tokens.verify(authorization, audience=STORAGE_AUDIENCE)
        except InvalidToken:
            return None  # Azurite refuses bad tokens itself (401), as the Blob service does
        permission = required_permission(method, container, blob, query)
        if permission is None:
            return None
        scope = (
            account_scope if not container else f"{account_scope}/blobServices/default/containers/{container}"
        )
        if self.authorizer.is_allowed(
            principal.object_id, permission.action, scope, data_action=permission.data_action
        ):
            return None
        return Denial(principal.object_id, permission, scope)


def permission_mismatch_response(
    request_headers: Mapping[str, str], *, head: bool
) -> tuple[int, str, list[tuple[str, str]], bytes]:
    """The Blob service's 403 ``AuthorizationPermissionMismatch`` (``request_headers`` keys lower-case)."""
    request_id = str(uuid.uuid4())
    now = datetime.now(UTC)
    message = (
        f"{PERMISSION_MISMATCH_MESSAGE}\nRequestId:{request_id}\n"
        f"Time:{now.strftime('%Y-%m-%dT%H:%M:%S.%f')}0Z"
    )
    body = (
        '\ufeff<?xml version="1.0" encoding="utf-8"?>'
        f"<Error><Code>{PERMISSION_MISMATCH}</Code><Message>{escape(message)}</Message></Error>"
    ).encode()
    headers = [
        ("Content-Type", "application/xml"),
        ("Server", "Windows-Azure-Blob/1.0 Microsoft-HTTPAPI/2.0"),
        ("x-ms-request-id", request_id),
        ("x-ms-version", request_headers.get("x-ms-version") or "2021-08-06"),
        ("x-ms-error-code", PERMISSION_MISMATCH),
        ("Date", email.utils.formatdate(now.timestamp(), usegmt=True)),
    ]
    client_request_id = request_headers.get("x-ms-client-request-id")
    if client_request_id:
        headers.append(("x-ms-client-request-id", client_request_id))
    if head:
        body = b""  # HEAD answers carry the error code in the header only
    return 403, PERMISSION_MISMATCH_MESSAGE, headers, body
