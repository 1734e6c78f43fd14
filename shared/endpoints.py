"""The rules for every URL the app hands a credential, a SAS or a notice to.

Two kinds of URL leave the app with something of value:

- **export account URLs** (``vhdExport.accountUrl``, the tag ``image-pipeline:export``): the storage
  client sends the app's storage bearer token on every request and ``start_export`` sends the snapshot's
  read SAS as the copy source. Such a URL must be the blob endpoint of this cloud for an account the app
  is configured to export to (``StorageEndpoints``); anything else is refused.
- **webhook URLs** (``notify.webhookUrl``, the tag ``image-pipeline:webhook``, the value of a
  ``NOTICE_WEBHOOK_<NAME>`` setting): the notice is POSTed from inside the app's network, so the host may
  not be an address that only the app can reach (loopback, link-local such as the instance metadata
  endpoint, private ranges), in whatever spelling, and what the name resolves to is checked again at
  delivery (``address_problem``).

Intake (shared.requests) and the places that attach the credential (shared.clients.blob_service,
activities.exports, activities.preflight, activities.notices) use the same functions, so an input recorded
before a rule existed (a replay) can never send a token, a SAS or a notice to a stranger.
How a host is read (every spelling of an IP literal, the non-public ranges) is in shared.hosts.
docs/security-endpoints.md describes the rules and the settings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from shared.errors import CaptureError
from shared.hosts import (
    LOOPBACK,
    IpAddress,
    UrlParts,
    address_kind,
    address_problem,
    bad_character,
    ip_literal,
    split_host_port,
    split_url,
)

ACCOUNT_PLACEHOLDER = "{account}"
DEFAULT_STORAGE_SUFFIX = "core.windows.net"
SETTING_SUFFIX = "AZURE_STORAGE_SUFFIX"
SETTING_TEMPLATE = "AZURE_STORAGE_BLOB_ENDPOINT_TEMPLATE"
SETTING_ACCOUNTS = "CAPTURE_EXPORT_ACCOUNTS"
SETTING_ALLOW_LOOPBACK = "NOTICE_ALLOW_LOOPBACK_WEBHOOKS"

# Storage account names: 3-24 lowercase letters and digits (Microsoft.Storage naming rules).
_ACCOUNT = re.compile(r"^[a-z0-9]{3,24}$")
_ACCOUNT_ID = re.compile(
    r"^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.Storage/storageAccounts/([^/]+)/?$",
    re.IGNORECASE,
)
_SUFFIX = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$")
_HOST_NAME = re.compile(r"^[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*\.?$")
_PORT = re.compile(r"^[0-9]{1,5}$")


class UntrustedEndpointError(CaptureError):
    """A URL the app would send its token, a SAS or a notice to is not one it trusts (terminal)."""

    default_code = "UntrustedEndpoint"


# --- webhooks ----------------------------------------------------------------------------------


_WEBHOOK_SECRET_ADVICE = (
    "must not carry a query string, fragment or credentials: the request is stored in plain text in "
    "the Durable task hub, so a key or signature (sig=, code=, a token) there would leak. Put the whole "
    "URL in an app setting named NOTICE_WEBHOOK_<NAME> and send notify.webhookSetting with that name instead"
)


@dataclass(frozen=True)
class WebhookTarget:
    scheme: str
    host: str  # lowercase; IPv6 without brackets
    port: int
    path: str  # path and query, as sent in the request line
    address: IpAddress | None  # the host, if it is an IP literal


def _is_loopback_name(host: str) -> bool:
    name = host.rstrip(".")
    return name == "localhost" or name.endswith(".localhost")


def _host_problem(host: str, *, allow_loopback: bool) -> tuple[IpAddress | None, str | None]:
    if not host or host == "[]":
        return None, "must name a host"
    address, spelling = ip_literal(host)
    if spelling:
        return address, f"its host {spelling}"
    if address is not None:
        problem = address_problem(address, allow_loopback=allow_loopback)
        return address, (f"its host {problem}" if problem else None)
    if not host.isascii():
        return None, "its host must be ASCII (write an international name in its xn-- form)"
    if len(host) > 253 or not _HOST_NAME.match(host):
        return None, "its host is not a valid DNS name"
    if _is_loopback_name(host) and not allow_loopback:
        return None, f"its host {host} is a loopback name, which only the app's own machine can reach"
    return None, None


def webhook_target(url: str, *, allow_loopback: bool) -> tuple[WebhookTarget | None, str | None]:
    """Parse a webhook URL the app is about to POST to: (target, None) or (None, why not).

    The rules hold wherever the URL came from (a request, a tag, an app setting); a query string is allowed
    here because an app setting may hold one (the request-side rule is ``webhook_url_problem``)."""
    if bad_character(url):
        return None, "must not contain whitespace, control characters (CR, LF) or backslashes"
    parts = split_url(url)
    if parts is None or parts.scheme not in ("http", "https"):
        return None, "must be an https URL"
    if "@" in parts.authority:
        return None, _WEBHOOK_SECRET_ADVICE
    host_text, port_text = split_host_port(parts.authority.lower())
    address, problem = _host_problem(host_text, allow_loopback=allow_loopback)
    if problem:
        return None, problem
    loopback = (address is not None and address_kind(address) == LOOPBACK) or _is_loopback_name(host_text)
    if parts.scheme == "http" and not (allow_loopback and loopback):
        return None, "must be an https URL (the notice must not travel in clear text)"
    default_port = 443 if parts.scheme == "https" else 80
    if port_text is not None and (not _PORT.match(port_text) or not 0 < int(port_text) < 65536):
        return None, "has an invalid port"
    path = parts.rest.split("#", 1)[0] or "/"
    if path.startswith("?"):
        path = "/" + path
    host = host_text[1:-1] if host_text.startswith("[") else host_text
    port = int(port_text) if port_text else default_port
    return WebhookTarget(parts.scheme, host, port, path, address), None


def webhook_url_problem(url: str, *, allow_loopback: bool) -> str | None:
    """Why a webhook URL may not be stored in a request (the request is orchestration input: plain text in
    the task hub) or delivered to, or None. Any query string, fragment or user:password counts."""
    parts = split_url(url)
    if parts is not None and ("?" in parts.rest or "#" in parts.rest or "@" in parts.authority):
        return _WEBHOOK_SECRET_ADVICE
    _target, problem = webhook_target(url, allow_loopback=allow_loopback)
    return problem


# --- export storage accounts -------------------------------------------------------------------


def account_name_of(entry: str) -> str:
    """An allow-list entry (account name or storage account resource id) → the account name."""
    m = _ACCOUNT_ID.match(entry)
    name = m.group(1) if m else entry
    if not _ACCOUNT.match(name):
        raise ValueError(
            f"setting {SETTING_ACCOUNTS}: {entry!r} is neither a storage account name (3-24 lowercase letters "
            "and digits) nor a storage account resource id"
        )
    return name


@dataclass(frozen=True)
class StorageEndpoints:
    """The blob endpoints of this cloud and the accounts the app exports to.

    ``suffix`` is the cloud's storage DNS suffix (``core.windows.net``; sovereign clouds have their own);
    ``template`` replaces ``https://{account}.blob.<suffix>`` for a cloud whose blob endpoints look
    different (the local cloud's path-style blob front); ``accounts`` is the allow-list (empty: no export).
    """

    suffix: str = DEFAULT_STORAGE_SUFFIX
    template: str | None = None
    accounts: frozenset[str] = frozenset()

    @classmethod
    def from_settings(
        cls, suffix: str | None, template: str | None, accounts: str | None
    ) -> StorageEndpoints:
        sfx = (suffix or DEFAULT_STORAGE_SUFFIX).strip().strip(".").lower()
        if not _SUFFIX.match(sfx):
            raise ValueError(
                f"setting {SETTING_SUFFIX}={suffix!r} must be a DNS suffix such as core.windows.net"
            )
        tpl = (template or "").strip() or None
        if tpl is not None:
            tpl = _checked_template(tpl)
        names = frozenset(account_name_of(e) for e in re.split(r"[,\s]+", accounts or "") if e)
        return cls(suffix=sfx, template=tpl, accounts=names)

    @property
    def pattern(self) -> str:
        return self.template or f"https://{ACCOUNT_PLACEHOLDER}.blob.{self.suffix}"

    def example(self) -> str:
        return self.pattern.replace(ACCOUNT_PLACEHOLDER, "<account>")

    def match(self, url: str) -> str | None:
        """The account name if ``url`` (already normalised) is this cloud's blob endpoint of an account."""
        head, _, tail = self.pattern.partition(ACCOUNT_PLACEHOLDER)
        m = re.fullmatch(re.escape(head) + r"([a-z0-9]{3,24})" + re.escape(tail), url)
        return m.group(1) if m else None


def _checked_template(tpl: str) -> str:
    parts = split_url(tpl)
    if (
        parts is None
        or parts.scheme != "https"
        or tpl.count(ACCOUNT_PLACEHOLDER) != 1
        or bad_character(tpl)
        or any(c in tpl for c in "@?#")
    ):
        raise ValueError(
            f"setting {SETTING_TEMPLATE}={tpl!r} must be an https URL with {ACCOUNT_PLACEHOLDER} once and no "
            "credentials, query or fragment, e.g. https://127.0.0.1:10000/{account}"
        )
    return f"https://{parts.authority.lower()}{parts.rest}".rstrip("/")


def _shape_problem(parts: UrlParts, endpoints: StorageEndpoints) -> str:
    """Why a URL that does not match the endpoint pattern is not a blob endpoint (for the advice)."""
    expected = split_url(endpoints.pattern)
    assert expected is not None
    host, port = split_host_port(parts.authority.lower())
    _e_host, e_port = split_host_port(expected.authority)
    address, _spelling = ip_literal(host)
    if (address is not None or _spelling) and ACCOUNT_PLACEHOLDER in expected.authority:
        why = "names an IP address, not a storage account"
    elif port is not None and port != e_port:
        why = "must not name a port"
    elif parts.rest.strip("/") and not expected.rest:
        why = (
            "must be the account's endpoint only, without a path (the container goes in vhdExport.container)"
        )
    else:
        why = "is not the blob endpoint of a storage account in this cloud"
    return f"{why}: use {endpoints.example()}"


def export_url_problem(url: str, endpoints: StorageEndpoints) -> tuple[str | None, str | None]:
    """(the canonical account URL, None) if the app may send its storage token and a SAS to ``url``;
    (None, why not, with advice) otherwise."""
    if bad_character(url):
        return None, "must not contain whitespace, control characters (CR, LF) or backslashes"
    parts = split_url(url)
    if parts is None or parts.scheme != "https":
        return None, f"must be the storage account's https blob endpoint, e.g. {endpoints.example()}"
    if "@" in parts.authority:
        return None, "must not carry credentials (user:password@): the app signs in with its managed identity"
    if "?" in parts.rest:
        return None, "must not carry a query string (no SAS: the app uses its managed identity)"
    if "#" in parts.rest:
        return None, "must not carry a fragment"
    rest = parts.rest.rstrip("/")
    canonical = f"https://{parts.authority.lower()}{rest}"
    account = endpoints.match(canonical)
    if account is None:
        return None, _shape_problem(parts, endpoints)
    if not endpoints.accounts:
        return None, (
            "VHD export is not enabled in this app: no storage account is allow-listed. An operator enables it "
            f"by setting {SETTING_ACCOUNTS} to the names (or resource ids) of the accounts the app may export to"
        )
    if account not in endpoints.accounts:
        return None, (
            f"the storage account {account} is not one this app exports to: use an allow-listed account, or "
            f"ask an operator to add it to the app setting {SETTING_ACCOUNTS}"
        )
    return canonical, None


def verified_export_url(url: str, endpoints: StorageEndpoints, *, step: str) -> str:
    """The canonical account URL, or ``UntrustedEndpointError`` (terminal) before any credential is used."""
    canonical, problem = export_url_problem(url, endpoints)
    if canonical is None:
        raise UntrustedEndpointError(
            f"refused to send the app's storage token or a SAS to the export account URL ({problem})",
            step=step,
            advice="Start the capture again with vhdExport.accountUrl set to an allow-listed storage account.",
        )
    return canonical
