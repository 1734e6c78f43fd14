"""The janitor: a timer function that removes what capture runs left behind and no running capture owns.

Schedule: ``JANITOR_SCHEDULE`` (NCRONTAB, default hourly at minute 17). On demand: the host's admin
endpoint ``POST /admin/functions/janitor`` with ``{"input": ""}`` (master key). Per run:

1. scopes: ``JANITOR_SCOPES``, or else the subscriptions named by capture instances created within
   ``JANITOR_LOOKBACK_HOURS`` (their VM's and gallery's subscriptions);
2. scan (``activities.janitor.scan_leftovers``): snapshots, image versions, and the VMs, NICs and disks
   of clones and boot tests (``activities.janitor_vms``), tagged with a run id;
3. per run id, ask the Durable client whether it still runs: its capture instance (derived from the run
   id) is Pending/Running/ContinuedAsNew/Suspended with that run id in its input, or one of the run's
   sub-orchestrations (``<run-id>:version``, ``<run-id>:export:<disk>``) is. An owner that cannot be read
   counts as running: the janitor never acts on doubt;
4. plan (``shared.janitor.plan``: grace period, what may be deleted; snapshots only when the run's
   request, read from the same input, has ``deleteSnapshots`` true) and clean
   (``activities.janitor.clean_leftover``), or only report when ``JANITOR_DRY_RUN`` is true.

One log line per action and one ``janitor summary`` line (JSON of the report: counts, actions, errors;
resource ids only, never a SAS). The results queue is not written: it carries one completion notice per
capture, a contract its consumers parse.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import azure.durable_functions as df
import azure.functions as func

from activities.janitor import clean_leftover, scan_leftovers
from shared.ids import ResourceId
from shared.instances import decoded, input_request
from shared.janitor import (
    CleanInput,
    CleanResult,
    JanitorReport,
    JanitorScope,
    Leftover,
    ScanInput,
    ScanResult,
    capture_id_of,
    plan,
)
from shared.settings import JanitorSettings, get_janitor_settings, janitor_schedule
from shared.sources import source_subscription
from shared.status import export_instance_id, version_instance_id
from triggers.status_reader import is_active, read_instance

log = logging.getLogger(__name__)
janitor_bp = df.Blueprint()

CAPTURE_PREFIX = "capture-"  # shared.ids.capture_instance_id


def _subscriptions_of(raw_input: Any) -> set[str]:
    request = input_request(raw_input)
    if not request:
        return set()
    subs: set[str] = set()
    try:
        subs.add(ResourceId.parse(str(request.get("sourceVmId") or "")).subscription_id)
    except ValueError:
        source_sub = source_subscription(request.get("source"))  # a managed image, snapshots, VHDs
        if source_sub is None:
            return subs
        subs.add(source_sub)
    gallery = request.get("gallery")
    if isinstance(gallery, dict) and gallery.get("subscriptionId"):
        subs.add(str(gallery["subscriptionId"]))
    return subs


async def _scopes(
    client: df.DurableOrchestrationClient, s: JanitorSettings, now: datetime
) -> list[JanitorScope]:
    if s.scopes:
        out = []
        for scope in s.scopes:
            parts = scope.strip("/").split("/")
            out.append(
                JanitorScope(subscription_id=parts[1], resource_group=parts[3] if len(parts) == 4 else None)
            )
        return out
    since = now - timedelta(hours=s.lookback_hours)
    subs: set[str] = set()
    for status in await client.get_status_by(created_time_from=since, instance_id_prefix=CAPTURE_PREFIX):
        full = await read_instance(client, str(status.instance_id), with_input=True)
        subs |= _subscriptions_of(full.input if full is not None else None)
    return [JanitorScope(subscription_id=sub) for sub in sorted(subs)]


@dataclass(frozen=True)
class RunOwner:
    active: bool
    delete_snapshots: bool | None  # the run's request.deleteSnapshots; None when its input is gone


UNKNOWN_OWNER = RunOwner(active=True, delete_snapshots=None)


def _delete_snapshots(raw_input: Any) -> bool | None:
    value = decoded(raw_input)
    request = value.get("request") if isinstance(value, dict) else None
    flag = request.get("deleteSnapshots", True) if isinstance(request, dict) else None
    return flag if isinstance(flag, bool) else None


async def _run_owner(
    client: df.DurableOrchestrationClient, run_id: str, leftovers: list[Leftover]
) -> RunOwner:
    capture = await read_instance(client, capture_id_of(run_id, leftovers[0].capture_id), with_input=True)
    ours = capture is not None and capture.input_run_id == run_id
    delete = _delete_snapshots(capture.input) if capture is not None and ours else None
    if capture is not None and ours and capture.active:
        return RunOwner(active=True, delete_snapshots=delete)
    keys = sorted({lo.disk_key for lo in leftovers if lo.disk_key})
    for sub_id in [version_instance_id(run_id), *(export_instance_id(run_id, k) for k in keys)]:
        if await is_active(client, sub_id):
            return RunOwner(active=True, delete_snapshots=delete)
    return RunOwner(active=False, delete_snapshots=delete)


async def _owners(
    client: df.DurableOrchestrationClient, scan: ScanResult, errors: list[str]
) -> dict[str, RunOwner]:
    by_run: dict[str, list[Leftover]] = {}
    for lo in scan.leftovers:
        by_run.setdefault(lo.run_id, []).append(lo)
    owners: dict[str, RunOwner] = {}
    for run_id, items in by_run.items():
        try:
            owners[run_id] = await _run_owner(client, run_id, items)
        except Exception as exc:  # unknown owner: keep everything of that run
            owners[run_id] = UNKNOWN_OWNER
            errors.append(
                f"could not read the captures of run {run_id} ({type(exc).__name__}); its resources are kept"
            )
    return owners


async def run_janitor(
    client: df.DurableOrchestrationClient, s: JanitorSettings, now: datetime
) -> JanitorReport:
    """One janitor pass (see the module docstring); returns what it did and what it kept, and why."""
    scopes = await _scopes(client, s, now)
    scan = ScanResult.from_wire(await asyncio.to_thread(scan_leftovers, ScanInput(scopes=scopes).to_wire()))
    errors = list(scan.errors)
    owners = await _owners(client, scan, errors)
    report = JanitorReport(
        dry_run=s.dry_run,
        scanned=scan.scanned,
        actions=[],
        kept={},
        errors=errors,
        not_permitted=scan.not_permitted,
    )
    kept: Counter[str] = Counter()
    grace, stuck = timedelta(seconds=s.grace_seconds), timedelta(seconds=s.stuck_creating_seconds)
    for lo in scan.leftovers:
        owner = owners.get(lo.run_id, UNKNOWN_OWNER)
        p = plan(
            lo,
            owned=owner.active,
            now=now,
            grace=grace,
            stuck_creating=stuck,
            delete_snapshots=owner.delete_snapshots,
        )
        if not p.actions:
            kept[p.keep_reason or "kept"] += 1
            continue
        payload = CleanInput(leftover=lo, actions=p.actions, dry_run=s.dry_run).to_wire()
        try:
            done = CleanResult.from_wire(await asyncio.to_thread(clean_leftover, payload))
        except Exception as exc:
            errors.append(f"could not clean {lo.resource_id}: {exc}")
            continue
        for r in done.results:
            log.info("janitor: %s %s (run %s): %s", r.action, r.resource_id, r.run_id, r.detail)
        report.actions.extend(done.results)
    report.kept = dict(kept)
    return report


@janitor_bp.timer_trigger(
    schedule=janitor_schedule(), arg_name="timer", run_on_startup=False, use_monitor=True
)
@janitor_bp.durable_client_input(client_name="client")
async def janitor(timer: func.TimerRequest, client: df.DurableOrchestrationClient) -> None:
    s = get_janitor_settings()
    report = await run_janitor(client, s, datetime.now(UTC))
    log.info("janitor summary: %s", json.dumps(summary_of(report, past_due=timer.past_due), sort_keys=True))


SUMMARY_ITEMS = 100  # every action has its own log line; the summary line stays bounded


def summary_of(report: JanitorReport, *, past_due: bool) -> dict[str, Any]:
    out: dict[str, Any] = report.to_wire()
    out["pastDue"] = past_due
    out["done"] = sum(1 for a in report.actions if a.done)
    for key in ("actions", "errors", "scanned", "notPermitted"):
        items = out.get(key) or []
        if len(items) > SUMMARY_ITEMS:
            out[key] = items[:SUMMARY_ITEMS]
            out[f"{key}Omitted"] = len(items) - SUMMARY_ITEMS
    return out
