"""No storage token and no SAS to a stranger, where the credential is attached.

An input recorded before the intake rule existed (a replay) still reaches the activities; they refuse an
export account URL that is not an allow-listed blob endpoint of this cloud with a terminal error, before
any client is built: a listening socket standing in for a fake "storage account" sees no connection, and
no snapshot access is granted (the compute client is a tripwire). No local cloud is needed: nothing is
sent. (The allow-listed account's exports through the same checks run in test_capture_activities.)
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from activities import exports, preflight
from shared import clients
from shared.endpoints import UntrustedEndpointError
from shared.errors import parse_failure
from shared.settings import get_settings
from tests.activities.activity_cloud import Calls, reset_caches
from tests.support.tripwire import Listener

SNAPSHOT = (
    "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-build/providers/"
    "Microsoft.Compute/snapshots/snap-os"
)


@pytest.fixture
def fake_account(monkeypatch: pytest.MonkeyPatch) -> Iterator[Listener]:
    """The local cloud's endpoint form on a port the fake does not hold, stexports allow-listed; any grant
    of snapshot access fails the test."""
    fake = Listener()
    monkeypatch.setenv(
        "AZURE_STORAGE_BLOB_ENDPOINT_TEMPLATE", f"https://127.0.0.1:{fake.port + 1}/{{account}}"
    )
    monkeypatch.setenv("CAPTURE_EXPORT_ACCOUNTS", "stexports")
    reset_caches()

    def no_compute(subscription_id: str) -> Any:
        raise AssertionError("snapshot access must not be granted for an untrusted export URL")

    monkeypatch.setattr(clients, "compute", no_compute)
    try:
        yield fake
    finally:
        fake.sock.close()
        # clients.compute is still the tripwire here (monkeypatch undoes it after this fixture).
        get_settings.cache_clear()
        clients.verified_blob_service.cache_clear()


def _bad_urls(fake: Listener) -> list[str]:
    return [
        f"https://127.0.0.1:{fake.port}/stexports",  # the fake, on another port than the blob front
        f"https://user:pw@127.0.0.1:{fake.port + 1}/stexports",
        f"https://127.0.0.1:{fake.port + 1}/other",  # the right endpoint, an account not allow-listed
        "https://stexports.blob.core.windows.net",  # another cloud's endpoint form
        f"https://127.0.0.1:{fake.port + 1}/stexports\r\nX-Evil: 1",
    ]


def _refused(call: Calls, fn: Any, payload: dict[str, Any]) -> str:
    with pytest.raises(Exception) as caught:
        call(fn, payload)
    info = parse_failure(str(caught.value))
    assert info is not None and info.code == "UntrustedEndpoint" and info.kind == "terminal", caught.value
    assert info.advice and "allow-listed" in info.advice
    assert "pw@" not in str(caught.value)
    return info.message


def test_start_export_refuses_a_replayed_untrusted_account_before_any_grant(
    fake_account: Listener, call: Calls
) -> None:
    for url in _bad_urls(fake_account):
        payload = {
            "captureId": "cap-replay",
            "snapshotId": SNAPSHOT,
            "diskKey": "os",
            "diskName": "os",
            "sizeGb": 1,
            "accountUrl": url,
            "container": "vhds",
            "sasDurationSeconds": 3600,
        }
        _refused(call, exports.start_export, payload)
    assert fake_account.connections() == 0


def test_preflight_and_copy_polling_refuse_it_too(fake_account: Listener, call: Calls) -> None:
    for url in _bad_urls(fake_account):
        message = _refused(call, preflight.check_export_target, {"accountUrl": url, "container": "vhds"})
        assert "refused to send the app's storage token" in message
        blob = {"blobUrl": f"{url}/vhds/cap/os.vhd"}
        if "\r" not in url and "@" not in url:
            _refused(call, exports.get_copy_status, blob)
            _refused(call, exports.abort_copy, {**blob, "copyId": "c1"})
    assert fake_account.connections() == 0


def test_blob_service_builds_no_client_for_an_untrusted_url(fake_account: Listener) -> None:
    for url in _bad_urls(fake_account):
        with pytest.raises(UntrustedEndpointError):
            clients.blob_service(url)
    assert clients.verified_blob_service.cache_info().currsize == 0
    good = clients.blob_service(f"https://127.0.0.1:{fake_account.port + 1}/stexports/")
    assert good.url.rstrip("/") == f"https://127.0.0.1:{fake_account.port + 1}/stexports"
    assert fake_account.connections() == 0
