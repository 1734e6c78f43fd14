"""``python -m devhost``: run a Python v2 Durable Functions app locally, or inspect its instances.

    python -m devhost start [--app-dir .] [--port 7071] [--workdir .devhost] [--virtual-clock [--clock-url URL]]
                            [--require-keys] [--settings FILE] [--env-file FILE] [--verbose]
    python -m devhost instances [--app-dir .] [--workdir .devhost] [--status Running,...]
    python -m devhost status ID [--app-dir .] [--workdir .devhost]
    python -m devhost history ID [--app-dir .] [--workdir .devhost]
    python -m devhost purge (ID | --all-completed) [--app-dir .] [--workdir .devhost]

``start`` prints exactly one line ``devhost ready: http://127.0.0.1:<port>`` on stdout once every listener
and poller runs; logs go to stderr. SIGTERM or SIGINT stop it cleanly (exit code 0).
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from devhost.api import InstanceQuery
from devhost.keys import describe_keys
from devhost.settings import SettingsError

if TYPE_CHECKING:
    from devhost.engine import Engine

READY_PREFIX = "devhost ready: "
TERMINAL = ["Completed", "Failed", "Terminated", "Canceled"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m devhost", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    sub = p.add_subparsers(dest="command", required=True)

    def common(sp: argparse.ArgumentParser) -> None:
        sp.add_argument(
            "--app-dir", type=Path, default=Path("."), help="folder with function_app.py (default .)"
        )
        sp.add_argument(
            "--workdir",
            type=Path,
            default=Path(".devhost"),
            help="state folder, relative to the app dir (default .devhost)",
        )

    s = sub.add_parser("start", help="run the app")
    common(s)
    s.add_argument(
        "--port", type=int, default=7071, help="HTTP port on 127.0.0.1 (0 = any free port; default 7071)"
    )
    s.add_argument(
        "--virtual-clock", action="store_true", help="time stands still and skips to the next timer when idle"
    )
    s.add_argument(
        "--clock-url",
        default=None,
        help="share the virtual clock of a clock owner (azsim --virtual-clock: its AZSIM_CLOCK_URL)",
    )
    s.add_argument("--require-keys", action="store_true", help="enforce function/admin/system keys")
    s.add_argument("--settings", type=Path, default=None, help="settings file instead of local.settings.json")
    s.add_argument("--env-file", type=Path, default=None, help="KEY=VALUE file laid over the app settings")
    s.add_argument("--verbose", action="store_true", help="debug logging")

    i = sub.add_parser("instances", help="list orchestration instances")
    common(i)
    i.add_argument("--status", default=None, help="comma-separated runtime statuses to show")
    st = sub.add_parser("status", help="show one instance's status (JSON)")
    common(st)
    st.add_argument("instance_id")
    h = sub.add_parser("history", help="show one instance's history events (JSON)")
    common(h)
    h.add_argument("instance_id")
    pg = sub.add_parser("purge", help="delete finished instances and their history")
    common(pg)
    g = pg.add_mutually_exclusive_group(required=True)
    g.add_argument("instance_id", nargs="?")
    g.add_argument(
        "--all-completed", action="store_true", help="purge every Completed/Failed/Terminated instance"
    )
    return p


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # the Azure SDKs log every request at INFO (URLs with SAS tokens included): keep them quiet
    for noisy in ("azure", "azure.core.pipeline.policies.http_logging_policy", "aiohttp.access", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _start(args: argparse.Namespace) -> int:
    from devhost.host import Host, HostOptions

    host = Host(
        HostOptions(
            app_dir=args.app_dir,
            workdir=args.workdir,
            port=args.port,
            virtual_clock=args.virtual_clock,
            clock_url=args.clock_url,
            require_keys=args.require_keys,
            settings_file=args.settings,
            env_file=args.env_file,
        )
    )
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        logging.getLogger("devhost").info("received %s, stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        host.start()
    except Exception as exc:
        logging.getLogger("devhost").error("devhost could not start: %s", exc)
        host.stop()
        return 2
    if host.keys is not None:
        # Names and the file only: key values are secrets and stderr usually ends up in a log file.
        print(f"devhost keys: {describe_keys(host.keys)}", file=sys.stderr, flush=True)
    print(f"{READY_PREFIX}{host.base_url}", flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        host.stop()
    logging.getLogger("devhost").info("devhost stopped")
    return 0


def _engine(args: argparse.Namespace) -> Engine:
    from devhost.engine import Engine
    from devhost.functions import AppIndex

    app_dir = args.app_dir.resolve()
    workdir = args.workdir if args.workdir.is_absolute() else app_dir / args.workdir
    if not workdir.exists():
        raise SettingsError(f"{workdir}: no devhost work dir here; pass --workdir or --app-dir.")
    # inspection never imports the app: an empty index is enough to read the store
    return Engine(AppIndex(app_dir=app_dir), workdir)


def _inspect(args: argparse.Namespace) -> int:
    from devhost.http.durable import status_payload

    engine = _engine(args)
    if args.command == "instances":
        statuses = [s.strip() for s in args.status.split(",")] if args.status else None
        recs = engine.query(InstanceQuery(runtime_status=statuses))
        if not recs:
            print("no instances")
        for r in recs:
            print(f"{r.instance_id}\t{r.name}\t{r.runtime_status}\t{r.created_time}\t{r.last_updated_time}")
        return 0
    if args.command == "status":
        rec = engine.get_instance(args.instance_id)
        if rec is None:
            print(f"no instance '{args.instance_id}'", file=sys.stderr)
            return 1
        print(json.dumps(status_payload(rec), indent=2))
        return 0
    if args.command == "history":
        rec = engine.get_instance(args.instance_id)
        if rec is None:
            print(f"no instance '{args.instance_id}'", file=sys.stderr)
            return 1
        print(json.dumps(engine.history(args.instance_id), indent=2))
        return 0
    if args.command == "purge":
        if args.all_completed:
            n = engine.purge_many(
                InstanceQuery(runtime_status=TERMINAL, created_time_from="0001-01-01T00:00:00Z")
            )
            print(f"purged {n} instance(s)")
            return 0
        rec = engine.get_instance(args.instance_id)
        if rec is None:
            print(f"no instance '{args.instance_id}'", file=sys.stderr)
            return 1
        if rec.runtime_status not in TERMINAL:
            print(
                f"instance '{args.instance_id}' is {rec.runtime_status}; terminate it first or wait for it to finish",
                file=sys.stderr,
            )
            return 1
        n = engine.purge(args.instance_id)
        print(f"purged {n} instance(s)")
        return 0
    return 2


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "start":
        _setup_logging(args.verbose)
        return _start(args)
    _setup_logging(False)
    try:
        return _inspect(args)
    except SettingsError as exc:
        print(str(exc), file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
