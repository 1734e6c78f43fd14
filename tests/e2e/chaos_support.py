"""The crash-and-fault chaos run: a seeded plan, a stack with azsim faults, random SIGKILLs of devhost,
the invariants every capture must satisfy, the janitor, and a local webhook receiver that logs all it gets.

Everything random comes from one seed (``ChaosPlan.seed``): the fault rules (azsim draws each rule's
firings from its own RNG seeded by it) and the kill delays. Kills happen at wall-clock moments, so a
replay with the same seed reproduces the plan, not the exact interleaving.
"""

from __future__ import annotations

import contextlib
import json
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from azsim.testing import local_cloud
from devhost.testing import running_devhost
from tests.support.http import http
from tests.support.policy import FAST_POLICY, QUEUE_SETTINGS, TERMINAL
from tests.support.stack import Stack
from tests.support.worlds import REPO_ROOT, WORLD

MC = "Microsoft.Compute"
RUN_TAG = "image-pipeline:run-id"
TRANSIENT_LRO_CODES = ("InternalExecutionError", "InternalOperationError")
# ARM writes and actions of the capture (reads are left alone: the task is faults on what changes Azure).
WRITE_ACTIONS = (f"{MC}/*/write", f"{MC}/*/action", f"{MC}/*/delete")
STATUS_FAULTS = ((500, "InternalServerError"), (503, "ServiceUnavailable"), (429, "TooManyRequests"))


@dataclass(frozen=True)
class ChaosPlan:
    seed: int
    vms: tuple[str, ...]
    kill_delays: tuple[float, ...]  # seconds between restarts (or the start) and each SIGKILL
    pause_after_kill: tuple[float, ...]  # seconds devhost stays down
    fault_probability: float  # per ARM write/action, over all rules
    webhook_vm: str
    no_export_vms: frozenset[str]

    @classmethod
    def make(
        cls, seed: int, vms: tuple[str, ...], kills: tuple[int, int], window: tuple[float, float]
    ) -> ChaosPlan:
        rng = random.Random(seed)
        n = rng.randint(*kills)
        return cls(
            seed=seed,
            vms=vms,
            kill_delays=tuple(round(rng.uniform(*window), 2) for _ in range(n)),
            pause_after_kill=tuple(round(rng.uniform(0.0, 1.5), 2) for _ in range(n)),
            fault_probability=round(rng.uniform(0.10, 0.20), 3),
            webhook_vm=rng.choice(vms),
            # Some captures export (to the allow-listed stexports), the others do not.
            no_export_vms=frozenset(v for i, v in enumerate(vms) if i % 3 == 2),
        )

    def fault_rules(self) -> dict[str, Any]:
        """Half the probability as transient status answers, half as transient LRO failures."""
        rng = random.Random(self.seed ^ 0x5EED)
        # The three action patterns are disjoint: a request meets one pattern's rules only.
        per_status = self.fault_probability / 2 / len(STATUS_FAULTS)
        per_lro = self.fault_probability / 2 / len(TRANSIENT_LRO_CODES)
        rules: list[dict[str, Any]] = []
        for action in WRITE_ACTIONS:
            for status, code in STATUS_FAULTS:
                rules.append(
                    {
                        "name": f"status-{status}-{action.rsplit('/', 1)[1]}",
                        "match": {"action": action},
                        "effect": {"type": "status", "status": status, "code": code, "retryAfter": 1},
                        "probability": round(per_status, 4),
                    }
                )
            for code in TRANSIENT_LRO_CODES:
                rules.append(
                    {
                        "name": f"lro-{code}-{action.rsplit('/', 1)[1]}",
                        "match": {"action": action},
                        "effect": {
                            "type": "lroFailure",
                            "code": code,
                            "message": f"Please retry later (azsim chaos {rng.randrange(10**6)}).",
                        },
                        "probability": round(per_lro, 4),
                    }
                )
        # One more, certain to fire once at a seeded position among the writes, so no run goes fault-free
        # (a run of three captures makes only ~35 writes and actions).
        rules.append(
            {
                "name": "lro-once-seeded",
                "match": {"action": WRITE_ACTIONS[0]},
                "effect": {"type": "lroFailure", "code": "InternalExecutionError"},
                "after": rng.randint(0, 8),
                "count": 1,
            }
        )
        return {"rules": rules}

    def describe(self) -> str:
        return (
            f"chaos seed {self.seed} (replay: CHAOS_SEED={self.seed}): vms={list(self.vms)} "
            f"kills after {list(self.kill_delays)} s, down {list(self.pause_after_kill)} s, "
            f"fault probability {self.fault_probability}, webhook on {self.webhook_vm}, "
            f"no export on {sorted(self.no_export_vms)}"
        )


class LoggingWebhookReceiver:
    """A local HTTP server on 127.0.0.1 that records every POST (headers and raw body) and logs it to a file."""

    def __init__(self, log_path: Path) -> None:
        self.bodies: list[str] = []
        self.log_path = log_path
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                text = raw.decode("utf-8", "replace")
                with receiver._lock:
                    receiver.bodies.append(text)
                    with receiver.log_path.open("a") as log:
                        log.write(f"POST {self.path}\n{self.headers}{text}\n")
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                with receiver._lock, receiver.log_path.open("a") as log:
                    log.write(format % args + "\n")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/chaos"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> LoggingWebhookReceiver:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_path.touch()
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()

    def notices(self) -> list[dict[str, Any]]:
        with self._lock:
            return [json.loads(b) for b in self.bodies]


def world_with_clones(path: Path, clones: int) -> Path:
    """examples/world.json plus ``clones`` copies of vm-web-3 named vm-chaos-<i> (the longer variant)."""
    world = json.loads(WORLD.read_text())
    base = next(v for v in world["virtualMachines"] if v["name"] == "vm-web-3")
    for i in range(clones):
        clone = json.loads(json.dumps(base))
        clone["name"] = f"vm-chaos-{i}"
        clone["osDisk"]["name"] = f"vm-chaos-{i}_OsDisk"
        world["virtualMachines"].append(clone)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(world))
    return path


@contextlib.contextmanager
def chaos_stack(
    workdir: Path, plan: ChaosPlan, clones: int = 0, latency: dict[str, float] | None = None
) -> Iterator[Stack]:
    workdir.mkdir(parents=True, exist_ok=True)
    faults = workdir / "faults.json"
    faults.write_text(json.dumps(plan.fault_rules()))
    latency_file = None
    if latency is not None:
        latency_file = workdir / "latency.json"
        latency_file.write_text(json.dumps(latency))
    world = world_with_clones(workdir / "world.json", clones) if clones else WORLD
    with local_cloud(
        workdir / "azsim", world=world, time_scale=0.003, faults=faults, latency=latency_file, seed=plan.seed
    ) as cloud:
        env = {
            **dict(cloud),
            **FAST_POLICY,
            **QUEUE_SETTINGS,
            "NOTICE_ALLOW_LOOPBACK_WEBHOOKS": "true",
            "JANITOR_GRACE_SECONDS": "0",
            "JANITOR_SCOPES": f"/subscriptions/{cloud.subscription_id}",
            # Only on demand (admin endpoint): never on its own schedule in the middle of the run.
            "JANITOR_SCHEDULE": "0 0 0 1 1 *",
        }
        with running_devhost(REPO_ROOT, workdir / "devhost", env=env) as dh:
            stack = Stack(cloud=cloud, devhost=dh, workdir=workdir)
            with cloud.apply():
                yield stack


@dataclass
class ChaosRun:
    plan: ChaosPlan
    ids: dict[str, str] = field(default_factory=dict)  # vm -> capture id
    statuses: dict[str, dict[str, Any]] = field(default_factory=dict)
    kills: list[float] = field(default_factory=list)  # seconds since the start, per kill
    kill_times: list[str] = field(default_factory=list)  # UTC wall clock of each kill (to read the logs)
    janitor: list[dict[str, Any]] = field(default_factory=list)
    janitor_lines: list[str] = field(default_factory=list)
    faults: dict[str, int] = field(default_factory=dict)
    faulted: list[str] = field(default_factory=list)  # one line per faulted ARM request
    wall: float = 0.0


def start_captures(stack: Stack, plan: ChaosPlan, hook_url: str) -> dict[str, str]:
    ids = {}
    for vm in plan.vms:
        extra: dict[str, Any] = {"version": "auto"}
        if vm == plan.webhook_vm:
            extra["notify"] = {"webhookUrl": hook_url}
        body = stack.request(vm, export=vm not in plan.no_export_vms, **extra)
        code, answer, _ = stack.post(body)
        assert code == 202, f"{plan.describe()}\nPOST for {vm} answered {code}: {answer}"
        ids[vm] = answer["id"]
    return ids


def _all_terminal(stack: Stack, ids: dict[str, str]) -> bool:
    for cid in ids.values():
        code, body = stack.status(cid)
        if code != 200 or body["runtimeStatus"] not in TERMINAL:
            return False
    return True


def kill_and_restart(stack: Stack, run: ChaosRun, t0: float) -> None:
    """SIGKILL devhost after each planned delay (while some capture still runs), restart it on the same work dir."""
    for delay, down in zip(run.plan.kill_delays, run.plan.pause_after_kill, strict=True):
        time.sleep(delay)
        if _all_terminal(stack, run.ids):
            return  # nothing left to interrupt: later kills would test only a restart
        stack.devhost.kill()
        run.kills.append(round(time.monotonic() - t0, 2))
        run.kill_times.append(time.strftime("%H:%M:%S", time.gmtime()))
        time.sleep(down)
        stack.devhost.restart()


def wait_all(stack: Stack, run: ChaosRun, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for vm, cid in run.ids.items():
        run.statuses[vm] = stack.wait(cid, timeout=max(5.0, deadline - time.monotonic()))


def wait_instances_settled(stack: Stack, timeout: float) -> list[str]:
    """Wait until no orchestration instance (captures and their sub-orchestrations) is active; return the rest."""
    deadline = time.monotonic() + timeout
    active: list[str] = []
    while time.monotonic() < deadline:
        code, body, _ = http("GET", stack.devhost.url("/runtime/webhooks/durabletask/instances"))
        assert code == 200, body
        items = body if isinstance(body, list) else body.get("value", [])
        active = [
            f"{i['instanceId']} {i['runtimeStatus']}"
            for i in items
            if i["runtimeStatus"] in ("Pending", "Running", "ContinuedAsNew", "Suspended")
        ]
        if not active:
            return []
        time.sleep(0.5)
    return active


def run_janitor(stack: Stack, timeout: float = 90.0) -> tuple[dict[str, Any], list[str]]:
    """One janitor pass through the admin endpoint: its summary and every janitor log line of that pass."""
    before_lines = len(stack.devhost.log_text().splitlines())
    before = stack.devhost.log_text().count("janitor summary: ")
    code, body, _ = http("POST", stack.devhost.url("/admin/functions/janitor"), {"input": ""})
    assert code == 202, body
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = stack.devhost.log_text().splitlines()
        summaries = [x for x in lines if "janitor summary: " in x]
        if len(summaries) > before:
            summary = json.loads(summaries[before].split("janitor summary: ", 1)[1])
            new = [x for x in lines[before_lines:] if "janitor" in x.lower()]
            return dict(summary), new
        time.sleep(0.3)
    raise AssertionError(f"no janitor summary within {timeout}s\n{stack.devhost.log_tail(40)}")


def faults_fired(stack: Stack) -> tuple[dict[str, int], list[str]]:
    """Count per injected fault kind, and one line per faulted request (time, method, path, fault)."""
    out: dict[str, int] = {}
    lines = []
    for entry in stack.sim("requests")["value"]:
        if entry.get("fault"):
            out[entry["fault"]] = out.get(entry["fault"], 0) + 1
            path = str(entry.get("path", "")).split("/providers/", 1)[-1]
            lines.append(f"{entry.get('time', '')[11:23]} {entry.get('method')} {path} {entry['fault']}")
    return out, lines


def run_snapshots(stack: Stack) -> dict[str, dict[str, str]]:
    """Every snapshot the pipeline made (tagged with a run id), id -> tags."""
    return {
        s.id: dict(s.tags or {})
        for s in stack.compute().snapshots.list()
        if RUN_TAG in (s.tags or {}) or "image-pipeline:capture-id" in (s.tags or {})
    }


def versions_of(stack: Stack, definition: str) -> list[Any]:
    try:
        return list(
            stack.compute().gallery_image_versions.list_by_gallery_image(
                "rg-images", "galContoso", definition
            )
        )
    except Exception as exc:  # no definition (the capture failed before publish): no version
        if "NotFound" in type(exc).__name__ or "NotFound" in str(exc):
            return []
        raise


# --- the invariants ---------------------------------------------------------------------------


def capture_violations(
    stack: Stack, vm: str, status: dict[str, Any], snapshots: dict[str, dict[str, str]]
) -> list[str]:
    """What is wrong with one finished capture (empty: it satisfies the invariants).

    Completed: exactly one image version in its definition, tagged with its run id, Succeeded.
    Failed: before generalize (the VM is not generalized in azsim) — or its error says the VM is
    generalized and names every leftover of its run (snapshots, a version not usable, open access).
    ``snapshots`` is every pipeline snapshot before the janitor ran.
    """
    state = status["runtimeStatus"]
    run_id = status.get("runId") or ""
    generalized = bool(stack.vm_state(vm)["generalized"])
    versions = versions_of(stack, f"{vm}-def")
    if state == "Completed":
        return _completed_violations(vm, status, versions, run_id)
    if state != "Failed":
        return [f"{vm}: ended {state}, neither Completed nor Failed: {json.dumps(status.get('error'))[:600]}"]
    if not generalized:
        problems = [f"{vm}: failed before generalize but made version {v.name}" for v in versions]
        if status.get("generalized"):
            problems.append(f"{vm}: status says generalized, azsim says it is not")
        return problems
    err = status.get("error") or {}
    message = str(err.get("message", ""))
    problems = []
    if "is generalized and can no longer be started" not in message:
        problems.append(f"{vm}: failed after generalize without saying so: {message[:600]}")
    for sid, tags in snapshots.items():
        if tags.get(RUN_TAG) == run_id and sid.lower() not in message.lower():
            problems.append(f"{vm}: leftover snapshot {sid} not named in the error: {message[:600]}")
    for v in versions:
        usable = v.provisioning_state == "Succeeded" and "is Completed and usable" in message
        if (v.tags or {}).get(RUN_TAG) == run_id and v.id.lower() not in message.lower() and not usable:
            problems.append(
                f"{vm}: leftover version {v.id} ({v.provisioning_state}) not named: {message[:600]}"
            )
    open_access = [
        d["id"] for d in stack.sim("state")["disks"] if d.get("activeAccess") and run_id in d["id"]
    ]
    if open_access and "Read access (SAS) may still be active" not in message:
        problems.append(f"{vm}: active access on {open_access} not named in the error: {message[:600]}")
    return problems


def _completed_violations(vm: str, status: dict[str, Any], versions: list[Any], run_id: str) -> list[str]:
    names = [f"{v.name}:{v.provisioning_state}:{(v.tags or {}).get(RUN_TAG)}" for v in versions]
    if len(versions) != 1:
        return [f"{vm}: Completed with {len(versions)} image versions, not one: {names}"]
    v = versions[0]
    problems = []
    if v.name != (status.get("result") or {}).get("imageVersion"):
        problems.append(f"{vm}: the version {v.name} is not the one reported: {status.get('result')}")
    if (v.tags or {}).get(RUN_TAG) != run_id:
        problems.append(f"{vm}: the version {v.name} is not tagged with run {run_id}: {v.tags}")
    if v.provisioning_state != "Succeeded":
        problems.append(f"{vm}: the version {v.name} is {v.provisioning_state}, not Succeeded")
    return problems


def notice_violations(run: ChaosRun, notices: list[dict[str, Any]]) -> list[str]:
    """The webhook capture's notice arrived (at least once: a kill may repeat a delivery), with its outcome."""
    vm = run.plan.webhook_vm
    status = run.statuses[vm]
    mine = [n for n in notices if n.get("captureId") == run.ids[vm]]
    if not mine:
        return [f"{vm}: no notice reached the webhook (got {len(notices)} for other captures)"]
    want = str(status["runtimeStatus"]).lower()
    return [
        f"{vm}: notice outcome {n.get('outcome')} but the capture {want}"
        for n in mine
        if n.get("outcome") != want
    ]
