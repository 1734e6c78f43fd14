"""Which recorded histories this code can replay: the pipeline's orchestration version.

Every instance carries the version it was created with (host.json ``extensions.durableTask.defaultVersion``
at its creation; ``context.version``; "" or None for instances from before versioning). A deployment that
changes the orchestrators' task order bumps ``PIPELINE_VERSION`` and host.json's ``defaultVersion``
together; an instance of another version that a deployment left running then stops, at its next replay,
with an advice-style error, before it schedules anything (docs/deploying-changes.md).
"""

from __future__ import annotations

import azure.durable_functions as df

from shared.errors import CaptureError, ErrorInfo

PIPELINE_VERSION = "2"
# The versions whose histories this code replays as recorded (the current one only, until a change keeps
# an older task order alongside the new one).
REPLAYABLE_VERSIONS = frozenset({PIPELINE_VERSION})


def refuse_unreplayable(context: df.DurableOrchestrationContext) -> None:
    """Raise a terminal error for an instance whose history this code cannot replay; call it first."""
    version = context.version or None
    if version in REPLAYABLE_VERSIONS:
        return
    info = ErrorInfo.unreplayable(context.instance_id, version, PIPELINE_VERSION)
    raise CaptureError(
        info.message, step=info.step, code=info.code, resource=info.resource, advice=info.advice
    )
