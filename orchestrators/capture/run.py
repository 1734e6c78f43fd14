"""What one execution of a capture run carries from stage to stage, and the progress it publishes.

``CaptureRun`` is built from the orchestration input; each stage reads what earlier stages found
(the VM's facts, the preflight's answers, the snapshots) and adds its own. ``Tracker`` keeps
``CaptureProgress`` and publishes it as custom status at every change (replay-safe).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import azure.durable_functions as df

from orchestrators.calls import Calls
from orchestrators.cancellation import CancelWatch
from orchestrators.timing import elapsed_seconds, iso, parse_iso
from shared.contracts import (
    CaptureInput,
    GalleryCheckResult,
    OsState,
    SnapshotResult,
    TargetRegion,
    VmFacts,
)
from shared.errors import ErrorInfo
from shared.requests import CaptureRequest, GalleryRef
from shared.sources import SourceFacts
from shared.status import STAGES, CaptureProgress, Stage, StageTiming
from shared.trace_ids import TraceRef


def _close(s: StageTiming, state: str, ended: str) -> None:
    s.state, s.ended = state, ended  # type: ignore[assignment]
    if s.started:
        s.seconds = round(elapsed_seconds(s.started, parse_iso(s.ended)), 3)


class Tracker:
    """Keeps ``CaptureProgress`` and publishes it as custom status at every change (replay-safe)."""

    def __init__(self, context: df.DurableOrchestrationContext, progress: CaptureProgress) -> None:
        self.context = context
        self.progress = progress

    def now(self) -> str:
        return iso(self.context.current_utc_datetime)

    def publish(self) -> None:
        self.context.set_custom_status(self.progress.to_wire())

    def begin(self, name: Stage) -> None:
        s = self.progress.stage_of(name)
        s.state, s.started = "running", self.now()
        self.progress.stage = name
        self.publish()

    def end(
        self,
        name: Stage,
        *,
        note: str | None = None,
        state: str = "succeeded",
        started: str | None = None,
        ended: str | None = None,
    ) -> None:
        """Close a stage; ``started``/``ended`` override the times when a sub-orchestration knows them better."""
        s = self.progress.stage_of(name)
        s.started = started or s.started
        _close(s, state, ended or self.now())
        s.note = note or s.note
        self.publish()

    def skip(self, name: Stage, note: str) -> None:
        s = self.progress.stage_of(name)
        s.state, s.note = "skipped", note
        self.publish()

    def close_running(self, state: str) -> None:
        """End every running stage as ``state`` (failed / canceled), without publishing."""
        for s in self.progress.stages:
            if s.state == "running":
                _close(s, state, self.now())

    def fail(self, info: ErrorInfo) -> None:
        self.close_running("failed")
        self.progress.state = "failed"
        self.progress.error = ErrorInfo.from_info(info)
        self.publish()

    def timings(self) -> dict[str, float]:
        return {s.name: s.seconds for s in self.progress.stages if s.seconds is not None}


@dataclass
class CaptureRun:
    """One capture run's state inside one orchestration execution."""

    context: df.DurableOrchestrationContext
    inp: CaptureInput
    t: Tracker
    watch: CancelWatch
    started_at: str
    facts: VmFacts | None = None
    gallery_check: GalleryCheckResult | None = None
    regions: list[TargetRegion] = field(default_factory=list)
    snapshots: list[SnapshotResult] = field(default_factory=list)
    branches_settled: bool = True  # False while a sub-orchestration might still hold snapshot access
    deleted: list[str] = field(default_factory=list)  # snapshots the cleanup saw gone
    deferred: ErrorInfo | None = None  # a branch's failure, raised once the cleanup ran
    restarted: bool = False  # the VM this run deallocated runs again (specialized, consistency stopped)
    source: SourceFacts | None = None  # a source that is not a VM, as preflight read it (capture.sources)

    @classmethod
    def start(cls, context: df.DurableOrchestrationContext, stages: Sequence[Stage] = STAGES) -> CaptureRun:
        """The run of the orchestration's input; its status lists ``stages`` (its plan's)."""
        inp = CaptureInput.from_wire(context.get_input())
        specialized = inp.request.capture_mode == "specialized"  # (its source stays untouched)
        vm_source = inp.request.source_kind == "vm"  # other sources have no capture mode (status: "none")
        # run_id is this capture RUN's id (shared.ids.new_run_id): every snapshot/blob name, ownership tag
        # and sub-orchestration id derives from it, so a later capture of the same VM (same instance id,
        # inp.capture_id) never takes an earlier run's version, snapshots or exports for its own.
        progress = CaptureProgress(
            capture_id=inp.capture_id,
            run_id=inp.run_id,
            source_vm_id=inp.request.source_vm_id,
            source_kind=inp.request.source_kind,
            source_id=inp.request.source_id,
            export=inp.request.vhd_export is not None,
            stages=[StageTiming(name=s) for s in stages],
            capture_mode=inp.request.capture_mode if vm_source else "none",
            source_state="untouched",  # inPlace: "deprovisioned", then "generalized", as it happens
            # inPlace: the guest shut down; specialized: known once preflight read the power state.
            consistency=None if specialized or not vm_source else "stopped",
        )
        t = Tracker(context, progress)
        t.publish()
        return cls(context=context, inp=inp, t=t, watch=CancelWatch(context), started_at=t.now())

    @property
    def req(self) -> CaptureRequest:
        return self.inp.request

    @property
    def run_id(self) -> str:
        return self.inp.run_id

    @property
    def progress(self) -> CaptureProgress:
        return self.t.progress

    @property
    def os_state(self) -> OsState:
        """The image's OS state: the capture mode's."""
        return "Specialized" if self.req.capture_mode == "specialized" else "Generalized"

    @property
    def vm(self) -> VmFacts:
        """The VM's facts (read by preflight, the first stage)."""
        if self.facts is None:
            raise RuntimeError("the preflight stage has not read the VM's facts yet")
        return self.facts

    @property
    def checked(self) -> GalleryCheckResult:
        """The gallery check's answer (preflight)."""
        if self.gallery_check is None:
            raise RuntimeError("the preflight stage has not checked the gallery yet")
        return self.gallery_check

    @property
    def gallery(self) -> GalleryRef:
        """The gallery, in the gallery's subscription."""
        return self.req.gallery.model_copy(update={"subscription_id": self.req.gallery_subscription_id})

    def calls(self, step: str, *, patient: bool = False) -> Calls:
        # Activities of a stage trace under its span; the others (cancel, notify) under the run's root.
        trace = TraceRef(run_id=self.run_id, stage=step if step in Stage.__members__.values() else None)
        return Calls(self.context, self.inp.policy, step, patient=patient, trace=trace)
