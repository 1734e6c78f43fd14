"""Storage-queue clients on the Functions host's own storage connection (``AzureWebJobsStorage``).

Resolved like the host resolves a queue connection, so the app needs no extra setting:

1. a connection string in ``<conn>`` (``UseDevelopmentStorage=true`` works for Azurite);
2. identity-based: ``<conn>__queueServiceUri`` (or ``<conn>__accountName``) with the app's managed
   identity (``<conn>__clientId`` selects a user-assigned one).

Messages are written base64-encoded, as the host's queue output binding does, so a queue-triggered
function (or ``az storage message peek`` + base64 -d) reads them unchanged.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from typing import Any

from azure.core.exceptions import ResourceExistsError
from azure.identity import DefaultAzureCredential
from azure.storage.queue import QueueClient, QueueServiceClient, TextBase64EncodePolicy

from shared.settings import get_settings

# What "UseDevelopmentStorage=true" means to the Functions host: Azurite's well-known account (public value).
_DEV_STORAGE = (
    "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
    "AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;"
    "QueueEndpoint=http://127.0.0.1:10001/devstoreaccount1;"
)
_lock = threading.Lock()
_services: dict[str, QueueServiceClient] = {}
_created: set[tuple[str, str]] = set()


class QueueConnectionError(ValueError):
    """The storage connection setting is missing or malformed (the message names the settings)."""


def _service(connection: str, env: Mapping[str, str]) -> QueueServiceClient:
    s = get_settings()
    retry: dict[str, Any] = {
        "retry_total": s.arm_retry_total,
        "retry_backoff_factor": s.arm_retry_backoff_seconds,
        "retry_backoff_max": s.arm_retry_backoff_max_seconds,
    }
    conn_str = env.get(connection) or env.get(f"AzureWebJobs{connection}")
    if conn_str and conn_str.strip().rstrip(";").lower() == "usedevelopmentstorage=true":
        conn_str = _DEV_STORAGE
    if conn_str:
        return QueueServiceClient.from_connection_string(conn_str, **retry)
    uri = env.get(f"{connection}__queueServiceUri")
    account = env.get(f"{connection}__accountName")
    if not uri and account:
        uri = f"https://{account}.queue.core.windows.net"
    if not uri:
        raise QueueConnectionError(
            f"no storage connection '{connection}': set {connection} (a connection string) or "
            f"{connection}__queueServiceUri / {connection}__accountName (identity-based)"
        )
    kwargs: dict[str, Any] = {"exclude_interactive_browser_credential": True}
    if s.authority_host:
        kwargs["authority"] = s.authority_host
    client_id = env.get(f"{connection}__clientId") or s.managed_identity_client_id
    if client_id:
        kwargs["managed_identity_client_id"] = client_id
    return QueueServiceClient(
        uri, credential=DefaultAzureCredential(**kwargs), audience=s.storage_audience, **retry
    )


def queue_client(
    queue: str, *, connection: str = "AzureWebJobsStorage", env: Mapping[str, str] | None = None
) -> QueueClient:
    """A client for ``queue`` (created on first use in this process), writing base64 like the host."""
    env = os.environ if env is None else env
    with _lock:
        service = _services.get(connection)
        if service is None:
            service = _service(connection, env)
            _services[connection] = service
    client = service.get_queue_client(queue, message_encode_policy=TextBase64EncodePolicy())
    key = (connection, queue)
    if key not in _created:
        try:
            client.create_queue()
        except ResourceExistsError:
            pass
        _created.add(key)
    return client


def reset() -> None:
    """Forget cached clients (tests that switch clouds in one process)."""
    with _lock:
        _services.clear()
        _created.clear()
