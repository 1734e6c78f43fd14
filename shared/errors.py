"""The capture's error hierarchy and the one place that translates azure-core exceptions.

Activities raise ``CaptureError`` subclasses. Their message carries a machine-readable
envelope so the orchestrator, which only ever sees the failure text the Durable host
passes back (``"Activity function 'x' failed: CaptureError: …"``), can recover the error's
class (transient or terminal), the step, the resource and Azure's code without parsing prose.

Retry ownership (one owner per failure class):
- a single transient HTTP failure (429 with Retry-After, 5xx, connection reset) is retried by
  azure-core's RetryPolicy inside the activity (configured in ``shared.clients``);
- a transient failure that outlasts those retries surfaces as ``TransientAzureError`` and is
  retried by the orchestrator with a durable timer (``orchestrators.retrying``);
- everything else is terminal and fails the capture at once, with Azure's code and message.
"""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import ConfigDict, ValidationError

from shared.model_base import WireModel
from shared.redaction import redact

_ENVELOPE = re.compile(r"CAPTURE-ERROR<<(.*?)>>", re.DOTALL)
# The envelope's keys, in their order (snake_case: failure texts recorded by earlier code carry them so).
_ENVELOPE_KEYS = ("kind", "step", "code", "message", "resource", "advice", "azure_code")


class ErrorInfo(WireModel):
    """What went wrong: the ``error`` of the status API, of the completion notice and of the failure envelope.

    On the wire (``to_wire``) it is camelCase in the field order below; the envelope (``to_dict``) keeps
    the snake_case keys it always had, and both spellings parse. The named constructors below are the
    catalog of the pipeline's own errors; errors from Azure come from ``shared.azure_errors``
    (``translate_azure_error`` and ``operation_failure``).
    """

    model_config = ConfigDict(frozen=True)

    step: str
    code: str
    message: str
    kind: str | None = None  # "transient" | "terminal" (None in statuses written without it: terminal)
    resource: str | None = None
    advice: str | None = None
    azure_code: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The envelope form (snake_case keys, absent values left out)."""
        values = {k: getattr(self, k) for k in _ENVELOPE_KEYS}
        return {k: v for k, v in values.items() if v is not None}

    @classmethod
    def from_info(cls, info: ErrorInfo) -> ErrorInfo:
        """``info`` as shown in a status or notice: message and advice redacted once more."""
        return info.model_copy(
            update={"message": redact(info.message), "advice": redact(info.advice) if info.advice else None}
        )

    @classmethod
    def terminal(
        cls,
        step: str,
        code: str,
        message: str,
        *,
        resource: str | None = None,
        advice: str | None = None,
        azure_code: str | None = None,
    ) -> ErrorInfo:
        """A failure retrying will not fix (the capture stops at once)."""
        return cls(
            kind="terminal",
            step=step,
            code=code,
            message=message,
            resource=resource,
            advice=advice,
            azure_code=azure_code,
        )

    @classmethod
    def preflight_failed(cls, resource: str, problems: list[str], vm_name: str) -> ErrorInfo:
        """The request cannot be captured as asked: every problem, and that nothing was changed."""
        return cls.terminal(
            "preflight",
            "PreflightFailed",
            "; ".join(p.rstrip(". ") for p in problems),
            resource=resource,
            advice=f"Nothing was changed: {vm_name} is untouched. Fix the request and send it again.",
        )

    @classmethod
    def timed_out(cls, step: str, code: str, message: str, *, resource: str | None, advice: str) -> ErrorInfo:
        """A wait of the pipeline's own (a power state, snapshots, replication, a deletion) ran out of time."""
        return cls.terminal(step, code, message, resource=resource, advice=advice)

    @classmethod
    def azure_failed(
        cls,
        step: str,
        azure_code: str | None,
        message: str,
        *,
        fallback_code: str,
        resource: str | None,
        advice: str,
        transient: bool = False,
    ) -> ErrorInfo:
        """An operation Azure reported as failed: Azure's code (``fallback_code`` when it gave none)."""
        info = cls.terminal(
            step,
            azure_code or fallback_code,
            message,
            resource=resource,
            advice=advice,
            azure_code=azure_code,
        )
        return info.model_copy(update={"kind": "transient"}) if transient else info

    @classmethod
    def unreplayable(cls, instance_id: str, version: str | None, current: str) -> ErrorInfo:
        """A deployment replaced the code of a running instance with code that cannot replay its history."""
        started = (
            f"pipeline version {version}" if version else "a pipeline from before orchestration versioning"
        )
        return cls.terminal(
            "deploy",
            "UnreplayableHistory",
            f"Instance {instance_id} was started by {started}; this code (version {current}) cannot replay its "
            "history, so it stopped before doing anything more.",
            resource=instance_id,
            advice="Drain running captures before deploying an orchestrator change (README: Deploying). Start the "
            "capture again (a VM it already generalized is captured as it is); what this run left (snapshots, an "
            "export access, a half-made image version) is removed by the janitor (docs/janitor.md).",
        )

    @classmethod
    def boot_test_failed(
        cls, version_id: str, failures: list[tuple[str, str, str]], *, deleted: bool
    ) -> ErrorInfo:
        """A test VM from the new version did not boot (or its smoke script failed) in some regions:
        ``failures`` are (region, code as Azure spells it, message); the version was not promoted."""
        regions = "; ".join(f"{region}: {code}: {message.rstrip('. ')}" for region, code, message in failures)
        kept = (
            f'The image version {version_id} was deleted (verify.onFailure "delete").'
            if deleted
            else f"The image version {version_id} stays excluded from latest (it was not promoted)."
        )
        codes = {code for _, code, _ in failures}
        return cls.terminal(
            "verify",
            "BootTestFailed",
            f"The boot test of {version_id} failed in {len(failures)} region(s): {regions}. {kept}"[:4000],
            resource=version_id,
            advice=" ".join(
                dict.fromkeys(_BOOT_ADVICE.get(c, _BOOT_ADVICE[""]) for c in sorted(codes, key=_advice_order))
            )
            + " The test VMs were deleted.",
            azure_code=failures[0][1] if failures else None,
        )

    @classmethod
    def canceled(cls, step: str, message: str, *, resource: str | None = None) -> ErrorInfo:
        """The capture (or one of its branches) stopped because a cancel was requested."""
        return cls(step=step, code="Canceled", kind="terminal", message=message, resource=resource)


class CaptureError(Exception):
    """Base of every error the capture reports. ``str()`` embeds the envelope for the orchestrator."""

    kind = "terminal"
    default_code = "CaptureFailed"

    def __init__(
        self,
        message: str,
        *,
        step: str,
        code: str | None = None,
        resource: str | None = None,
        advice: str | None = None,
        azure_code: str | None = None,
    ) -> None:
        self.info = ErrorInfo(
            kind=self.kind,
            step=step,
            code=code or self.default_code,
            message=redact(message),
            resource=resource,
            advice=redact(advice) if advice else None,
            azure_code=azure_code,
        )
        super().__init__(self._render())

    def _render(self) -> str:
        human = self.info.message + (f" {self.info.advice}" if self.info.advice else "")
        payload = json.dumps(self.info.to_dict(), ensure_ascii=True).replace(">", "\\u003e")
        return f"{human} CAPTURE-ERROR<<{payload}>>"


class TransientAzureError(CaptureError):
    """Azure kept failing in a way that may pass (throttling, 5xx, timeouts): worth retrying later."""

    kind = "transient"
    default_code = "AzureTransient"


class AzureOperationError(CaptureError):
    """Azure refused or failed an operation for a reason that retrying will not fix."""

    default_code = "AzureOperationFailed"


class PreflightError(CaptureError):
    """The request cannot be captured as asked; nothing irreversible has happened."""

    default_code = "PreflightFailed"


class GuestPreparationError(CaptureError):
    """The in-guest deprovision/sysprep step failed or did not stop the VM in time."""

    default_code = "GuestPreparationFailed"


def parse_failure(text: str) -> ErrorInfo | None:
    """Recover the ``ErrorInfo`` from a failure message the Durable SDK raised in an orchestrator."""
    m = _ENVELOPE.search(text)
    if not m:
        return None
    try:
        return ErrorInfo.model_validate(json.loads(m.group(1)))
    except (ValueError, ValidationError):
        return None


# What to do about a failed boot test, by Azure's code (ErrorInfo.boot_test_failed; docs/azure-facts.md#boot-tests).
_BOOT_ADVICE = {
    "OSProvisioningTimedOut": "OSProvisioningTimedOut: the guest was probably not deprovisioned before it was "
    'captured as generalized. Capture again with prepare "deprovision", or deprovision it yourself first (Linux: '
    "waagent -deprovision+user; Windows: sysprep /generalize /oobe) and check the agent (waagent/cloud-init, "
    'sysprep logs) before prepare "none".',
    "OSProvisioningClientError": "OSProvisioningClientError: the guest was prepared but its provisioning failed "
    "(the Linux agent or cloud-init, the user name, SSH host keys, or sysprep's answer): check the guest's "
    "waagent/cloud-init or sysprep logs, fix the source and capture again.",
    "SmokeTestFailed": "SmokeTestFailed: the VM booted but verify.smokeScript failed on it: read its output "
    "above, then fix the image or the script.",
    "": "See Azure's message for the region; fix the cause and capture again.",
}


def _advice_order(code: str) -> tuple[int, str]:
    return (0 if code in _BOOT_ADVICE else 1, code)
