"""No access handed to a stranger, at intake: export account URLs and webhook URLs (shared.endpoints).

An export URL receives the app's storage token and a snapshot SAS, so it must be the blob endpoint of this
cloud for an allow-listed account; a webhook URL receives a POST from inside the app's network, so its host
may not be an internal address in any spelling. Every case here is refused by validation alone: no client
is built and nothing is sent (the stack test at the end proves it with a listening socket).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shared.contracts import CaptureInput
from shared.endpoints import StorageEndpoints, export_url_problem
from shared.hosts import parse_ipv4_any
from shared.requests import validate_request
from shared.settings import Settings, get_settings
from shared.vm_tags import TAG_EXPORT, TAG_WEBHOOK, request_from_tags
from tests.support.http import http, wait_for
from tests.support.stack import Stack, running_trigger_stack
from tests.support.tripwire import Listener

VM_ID = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-build/providers/Microsoft.Compute/virtualMachines/vm-x"
BASE = {
    "sourceVmId": VM_ID,
    "captureMode": "inPlace",
    "gallery": {"resourceGroup": "rg-images", "name": "galContoso"},
    "imageDefinition": {"name": "d", "createIfMissing": False},
    "prepare": "none",
}
TAGS = {
    "image-pipeline:gallery": "rg-images/galContoso",
    "image-pipeline:definition": "d",
    "image-pipeline:mode": "inPlace",
}
GOOD_EXPORT = "https://stexports.blob.core.windows.net"


@pytest.fixture
def production(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The public cloud's endpoints, stexports allow-listed, no loopback webhooks (production's default)."""
    for name in (
        "AZURE_STORAGE_SUFFIX",
        "AZURE_STORAGE_BLOB_ENDPOINT_TEMPLATE",
        "NOTICE_ALLOW_LOOPBACK_WEBHOOKS",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CAPTURE_EXPORT_ACCOUNTS", "stexports")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def _export_errors(url: str) -> list[str]:
    request, errors = validate_request({**BASE, "vhdExport": {"accountUrl": url, "container": "vhds"}})
    assert (request is None) == bool(errors)
    return [f"{e.field}: {e.message}" for e in errors]


def _webhook_errors(url: str) -> list[str]:
    request, errors = validate_request({**BASE, "notify": {"webhookUrl": url}})
    assert (request is None) == bool(errors)
    return [f"{e.field}: {e.message}" for e in errors]


# --- export account URLs -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("https://127.0.0.1:9443/stexports", "IP address"),  # a fake "storage account" on this machine
        ("https://user:pw@stexports.blob.core.windows.net", "credentials"),
        ("https://stexports.blob.core.windows.net.evil.test", "not the blob endpoint"),
        ("https://stexports.blob.core.chinacloudapi.cn", "not the blob endpoint"),  # another cloud's suffix
        ("https://stexports.file.core.windows.net", "not the blob endpoint"),
        ("https://20.60.1.1", "IP address"),
        ("https://[::1]", "IP address"),
        ("https://2130706433", "IP address"),
        ("https://stexports.blob.core.windows.net:8443", "port"),
        ("https://stexports.blob.core.windows.net/vhds", "without a path"),
        ("https://stexports.blob.core.windows.net?sv=1", "query string"),
        ("https://stexports.blob.core.windows.net#x", "fragment"),
        ("https://stexports.blob.core.windows.net\r\nX-Evil: 1", "CR, LF"),
        ("https://stexports.blob.core.windows.net ", "whitespace"),
        ("http://stexports.blob.core.windows.net", "https"),
        ("https://other.blob.core.windows.net", "CAPTURE_EXPORT_ACCOUNTS"),  # not allow-listed
    ],
)
def test_an_export_url_that_is_not_an_allow_listed_blob_endpoint_is_refused(
    production: None, url: str, why: str
) -> None:
    errors = _export_errors(url)
    assert len(errors) == 1 and errors[0].startswith("vhdExport.accountUrl: "), errors
    assert why in errors[0], errors
    assert "pw@" not in errors[0]  # the refusal never repeats credentials


def test_an_allow_listed_account_is_accepted_and_normalised(production: None) -> None:
    request, errors = validate_request(
        {**BASE, "vhdExport": {"accountUrl": "https://STEXPORTS.blob.core.windows.net/", "container": "vhds"}}
    )
    assert errors == [] and request is not None and request.vhd_export is not None
    assert request.vhd_export.account_url == GOOD_EXPORT


def test_with_no_allow_list_export_is_disabled_with_advice(
    production: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CAPTURE_EXPORT_ACCOUNTS", "")
    get_settings.cache_clear()
    (error,) = _export_errors(GOOD_EXPORT)
    assert "not enabled" in error and "CAPTURE_EXPORT_ACCOUNTS" in error


def test_sovereign_suffix_resource_ids_and_the_local_template() -> None:
    gov = StorageEndpoints.from_settings(
        "core.usgovcloudapi.net",
        None,
        "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/stgov",
    )
    assert export_url_problem("https://stgov.blob.core.usgovcloudapi.net", gov) == (
        "https://stgov.blob.core.usgovcloudapi.net",
        None,
    )
    assert export_url_problem("https://stgov.blob.core.windows.net", gov)[0] is None
    local = StorageEndpoints.from_settings(None, "https://127.0.0.1:4443/{account}", "stexports")
    assert (
        export_url_problem("https://127.0.0.1:4443/stexports", local)[0] == "https://127.0.0.1:4443/stexports"
    )
    for other in ("https://127.0.0.1:4444/stexports", "https://localhost:4443/stexports", GOOD_EXPORT):
        assert export_url_problem(other, local)[0] is None, other
    with pytest.raises(ValueError, match="CAPTURE_EXPORT_ACCOUNTS"):
        StorageEndpoints.from_settings(None, None, "Not_An_Account")
    with pytest.raises(ValueError, match="AZURE_STORAGE_BLOB_ENDPOINT_TEMPLATE"):
        Settings.from_env({"AZURE_STORAGE_BLOB_ENDPOINT_TEMPLATE": "http://127.0.0.1:1/{account}"})


def test_the_export_tag_goes_through_the_same_rule(production: None) -> None:
    bad = request_from_tags(VM_ID, {**TAGS, TAG_EXPORT: "https://127.0.0.1:9443/stexports/vhds"})
    assert bad.request is None and [e.field for e in bad.errors] == [TAG_EXPORT], bad.errors
    assert "IP address" in bad.errors[0].message
    good = request_from_tags(VM_ID, {**TAGS, TAG_EXPORT: f"{GOOD_EXPORT}/vhds"})
    assert good.request is not None and good.request.vhd_export is not None


def test_a_replayed_input_is_not_rechecked_at_intake(production: None) -> None:
    # Recorded before the rule: replay must not break; the activities refuse it (test_endpoints_credentials).
    old = {
        "captureId": "c",
        "request": {**BASE, "vhdExport": {"accountUrl": "https://127.0.0.1:9", "container": "vhds"}},
    }
    replayed = CaptureInput.from_wire(old).request.vhd_export
    assert replayed is not None and replayed.account_url == "https://127.0.0.1:9"


# --- webhook URLs ------------------------------------------------------------------------------

INTERNAL_WEBHOOKS = [
    "https://127.0.0.1/hook",
    "https://127.1/hook",  # short form
    "https://127.0.1/hook",
    "https://2130706433/hook",  # decimal
    "https://0x7f000001/hook",  # hex
    "https://0x7f.0.0.1/hook",
    "https://0177.0.0.1/hook",  # octal
    "https://017700000001/hook",
    "https://127.0.0.1./hook",  # trailing dot
    "https://localhost/hook",
    "https://api.localhost/hook",
    "https://[::1]/hook",
    "https://[::ffff:127.0.0.1]/hook",
    "https://[::ffff:7f00:1]/hook",
    "https://169.254.169.254/metadata/instance",  # instance metadata
    "https://[::ffff:169.254.169.254]/metadata",
    "https://[fe80::1]/hook",
    "https://10.0.0.1/hook",
    "https://172.16.5.4/hook",
    "https://192.168.1.1/hook",
    "https://100.64.0.1/hook",  # shared address space
    "https://0.0.0.0/hook",
    "https://0/hook",
    "https://[::]/hook",
    "https://224.0.0.1/hook",  # multicast
    "https://240.0.0.1/hook",  # reserved
    "https://[fd00::1]/hook",  # unique local
    "https://[64:ff9b::a9fe:a9fe]/hook",  # NAT64 of 169.254.169.254
    "https://256.0.0.1/hook",  # not an address at all
    "https://1.2.3.4.5/hook",
]


@pytest.mark.parametrize("url", INTERNAL_WEBHOOKS)
def test_a_webhook_on_an_internal_address_in_any_spelling_is_refused(production: None, url: str) -> None:
    errors = _webhook_errors(url)
    assert len(errors) == 1 and errors[0].startswith("notify.webhookUrl: its host"), errors


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://hooks.contoso.test/capture", "https"),
        ("ftp://hooks.contoso.test/capture", "https"),
        ("https://hooks.contoso.test/capture\r\nX-Evil: 1", "CR, LF"),
        ("https://hooks.contoso.test/cap ture", "whitespace"),
        ("https://hooks.contoso.test\\@127.0.0.1/", "query string"),  # '@' in what some parsers call the host
        ("https://hooks.contoso.test:99999/capture", "port"),
        ("https://hooks.contoso.test/capture?x=1", "query string"),
        ("https://user:pw@hooks.contoso.test/capture", "query string"),
        ("https://hook%2eevil.test/", "valid DNS name"),
        ("https://bücher.test/", "xn--"),
    ],
)
def test_a_webhook_url_breaking_the_other_rules_is_refused(production: None, url: str, why: str) -> None:
    errors = _webhook_errors(url)
    assert len(errors) == 1 and why in errors[0], errors


def test_public_webhooks_pass_and_loopback_only_with_the_development_setting(
    production: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    for url in ("https://hooks.contoso.test/capture", "https://20.50.2.1:8443/x", "https://[2603:1000::1]/x"):
        assert _webhook_errors(url) == [], url
    assert _webhook_errors("http://127.0.0.1:8080/hook") != []
    monkeypatch.setenv("NOTICE_ALLOW_LOOPBACK_WEBHOOKS", "true")
    get_settings.cache_clear()
    for url in ("http://127.0.0.1:8080/hook", "https://[::1]:8443/hook", "http://localhost:1/x"):
        assert _webhook_errors(url) == [], url
    # Only loopback: private and link-local stay refused, and http only for loopback.
    for url in ("https://169.254.169.254/", "https://10.0.0.1/", "http://hooks.contoso.test/"):
        assert _webhook_errors(url) != [], url


def test_the_webhook_tag_goes_through_the_same_rule(production: None) -> None:
    bad = request_from_tags(VM_ID, {**TAGS, TAG_WEBHOOK: "https://169.254.169.254/latest"})
    assert bad.request is None and bad.errors, bad
    assert any("link-local" in e.message for e in bad.errors), bad.errors


def test_ipv4_spellings_decode_like_inet_aton() -> None:
    for text in ("2130706433", "0x7f000001", "0177.0.0.1", "127.1", "127.0.1", "0x7f.1", "127.0.0.1"):
        address, canonical = parse_ipv4_any(text)
        assert str(address) == "127.0.0.1" and canonical == (text == "127.0.0.1"), text
    assert parse_ipv4_any("hooks.contoso.test") == (None, False)
    assert parse_ipv4_any("1.2.3.example") == (None, False)
    for bad in ("1.2.3.4.5", "256.1.1.1", "1.16777216", "08.1.1.1", "0xg.1.1.1"):
        with pytest.raises(ValueError):
            parse_ipv4_any(bad)


# --- over HTTP and the queue, with a fake storage account that must see nothing ----------------


@pytest.fixture(scope="module")
def estack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_trigger_stack(Path(tmp_path_factory.mktemp("endpoints"))) as s:
        yield s


@pytest.mark.e2e
def test_http_and_queue_refuse_a_fake_storage_account_and_an_internal_webhook_with_nothing_sent(
    estack: Stack,
) -> None:
    s = estack
    fake = Listener()
    try:
        body: dict[str, Any] = s.queue_request(
            "vm-409",
            vhdExport={"accountUrl": f"https://127.0.0.1:{fake.port}/stexports", "container": "vhds"},
            # The stack allows loopback webhooks (its receivers are local); link-local stays refused.
            notify={"webhookUrl": "https://169.254.169.254/metadata/instance"},
        )
        code, answer, _ = http("POST", s.devhost.url("/api/captures"), body)
        assert code == 400, answer
        fields = {e["field"]: e["message"] for e in answer["errors"]}
        assert set(fields) == {"vhdExport.accountUrl", "notify.webhookUrl"}, answer
        assert "127.0.0.1:" in fields["vhdExport.accountUrl"]  # the advice names the local blob endpoint

        s.enqueue(json.dumps(body))
        poisoned = wait_for(
            "the poison message",
            lambda: [
                m
                for m in s.read_queue("capture-requests-poison")
                if str(fake.port) in m.get("originalBody", "")
            ],
            timeout=60,
        )
        assert poisoned[0]["reason"] == "InvalidRequest"
        assert {e["field"] for e in poisoned[0]["errors"]} == {"vhdExport.accountUrl", "notify.webhookUrl"}
        assert fake.connections() == 0  # no token, no SAS, no notice ever reached it
        assert s.capture_instances("vm-409") == []
    finally:
        fake.sock.close()
