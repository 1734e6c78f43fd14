"""User delegation keys and user-delegation SAS at the blob front: what Azure checks and Azurite does not.

Azurite (3.37, ``--oauth basic``) serves Get User Delegation Key (``POST /?restype=service&comp=
userdelegationkey``) to a bearer-token caller, and validates user-delegation SAS signatures (``skoid``,
``sktid``, ``skt``, ``ske``, ``sks``, ``skv``), with keys it derives from those values. The front therefore
uses Azurite's keys as they are and adds the two checks Azure makes that Azurite does not:

- **Seven days.** The key's ``Expiry`` must lie within seven days of the request (Get User Delegation
  Key, request body). Azure refuses a later one with ``400 InvalidXmlNodeValue`` "The value for one of
  the XML nodes is not in the correct format." and names the value in ``XmlNodeName``/``XmlNodeValue``
  (as reported in Azure/azure-sdk-for-net#17690 and #45789; the status and code are Azure's, the exact
  XML of the name element is as those reports show it).
- **The delegator's roles.** A user-delegation SAS grants at most what its delegating principal
  (``skoid``) holds through RBAC at request time ("Create a user delegation SAS": the SAS's permissions
  are intersected with the principal's). A request under such a SAS is checked as if that principal
  made it, and refused ``403 AuthorizationPermissionMismatch`` like a bearer request (our reading of the
  documented rule: the status and code of a refusal under a SAS are unverified).
"""

from __future__ import annotations

import email.utils
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from datetime import UTC, datetime
from xml.sax.saxutils import escape

from azsim.storage.rbac import BlobDataAuthorizer, Denial, required_permission

MAX_KEY_SECONDS = 7 * 24 * 3600
INVALID_XML_NODE = "InvalidXmlNodeValue"
INVALID_XML_NODE_MESSAGE = "The value for one of the XML nodes is not in the correct format."

Response = tuple[int, str, list[tuple[str, str]], bytes]


def is_key_request(method: str, container: str | None, query: Mapping[str, str]) -> bool:
    return (
        method == "POST"
        and not container
        and query.get("restype", "").lower() == "service"
        and query.get("comp", "").lower() == "userdelegationkey"
    )


def _parse_time(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text.strip().replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        return None


def key_expiry_refusal(body: bytes | None, now: float, headers: Mapping[str, str]) -> Response | None:
    """Azure's 400 for a key whose Expiry is more than seven days after ``now`` (epoch seconds), else None."""
    try:
        root = ET.fromstring(body or b"")
    except ET.ParseError:
        return None  # Azurite answers a malformed body itself
    expiry_text = (root.findtext("Expiry") or "").strip()
    expiry = _parse_time(expiry_text)
    if expiry is None or expiry.timestamp() - now <= MAX_KEY_SECONDS:
        return None
    request_id = str(uuid.uuid4())
    stamp = datetime.fromtimestamp(now, UTC)
    message = (
        f"{INVALID_XML_NODE_MESSAGE}\nRequestId:{request_id}\nTime:{stamp.strftime('%Y-%m-%dT%H:%M:%S.%f')}0Z"
    )
    value = escape(expiry_text)
    xml = (
        '\ufeff<?xml version="1.0" encoding="utf-8"?>'
        f"<Error><Code>{INVALID_XML_NODE}</Code><Message>{escape(message)}</Message>"
        f"<XmlNodeName>{value}</XmlNodeName><XmlNodeValue>{value}</XmlNodeValue></Error>"
    ).encode()
    out = [
        ("Content-Type", "application/xml"),
        ("Server", "Windows-Azure-Blob/1.0 Microsoft-HTTPAPI/2.0"),
        ("x-ms-request-id", request_id),
        ("x-ms-version", headers.get("x-ms-version") or "2021-08-06"),
        ("x-ms-error-code", INVALID_XML_NODE),
        ("Date", email.utils.formatdate(now, usegmt=True)),
    ]
    return 400, INVALID_XML_NODE_MESSAGE, out, xml


def delegated_denial(
    auth: BlobDataAuthorizer,
    method: str,
    account: str,
    container: str | None,
    blob: str | None,
    query: Mapping[str, str],
) -> Denial | None:
    """A request under a user-delegation SAS whose delegator lacks the operation's permission, else None."""
    delegator = query.get("skoid")
    account_scope = auth.accounts.get(account.lower())
    if not delegator or account_scope is None or "sig" not in query:
        return None
    permission = required_permission(method, container, blob, query)
    if permission is None:
        return None
    scope = account_scope if not container else f"{account_scope}/blobServices/default/containers/{container}"
    if auth.authorizer.is_allowed(delegator, permission.action, scope, data_action=permission.data_action):
        return None
    return Denial(delegator, permission, scope)
