"""The registered orchestrator ``capture_image``: read the input, arm the cancel watch, run the mode's plan.

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
from orchestrators.capture.plan import plan_for, reported_stages
from orchestrators.capture.run import CaptureRun
from orchestrators.retrying import Gen
from orchestrators.versioning import refuse_unreplayable
from shared.contracts import CaptureInput


@bp.orchestration_trigger(context_name="context", orchestration=names.CAPTURE_IMAGE)
def capture_image(context: df.DurableOrchestrationContext) -> Gen[dict[str, Any]]:
    refuse_unreplayable(context)  # first: before anything an unreplayable history could misdirect
    plan = plan_for(CaptureInput.from_wire(context.get_input()).request)
    run = CaptureRun.start(context, reported_stages(plan))
    yield from run.watch.arm()
    return (yield from run_plan(run, plan))
