"""``imagepipeline capture | status | watch | cancel | list``: the commands, their output and exit codes.

Exit codes: 0 completed (or, for a command that does not wait, done), 1 the capture failed (or was
terminated), 2 it was canceled, 3 usage error (bad flags, file, URL or id; a request the API refused as
invalid; an unknown capture), 4 the API could not be reached or followed (auth refused, 409, 5xx, a URI
on another origin, the wait timed out). ``--json`` prints one JSON document on stdout for scripts.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time
from collections.abc import Sequence
from typing import IO, Any, NoReturn

from imagepipeline import __version__
from imagepipeline.api import Answer, ApiError, CaptureApi, OriginRefused, UsageError, error_text
from imagepipeline.auth import auth_from
from imagepipeline.models import EXIT_API, EXIT_USAGE, TERMINAL, Status
from imagepipeline.render import LiveView, PlainView, status_lines
from imagepipeline.request_flags import add_request_flags, build_request

POLL_ATTEMPTS = 10
TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})


class Parser(argparse.ArgumentParser):
    """argparse with the client's usage exit code (3, not argparse's 2, which means "canceled" here)."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


class Failure(Exception):
    """A command's end other than its normal output: a message, an exit code, the API's body if any."""

    def __init__(self, message: str, code: int, body: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.body = body


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--url", default=os.environ.get("IMAGEPIPELINE_URL"), help="the app's URL (IMAGEPIPELINE_URL)"
    )
    p.add_argument("--key", help="a function key (default: IMAGEPIPELINE_KEY), sent as x-functions-key")
    p.add_argument("--entra-scope", help="get an Entra ID token for this scope (DefaultAzureCredential)")
    p.add_argument("--json", action="store_true", help="print one JSON document (for scripts)")
    p.add_argument("--http-timeout", type=float, default=30.0, help="seconds per HTTP request")


def _waiting(p: argparse.ArgumentParser) -> None:
    p.add_argument("--interval", type=float, default=5.0, help="seconds between status polls")
    p.add_argument(
        "--timeout", type=float, default=None, help="give up waiting after this many seconds (exit 4)"
    )
    p.add_argument("--plain", action="store_true", help="one line per change even on a terminal")


def parser() -> Parser:
    root = Parser(prog="imagepipeline", description="Capture Azure VMs into gallery images from a pipeline.")
    root.add_argument("--version", action="version", version=f"imagepipeline {__version__}")
    sub = root.add_subparsers(dest="command", required=True)
    cap = sub.add_parser("capture", help="start a capture (from flags or --file)")
    add_request_flags(cap)
    cap.add_argument("--watch", action="store_true", help="follow it to the end (exit code = outcome)")
    _waiting(cap)
    st = sub.add_parser("status", help="the status of a capture (exit code = outcome, 0 while it runs)")
    st.add_argument("capture", help="capture id or its captureStatusUri")
    wa = sub.add_parser("watch", help="follow a capture with live progress until it ends")
    wa.add_argument("capture", help="capture id or its captureStatusUri")
    _waiting(wa)
    ca = sub.add_parser("cancel", help="ask a running capture to stop and clean up")
    ca.add_argument("capture", help="capture id")
    ca.add_argument("--reason", help="recorded with the cancellation")
    ca.add_argument("--watch", action="store_true", help="follow it to the end (exit code 2 once canceled)")
    _waiting(ca)
    ls = sub.add_parser("list", help="the captures the app knows, newest first")
    ls.add_argument("--status", dest="runtime_status", help="only these runtime statuses (comma-separated)")
    ls.add_argument("--top", type=int, default=None, help="at most this many")
    for p in (cap, st, wa, ca, ls):
        _common(p)
    return root


def _api(args: argparse.Namespace) -> CaptureApi:
    if not args.url:
        raise UsageError("No app URL: pass --url https://<app>.azurewebsites.net or set IMAGEPIPELINE_URL.")
    key = args.key or (None if args.entra_scope else os.environ.get("IMAGEPIPELINE_KEY"))
    scope = args.entra_scope or (None if key else os.environ.get("IMAGEPIPELINE_ENTRA_SCOPE"))
    return CaptureApi(args.url, auth_from(key, scope), timeout=args.http_timeout)


def _refused(answer: Answer, what: str) -> Failure:
    """The exit of an answer that is not the one hoped for."""
    code = EXIT_USAGE if answer.status in (400, 404, 413) else EXIT_API
    hint = " (check --key / --entra-scope)" if answer.status in (401, 403) else ""
    return Failure(f"{what}: {error_text(answer)}{hint}", code, answer.body)


def _status_url(api: CaptureApi, ref: str) -> str:
    return ref if "://" in ref else api.status_url(ref)


def _poll(api: CaptureApi, url: str, interval: float) -> Status:
    """One status read: a dropped connection or a transient answer (408, 429, 5xx) is tried again,
    up to ``POLL_ATTEMPTS`` times in a row (an app restarting must not fail an hours-long CI wait)."""
    for attempt in range(1, POLL_ATTEMPTS + 1):
        try:
            answer = api.status(url)
        except OriginRefused:
            raise
        except ApiError as exc:
            if attempt == POLL_ATTEMPTS:
                raise
            print(f"imagepipeline: {exc}; trying again", file=sys.stderr)
        else:
            if answer.status not in TRANSIENT_STATUS or attempt == POLL_ATTEMPTS:
                break
            print(f"imagepipeline: status answered {answer.status}; trying again", file=sys.stderr)
        time.sleep(max(0.1, interval))
    if answer.status != 200 or not isinstance(answer.body, dict):
        raise _refused(answer, "Reading the capture's status")
    return Status.from_wire(answer.body)


def _watch(api: CaptureApi, url: str, args: argparse.Namespace, out: IO[str]) -> Status:
    """Poll ``url`` until the capture ends, showing progress (nothing but the end with ``--json``)."""
    deadline = time.monotonic() + args.timeout if args.timeout else None
    live = out.isatty() and not args.plain and not args.json
    view = LiveView(out) if live else PlainView(out if not args.json else io.StringIO())
    with view:
        while True:
            status = _poll(api, url, args.interval)
            view.update(status)
            if status.terminal:
                return status
            if deadline is not None and time.monotonic() > deadline:
                raise Failure(
                    f"Capture {status.id} is still {status.runtime_status} (stage {status.stage}) after "
                    f"{args.timeout:.0f}s; it goes on running. Follow it with: imagepipeline watch {status.id}",
                    EXIT_API,
                    status.raw,
                )
            time.sleep(max(0.1, args.interval))


def _finish(status: Status, args: argparse.Namespace, out: IO[str]) -> int:
    if args.json:
        out.write(json.dumps(status.raw, indent=2) + "\n")
    return status.exit_code


def cmd_capture(api: CaptureApi, args: argparse.Namespace, out: IO[str]) -> int:
    answer = api.start(build_request(args))
    if answer.status != 202 or not isinstance(answer.body, dict):
        raise _refused(answer, "The capture was not started")
    body = answer.body
    status_url = api.same_origin(body.get("captureStatusUri"), "captureStatusUri")
    if not args.watch:
        out.write(
            json.dumps(body, indent=2) + "\n" if args.json else f"started {body.get('id')}\n{status_url}\n"
        )
        return 0
    if not args.json:
        out.write(f"started {body.get('id')} (run {body.get('runId')})\n")
    return _finish(_watch(api, status_url, args, out), args, out)


def cmd_status(api: CaptureApi, args: argparse.Namespace, out: IO[str]) -> int:
    status = _poll(api, _status_url(api, args.capture), 1.0)
    if not args.json:
        out.write("\n".join(status_lines(status)) + "\n")
    return _finish(status, args, out)


def cmd_watch(api: CaptureApi, args: argparse.Namespace, out: IO[str]) -> int:
    return _finish(_watch(api, _status_url(api, args.capture), args, out), args, out)


def cmd_cancel(api: CaptureApi, args: argparse.Namespace, out: IO[str]) -> int:
    answer = api.cancel(api.cancel_url(args.capture), args.reason)
    body = answer.body if isinstance(answer.body, dict) else {}
    if answer.status == 409 and body.get("runtimeStatus") in TERMINAL:
        raise Failure(f"Not canceled: {error_text(answer)}", TERMINAL[body["runtimeStatus"]], body)
    if answer.status != 202:
        raise _refused(answer, "The cancellation was not accepted")
    if not args.watch:
        out.write(json.dumps(body, indent=2) + "\n" if args.json else f"{body.get('message')}\n")
        return 0
    url = api.same_origin(body.get("captureStatusUri"), "captureStatusUri")
    return _finish(_watch(api, url, args, out), args, out)


def cmd_list(api: CaptureApi, args: argparse.Namespace, out: IO[str]) -> int:
    answer = api.list(args.runtime_status, args.top)
    if answer.status != 200 or not isinstance(answer.body, dict):
        raise _refused(answer, "Listing captures")
    if args.json:
        out.write(json.dumps(answer.body, indent=2) + "\n")
        return 0
    for c in answer.body.get("captures") or []:
        out.write(f"{c.get('id')}\t{c.get('runtimeStatus')}\t{c.get('stage')}\t{c.get('createdTime')}\n")
    return 0


COMMANDS = {
    "capture": cmd_capture,
    "status": cmd_status,
    "watch": cmd_watch,
    "cancel": cmd_cancel,
    "list": cmd_list,
}


def main(argv: Sequence[str] | None = None, out: IO[str] | None = None) -> int:
    out = out or sys.stdout
    args = parser().parse_args(argv)
    try:
        return COMMANDS[args.command](_api(args), args, out)
    except UsageError as exc:
        failure = Failure(str(exc), EXIT_USAGE)
    except ApiError as exc:
        failure = Failure(str(exc), EXIT_API, exc.body)
    except Failure as exc:
        failure = exc
    except KeyboardInterrupt:
        failure = Failure(
            "Interrupted: the capture goes on running (cancel it with: imagepipeline cancel <id>).", 130
        )
    print(f"imagepipeline: {failure}", file=sys.stderr)
    if getattr(args, "json", False):
        out.write(
            json.dumps({"error": {"message": str(failure), "exitCode": failure.code}, "body": failure.body})
            + "\n"
        )
    return failure.code
