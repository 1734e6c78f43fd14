"""The registered orchestrator ``capture_image``: read the input, arm the cancel watch, run the plan.

Every wait is a durable timer (``orchestrators.polling``); every transient failure is retried by
``orchestrators.retrying``; every terminal failure ends the capture with the stage, Azure's code and
message. Progress goes to the custom status (``shared.status.CaptureProgress``).
"""

from __future__ import annotations

from typing import Any

import azure.durable_functions as df

from orchestrators import names
from orchestrators.blueprint import bp
from orchestrators.capture.pipeline import run_plan
from orchestrators.capture.plan import CAPTURE
from orchestrators.capture.run import CaptureRun
from orchestrators.retrying import Gen
from orchestrators.versioning import refuse_unreplayable


@bp.orchestration_trigger(context_name="context", orchestration=names.CAPTURE_IMAGE)
def capture_image(context: df.DurableOrchestrationContext) -> Gen[dict[str, Any]]:
    refuse_unreplayable(context)  # first: before anything an unreplayable history could misdirect
    run = CaptureRun.start(context)
    yield from run.watch.arm()
    return (yield from run_plan(run, CAPTURE))
