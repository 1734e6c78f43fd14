"""The one error model (shared.errors.ErrorInfo): its wire forms, what earlier code stored, the catalog."""

from __future__ import annotations

import json

from azure.core.exceptions import HttpResponseError
from azure.storage.blob import StorageErrorCode

from shared.azure_errors import code_text, translate_azure_error
from shared.errors import AzureOperationError, ErrorInfo, parse_failure
from shared.status import CaptureProgress, ErrorView

VM = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm"


def test_the_status_error_and_the_envelope_error_are_one_model() -> None:
    assert ErrorView is ErrorInfo


def test_status_wire_form_is_camel_case_in_the_fields_order() -> None:
    info = ErrorInfo(
        kind="terminal", step="snapshot", code="X", message="m", resource="r", advice="a", azure_code="X"
    )
    assert json.dumps(info.to_wire()) == (
        '{"step": "snapshot", "code": "X", "message": "m", "kind": "terminal", "resource": "r", '
        '"advice": "a", "azureCode": "X"}'
    )
    # Without a kind (statuses written by hand or by earlier code) no kind appears.
    assert ErrorInfo(step="s", code="c", message="m").to_wire() == {"step": "s", "code": "c", "message": "m"}


def test_envelope_keeps_its_snake_case_keys_and_order() -> None:
    err = AzureOperationError("it broke", step="publish", code="Bad", resource="r", azure_code="Bad")
    envelope = str(err).split("CAPTURE-ERROR<<", 1)[1].rstrip(">")
    assert envelope == (
        '{"kind": "terminal", "step": "publish", "code": "Bad", "message": "it broke", "resource": "r", '
        '"azure_code": "Bad"}'
    )
    assert parse_failure(f"Activity function 'x' failed: {err}") == err.info


def test_what_earlier_code_stored_still_parses() -> None:
    old_envelope = (
        'CAPTURE-ERROR<<{"kind": "transient", "step": "s", "code": "c", "message": "m", "azure_code": "Z"}>>'
    )
    info = parse_failure(old_envelope)
    assert info is not None and info.kind == "transient" and info.azure_code == "Z"
    assert parse_failure('CAPTURE-ERROR<<{"step": 3}>>') is None
    assert parse_failure("CAPTURE-ERROR<<[1]>>") is None
    stored = {
        "captureId": "capture-x",
        "sourceVmId": VM,
        "error": {"step": "cancel", "code": "Canceled", "message": "m", "kind": "terminal", "azureCode": "Q"},
    }
    progress = CaptureProgress.from_wire(stored)
    assert progress.error is not None and progress.error.azure_code == "Q"
    assert progress.to_wire()["error"] == stored["error"]


def test_from_info_redacts_message_and_advice() -> None:
    info = ErrorInfo.terminal(
        "export", "VhdExportFailed", "at https://a/b?sig=secretsecret", advice="x?sig=s"
    )
    shown = ErrorInfo.from_info(info)
    assert "secretsecret" not in shown.message and "sig=s" not in (shown.advice or "")
    assert (shown.step, shown.code, shown.kind) == ("export", "VhdExportFailed", "terminal")


def test_catalog_constructors() -> None:
    pre = ErrorInfo.preflight_failed(VM, ["disk too big.", "region missing"], "vm")
    assert (pre.step, pre.code, pre.kind) == ("preflight", "PreflightFailed", "terminal")
    assert pre.message == "disk too big; region missing" and "vm is untouched" in (pre.advice or "")
    late = ErrorInfo.timed_out("snapshot", "SnapshotTimedOut", "not ready", resource="s", advice="wait")
    assert (late.code, late.kind, late.resource) == ("SnapshotTimedOut", "terminal", "s")
    failed = ErrorInfo.azure_failed(
        "deallocate", None, "m", fallback_code="DeallocateFailed", resource=VM, advice="a", transient=True
    )
    assert (failed.code, failed.azure_code, failed.kind) == ("DeallocateFailed", None, "transient")
    said = ErrorInfo.azure_failed(
        "snapshot", "Conflict", "m", fallback_code="SnapshotFailed", resource=None, advice="a"
    )
    assert (said.code, said.azure_code, said.kind) == ("Conflict", "Conflict", "terminal")
    stop = ErrorInfo.canceled("cancel", "The capture was canceled on request.", resource=VM)
    assert stop.to_wire() == {
        "step": "cancel",
        "code": "Canceled",
        "message": "The capture was canceled on request.",
        "kind": "terminal",
        "resource": VM,
    }


def test_storage_codes_read_as_their_wire_string() -> None:
    assert code_text(StorageErrorCode.CANNOT_VERIFY_COPY_SOURCE) == "CannotVerifyCopySource"
    exc = HttpResponseError(message="copy source unreadable")
    exc.status_code = 409
    exc.error_code = StorageErrorCode.CANNOT_VERIFY_COPY_SOURCE  # type: ignore[attr-defined]
    info = translate_azure_error(exc, step="export").info
    assert info.code == "CannotVerifyCopySource" and info.azure_code == "CannotVerifyCopySource"
    assert "StorageErrorCode" not in info.message
