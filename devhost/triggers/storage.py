"""Storage-queue connections resolved from app settings the way the Functions host resolves them.

A binding's ``connection`` (default ``AzureWebJobsStorage``) names either
- a setting holding a connection string (``<conn>`` or ``AzureWebJobs<conn>``), or
- identity-based settings: ``<conn>__queueServiceUri`` (or ``<conn>__accountName``), authenticated with
  ``DefaultAzureCredential`` (``<conn>__clientId`` selects a user-assigned managed identity).
Message bodies use the host's encoding: base64 by default (``extensions.queues.messageEncoding``).
"""

from __future__ import annotations

import base64
import binascii
import os
import threading
from typing import Any

from azure.storage.queue import QueueClient, QueueServiceClient


class StorageConnectionError(Exception):
    """The named storage connection has no usable settings."""


def _setting(name: str) -> str | None:
    value = os.environ.get(name)
    return value if value else None


def describe_connection(connection: str) -> str:
    """Safe description for logs: the endpoint, never the key."""
    conn = connection or "AzureWebJobsStorage"
    for name in (conn, f"AzureWebJobs{conn}"):
        cs = _setting(name)
        if cs:
            parts = dict(p.split("=", 1) for p in cs.split(";") if "=" in p)
            if cs.strip().lower() == "usedevelopmentstorage=true":
                return "development storage (Azurite default ports)"
            return parts.get("QueueEndpoint") or parts.get("AccountName", "connection string")
    uri = _setting(f"{conn}__queueServiceUri")
    if uri:
        return f"{uri.split('?')[0]} (identity)"
    return "unresolved"


_clients: dict[str, QueueServiceClient] = {}
_lock = threading.Lock()


def service_client(connection: str) -> QueueServiceClient:
    """A cached QueueServiceClient for a binding connection name."""
    conn = connection or "AzureWebJobsStorage"
    with _lock:
        found = _clients.get(conn)
        if found is not None:
            return found
        client = _build(conn)
        _clients[conn] = client
        return client


def _build(conn: str) -> QueueServiceClient:
    for name in (conn, f"AzureWebJobs{conn}"):
        cs = _setting(name)
        if cs:
            if cs.strip().lower() == "usedevelopmentstorage=true":
                cs = (
                    "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
                    "AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;"
                    "QueueEndpoint=http://127.0.0.1:10001/devstoreaccount1;"
                )
            try:
                return QueueServiceClient.from_connection_string(cs)
            except ValueError as exc:
                raise StorageConnectionError(
                    f"app setting '{name}' is not a valid storage connection string ({exc}). "
                    "Expected 'DefaultEndpointsProtocol=...;AccountName=...;AccountKey=...;QueueEndpoint=...'."
                ) from exc
    uri = _setting(f"{conn}__queueServiceUri")
    account = _setting(f"{conn}__accountName")
    if not uri and account:
        uri = f"https://{account}.queue.core.windows.net"
    if uri:
        from azure.identity import DefaultAzureCredential

        client_id = _setting(f"{conn}__clientId")
        credential: Any = (
            DefaultAzureCredential(managed_identity_client_id=client_id)
            if client_id
            else DefaultAzureCredential()
        )
        return QueueServiceClient(account_url=uri, credential=credential)
    raise StorageConnectionError(
        f"storage connection '{conn}' is not configured: set app setting '{conn}' to a connection string, "
        f"or '{conn}__queueServiceUri' for an identity-based connection (local.settings.json Values or the "
        "environment)."
    )


def queue_client(connection: str, queue_name: str) -> QueueClient:
    return service_client(connection).get_queue_client(queue_name)


def encode_body(body: bytes, encoding: str) -> str:
    """Text stored in the queue for ``body`` (what the host writes for output bindings / poison copies)."""
    if encoding == "base64":
        return base64.b64encode(body).decode("ascii")
    return body.decode("utf-8")


def decode_body(text: str, encoding: str) -> bytes:
    """Message bytes from stored text; raises ValueError when base64 decoding fails, as the host does."""
    if encoding == "base64":
        try:
            return base64.b64decode(text.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError) as exc:
            raise ValueError(f"message is not valid base64 ({exc})") from exc
    return text.encode("utf-8")


def reset_clients() -> None:
    with _lock:
        _clients.clear()
