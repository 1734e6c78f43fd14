"""How Azure's failures of long-running operations are classified and worded (one translation place)."""

from __future__ import annotations

import json

import pytest
from azure.core.exceptions import DecodeError, HttpResponseError
from azure.mgmt.core.exceptions import ARMErrorFormat
from azure.storage.blob import StorageErrorCode

from activities.image_versions import next_free
from shared.azure_errors import code_text, is_transient, operation_failure, translate_azure_error
from shared.errors import AzureOperationError, TransientAzureError, parse_failure
from tests.activities.arm_responses import ArmResponse


def _poller_failure(code: str, message: str) -> HttpResponseError:
    """What azure-core's LRO poller raises: the 200 operation-status response whose status is Failed."""
    body = {"name": "op", "status": "Failed", "error": {"code": code, "message": message}}
    return HttpResponseError(response=ArmResponse(200, body), error_format=ARMErrorFormat)


@pytest.mark.parametrize("code", ["InternalExecutionError", "InternalOperationError", "OperationPreempted"])
def test_a_failed_operation_with_a_transient_code_is_transient_and_says_azures_code(code: str) -> None:
    err = translate_azure_error(_poller_failure(code, "Please retry later."), step="grant read access")
    assert isinstance(err, TransientAzureError)
    assert err.info.azure_code == code
    assert "Azure answered 200" not in err.info.message
    assert f"ended Failed: {code}: Please retry later." in err.info.message


def test_a_failed_operation_with_a_terminal_code_fails_with_code_message_and_advice() -> None:
    err = translate_azure_error(_poller_failure("InvalidParameter", "bad source"), step="create the version")
    assert isinstance(err, AzureOperationError)
    info = parse_failure(f"Activity function 'x' failed: {err}")
    assert info is not None and info.kind == "terminal" and info.code == "InvalidParameter"
    assert "bad source" in info.message and info.advice and "activity log" in info.advice


def test_an_unreadable_accepted_body_is_transient_not_unexpected() -> None:
    exc = DecodeError(message="JSON is invalid: Expecting value", response=ArmResponse(202, {}))
    err = translate_azure_error(exc, step="create the snapshot", resource="/snap")
    assert isinstance(err, TransientAzureError)
    assert err.info.code == "UnreadableAzureResponse"
    assert "Unexpected" not in err.info.message
    err2 = translate_azure_error(json.JSONDecodeError("Expecting value", "", 0), step="create the snapshot")
    assert isinstance(err2, TransientAzureError)


def test_storage_codes_read_as_azure_spells_them_never_as_an_enum_repr() -> None:
    assert code_text(StorageErrorCode.CANNOT_VERIFY_COPY_SOURCE) == "CannotVerifyCopySource"
    exc = HttpResponseError(response=ArmResponse(403, {}), message="denied")
    exc.error_code = StorageErrorCode.CANNOT_VERIFY_COPY_SOURCE  # type: ignore[attr-defined]
    err = translate_azure_error(exc, step="start the VHD copy")
    assert "CannotVerifyCopySource" in err.info.message and "StorageErrorCode" not in err.info.message


def test_retry_hints_and_codes() -> None:
    assert is_transient("Conflict", 409, "Operation 'x' is not allowed: another operation is in progress")
    assert is_transient("SomethingElse", 409, "Please retry later.")
    assert not is_transient("Conflict", 409, "Run command extension execution is in progress")
    assert not is_transient("OperationNotAllowed", 409, "quota exceeded")
    canceled = operation_failure(None, step="deallocate the VM", status="Canceled")
    assert canceled.info.code == "OperationCanceled" and canceled.info.kind == "terminal"


def test_auto_takes_the_next_patch_after_every_existing_version_and_preflights_candidate() -> None:
    listed = [{"name": "1.0.0"}, {"name": "1.0.7"}, {"name": "0.9.99"}, {"name": "latest"}]
    assert next_free(listed, "1.0.3") == "1.0.8"
    assert next_free(listed, "1.0.12") == "1.0.12"
    assert next_free([], "1.0.0") == "1.0.0"
    assert next_free([{"name": "0.0.2147483647"}], "0.0.2147483648") == "0.0.2147483648"
