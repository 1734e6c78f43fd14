"""Azure SDK clients built from Settings, one credential per process.

azure-core's RetryPolicy is the retry owner for single transient HTTP failures (429 with
Retry-After, 5xx, resets): it is configured here and nowhere else.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from azure.core.credentials import TokenCredential
from azure.core.rest import HttpRequest, HttpResponse
from azure.identity import DefaultAzureCredential
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.network import NetworkManagementClient
from azure.storage.blob import BlobServiceClient, ExponentialRetry

from shared import telemetry
from shared.endpoints import verified_export_url
from shared.settings import Settings, get_settings


@lru_cache(maxsize=1)
def credential() -> TokenCredential:
    s = get_settings()
    kwargs: dict[str, Any] = {"exclude_interactive_browser_credential": True}
    if s.authority_host:
        kwargs["authority"] = s.authority_host
    if s.managed_identity_client_id:
        kwargs["managed_identity_client_id"] = s.managed_identity_client_id
    return DefaultAzureCredential(**kwargs)


def _retry_kwargs(s: Settings) -> dict[str, Any]:
    return {
        "retry_total": s.arm_retry_total,
        "retry_backoff_factor": s.arm_retry_backoff_seconds,
        "retry_backoff_max": s.arm_retry_backoff_max_seconds,
    }


@lru_cache(maxsize=16)
def compute(subscription_id: str) -> ComputeManagementClient:
    s = get_settings()
    return ComputeManagementClient(
        credential(),
        subscription_id,
        base_url=s.arm_endpoint,
        credential_scopes=[s.arm_scope],
        polling_interval=s.lro_polling_interval_seconds,
        raw_response_hook=telemetry.record_azure_error,  # Azure's error codes on the trace
        **_retry_kwargs(s),
    )


@lru_cache(maxsize=16)
def network(subscription_id: str) -> NetworkManagementClient:
    """Microsoft.Network (the clone's subnet and NIC, the boot tests' NICs), configured as ``compute``."""
    s = get_settings()
    return NetworkManagementClient(
        credential(),
        subscription_id,
        base_url=s.arm_endpoint,
        credential_scopes=[s.arm_scope],
        polling_interval=s.lro_polling_interval_seconds,
        raw_response_hook=telemetry.record_azure_error,
        **_retry_kwargs(s),
    )


def arm_send(subscription_id: str, request: HttpRequest) -> HttpResponse:
    """Send a plain ARM request (an API no installed SDK wraps, e.g. Microsoft.Authorization permissions).

    It goes through the Compute client's pipeline, which is azure-mgmt-core's ARM pipeline: the app's
    credential and audience, ARM's auth-challenge handling and the retry policy configured above.
    """
    return compute(subscription_id).send_request(request)


def blob_service(account_url: str) -> BlobServiceClient:
    """The blob client of an export account, with the app's identity attached.

    Every request it makes carries the app's storage token, so the URL must be an allow-listed account's
    blob endpoint of this cloud (``shared.endpoints``), checked on every call, before any client exists:
    an input recorded before the rule (a replay) is refused here with ``UntrustedEndpointError``.
    """
    s = get_settings()
    return verified_blob_service(verified_export_url(account_url, s.storage_endpoints, step="storage client"))


@lru_cache(maxsize=16)
def verified_blob_service(account_url: str) -> BlobServiceClient:
    """Only for a URL that ``verified_export_url`` returned (``blob_service`` is the way in)."""
    s = get_settings()
    # The storage SDK has its own retry policy type and ignores azure-core's retry_* keywords;
    # its default (15 s first wait, x3) would take ~40 s to report an unreachable account.
    retry = ExponentialRetry(
        initial_backoff=int(s.arm_retry_backoff_seconds),
        increment_base=2,
        retry_total=s.arm_retry_total,
        random_jitter_range=1,
    )
    return BlobServiceClient(
        account_url,
        credential=credential(),
        audience=s.storage_audience,
        retry_policy=retry,
        raw_response_hook=telemetry.record_azure_error,  # Azure's error codes on the trace
    )
