"""How ``watch`` shows a capture: live bars on a terminal, one line per change anywhere else.

On a terminal (``rich``): a header with the capture, its stage and the elapsed time, then one bar per
region (replication %) and one per disk copy (bytes copied of the VHD export), redrawn at each poll.
Without a terminal (a CI log, a pipe, a file) bars would be noise: each poll prints only what changed,
one plain line each (stage transitions, each region's and each disk's state and percent), so the log
reads as the capture's history.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import IO, Any

from imagepipeline.models import DiskCopy, Region, Status


def _size(n: float) -> str:
    for unit, scale in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n:.0f} B"


def elapsed_since(status: Status, started: float) -> float:
    """Seconds since the capture was created (the server's createdTime), else since the watch began."""
    created = status.raw.get("createdTime")
    if isinstance(created, str):
        try:
            at = datetime.fromisoformat(created.replace("Z", "+00:00"))
            seconds = (datetime.now(UTC) - (at if at.tzinfo else at.replace(tzinfo=UTC))).total_seconds()
            if seconds >= 0:
                return seconds
        except ValueError:
            pass
    return time.monotonic() - started


def stage_text(status: Status) -> str:
    running = [s.name for s in status.stages if s.state == "running"]
    return "+".join(running) if running else (status.stage or "-")


def region_line(r: Region) -> str:
    return f"region {r.name}: {r.state} {r.progress:.0f}%"


def disk_line(d: DiskCopy) -> str:
    snap = f"snapshot {d.snapshot_state}" if d.snapshot_state else "snapshot -"
    if not d.copy_state and not d.bytes_total:
        return f"disk {d.key} ({d.name}): {snap}"
    copy = f"copy {d.copy_state or 'starting'} {d.percent:.1f}% ({_size(d.bytes_copied)} of {_size(d.bytes_total)})"
    return f"disk {d.key} ({d.name}): {snap}, {copy}"


def outcome_line(status: Status) -> str:
    if status.runtime_status == "Completed":
        return f"Completed: image version {status.image_version_id}"
    if status.error:
        err = status.error
        text = f"{status.runtime_status}: {err.get('code')} in {err.get('step')}: {err.get('message')}"
        return text + (f" Advice: {err['advice']}" if err.get("advice") else "")
    return f"{status.runtime_status}"


def status_lines(status: Status) -> list[str]:
    """Every line the plain view can print for ``status`` (the one-shot ``status`` command prints them all)."""
    lines = [f"capture {status.id}: {status.runtime_status}, stage {stage_text(status)}"]
    lines += [
        f"stage {s.name}: {s.state}" + (f" ({s.seconds:.1f}s)" if s.seconds else "") for s in status.stages
    ]
    lines += [region_line(r) for r in status.regions]
    lines += [disk_line(d) for d in status.disks]
    if status.cancel_requested:
        lines.append("cancellation requested")
    if status.terminal:
        lines.append(outcome_line(status))
    return lines


class PlainView:
    """One line per change, each prefixed with the elapsed time."""

    def __init__(self, out: IO[str]) -> None:
        self.out = out
        self.shown: set[str] = set()
        self.started = time.monotonic()

    def __enter__(self) -> PlainView:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.out.flush()

    def update(self, status: Status) -> None:
        elapsed = elapsed_since(status, self.started)
        for line in status_lines(status):
            if line in self.shown or (line.startswith("stage ") and line.endswith(": pending")):
                continue
            self.shown.add(line)
            self.out.write(f"[{elapsed:7.1f}s] {line}\n")
        self.out.flush()


class LiveView:
    """rich bars: a header, one bar per region and per disk copy."""

    def __init__(self, out: IO[str]) -> None:
        from rich.console import Console
        from rich.live import Live

        self.console = Console(file=out)
        self.live = Live(console=self.console, refresh_per_second=4, transient=False)
        self.started = time.monotonic()

    def __enter__(self) -> LiveView:
        self.live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.live.__exit__(None, None, None)

    def update(self, status: Status) -> None:
        from rich.console import Group
        from rich.progress import BarColumn, Progress, TextColumn

        elapsed = elapsed_since(status, self.started)
        bars = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[note]}"))
        for r in status.regions:
            bars.add_task(
                f"region {r.name}", total=100, completed=int(r.progress), note=f"{r.state} {r.progress:.0f}%"
            )
        for d in status.disks:
            if d.copy_state or d.bytes_total:
                note = f"{d.copy_state or 'starting'} {d.percent:.1f}% of {_size(d.bytes_total)}"
                bars.add_task(
                    f"disk {d.key}", total=d.bytes_total or 1, completed=int(d.bytes_copied), note=note
                )
        header = f"[bold]{status.id}[/]  {status.runtime_status}  stage [cyan]{stage_text(status)}[/]  {elapsed:.0f}s"
        parts: list[Any] = [header, bars]
        if status.terminal:
            parts.append(outcome_line(status))
        self.live.update(Group(*parts), refresh=True)
