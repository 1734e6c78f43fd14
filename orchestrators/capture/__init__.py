"""Orchestrator ``capture_image``: from an existing VM to a replicated gallery image version.

The orchestrator is a short shell (``shell``) that runs a plan (``plan.CAPTURE``): an ordered list of
stages, each a generator with its skip rule and compensations (``pipeline`` runs them, with the
cancel safe points, progress tracking and compensation done once for every stage). The stages live
by what they touch: ``vm`` (preflight, prepare, deallocate, generalize), ``snapshots`` (snapshot,
cleanup), ``branches`` (publish ∥ export as sub-orchestrations); ``rules`` holds the pure preflight
rules and ``endings`` the result, cancel and failure reports. See docs/pipeline.md.
"""

from orchestrators.capture.shell import capture_image

__all__ = ["capture_image"]
