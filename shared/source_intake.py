"""The intake rules of a capture request's ``source`` (``shared.sources``): every problem at once.

``source_errors`` runs on the raw body (``shared.requests.validate_request``) beside the model's own
field checks: more than one form or none, ``sourceVmId`` beside another source, a VM-only field
(``captureMode``, ``prepare``, ``consistency``, ``vhdExport``) with another form, a ``source`` option
that does not go with the form, and a VHD URI outside the named account's blob endpoint of this cloud
(the app sends its storage token there to read the VHD footer: ``shared.endpoints``).
"""

from __future__ import annotations

import re
from typing import Any

from shared import endpoints
from shared.field_errors import FieldError
from shared.hosts import bad_character, split_url
from shared.ids import ResourceId
from shared.request_rules import CONTAINER
from shared.sources import FORM_FIELDS, VHD_NEEDS_OS, VM_ONLY_FIELDS, form_count_problem, form_options

# Blob names: the characters this app accepts in a VHD source (a subset of Azure's, our text): no query,
# no percent-encoding, no empty, '.' or '..' path segment, at most 1024 characters.
_BLOB_NAME = re.compile(r"[A-Za-z0-9._~-]+(/[A-Za-z0-9._~-]+)*")
BLOB_NAME_MAX = 1024


# --- intake ------------------------------------------------------------------------------------


def vhd_uri_problem(uri: str, account: str, storage: endpoints.StorageEndpoints) -> str | None:
    """Why ``uri`` may not be read with the app's storage token as a blob of ``account``, or None.

    The URI must be ``<account's blob endpoint of this cloud>/<container>/<blob>``: the host is then one
    the cloud's storage suffix (or the configured endpoint template) proves, never one the request chose.
    """
    base = storage.pattern.replace(endpoints.ACCOUNT_PLACEHOLDER, account)
    if bad_character(uri):
        return "must not contain whitespace, control characters (CR, LF) or backslashes"
    parts = split_url(uri)
    if parts is None or parts.scheme != "https":
        return f"must be an https URL of a blob in {account}: {base}/<container>/<blob>.vhd"
    if "@" in parts.authority or "?" in parts.rest or "#" in parts.rest:
        return (
            "must not carry credentials, a query string (no SAS: the app reads the blob with its managed "
            "identity) or a fragment"
        )
    canonical = f"https://{parts.authority.lower()}{parts.rest}"
    if not canonical.startswith(base + "/"):
        return (
            f"is not a blob of the storage account {account} (storageAccountId) in this cloud: use "
            f"{base}/<container>/<blob>.vhd"
        )
    container, _, blob = canonical[len(base) + 1 :].partition("/")
    if not CONTAINER.match(container):
        return f"container {container[:70]!r}: names are 3-63 lowercase letters, digits and single hyphens"
    if not blob or len(blob) > BLOB_NAME_MAX or not _BLOB_NAME.fullmatch(blob):
        return "the blob name must be 1-1024 letters, digits and '.', '_', '~', '-' in '/'-separated parts"
    if any(seg in (".", "..") for seg in blob.split("/")):
        return "the blob name must not have '.' or '..' path segments"
    return None


def _vhd_uri_errors(vhds: Any, storage: endpoints.StorageEndpoints) -> list[FieldError]:
    if not isinstance(vhds, dict) or not isinstance(vhds.get("storageAccountId"), str):
        return []
    try:
        account = ResourceId.parse(vhds["storageAccountId"]).name
    except ValueError:
        return []
    blobs: list[tuple[str, Any]] = []
    if isinstance(vhds.get("os"), dict):
        blobs.append(("source.vhds.os.uri", vhds["os"].get("uri")))
    for i, disk in enumerate(vhds.get("data") or [] if isinstance(vhds.get("data"), list) else []):
        if isinstance(disk, dict):
            blobs.append((f"source.vhds.data[{i}].uri", disk.get("uri")))
    errors = []
    for path, uri in blobs:
        problem = vhd_uri_problem(uri, account, storage) if isinstance(uri, str) else None
        if problem:
            errors.append(FieldError(field=path, message=problem))
    return errors


def _vm_field_errors(data: dict[str, Any], form: str) -> list[FieldError]:
    """The VM-only request fields sent with a source of another kind (``form``: its field name)."""
    errors = [
        FieldError(
            field=f,
            message=f"applies only to a VM source (source.vmId); this source is {form}: leave {f} out",
        )
        for f in VM_ONLY_FIELDS
        if data.get(f) is not None
    ]
    if data.get("vhdExport") is not None:
        errors.append(
            FieldError(
                field="vhdExport",
                message="exports the snapshots of a VM capture: only with a VM source (source.vmId)",
            )
        )
    return errors


def _option_errors(source: dict[str, Any], form: str) -> list[FieldError]:
    """The ``source`` fields that do not go with its form, and those its form requires."""
    kind = FORM_FIELDS[form]
    errors = [
        FieldError(
            field=f"source.{option}",
            message=f"only with {' or '.join(kinds)}: a {form} source says it itself",
        )
        for option, kinds in form_options().items()
        if source.get(option) is not None and kind not in kinds
    ]
    if kind == "vhds":
        errors += [
            FieldError(field=f"source.{option}", message=f"required with vhds: {VHD_NEEDS_OS}")
            for option in ("osType", "hyperVGeneration")
            if source.get(option) is None
        ]
    return errors


def _vm_id_errors(data: dict[str, Any], given: list[str]) -> list[FieldError]:
    """``sourceVmId`` beside ``source``: only as the same VM."""
    old = data.get("sourceVmId")
    if old is None or data.get("source") is None:
        return []
    if given != ["vmId"]:
        message = "give the VM as source.vmId or sourceVmId, not beside another source"
    elif data["source"].get("vmId") != old:
        message = "names another VM than source.vmId: send one of them"
    else:
        return []
    return [FieldError(field="sourceVmId", message=message)]


def source_errors(data: dict[str, Any], storage: endpoints.StorageEndpoints) -> list[FieldError]:
    """The request-level rules of ``source``, every one at once (the model checks each field's shape)."""
    source = data.get("source")
    if source is None:
        if data.get("sourceVmId") is None and data.get("source_vm_id") is None:
            return [FieldError(field="source", message=form_count_problem([]) + " (or sourceVmId)")]
        return []
    if not isinstance(source, dict):
        return []  # the model says it must be an object
    given = [f for f in FORM_FIELDS if source.get(f) is not None]
    errors = _vm_id_errors(data, given)
    if len(given) != 1:
        return [FieldError(field="source", message=form_count_problem(given)), *errors]
    form = given[0]
    if form != "vmId":
        errors += _vm_field_errors(data, form)
    errors += _option_errors(source, form)
    if form == "vhds":
        errors += _vhd_uri_errors(source.get("vhds"), storage)
    return errors


def is_vm_source(data: dict[str, Any]) -> bool:
    """Whether a raw request body is of a VM: ``sourceVmId`` alone, or ``source.vmId``."""
    source = data.get("source")
    if not isinstance(source, dict):
        return True
    return [f for f in FORM_FIELDS if source.get(f) is not None] == ["vmId"]
