"""Runs devhost's Engine on a sample app in its own process, for the durability tests.

    python engine_runner.py APP_DIR WORKDIR SPEC_JSON [--virtual-clock]

SPEC_JSON maps instance ids to [orchestrator, input]; instances not yet in the work dir are
started. The runner then waits for all of them to finish and prints one JSON line per instance
({"id", "status", "output"}). It prints "READY" once the engine has started.
"""

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from devhost.engine import Engine  # noqa: E402
from devhost.functions import load_app  # noqa: E402


def main() -> None:
    app_dir, workdir, spec = Path(sys.argv[1]), Path(sys.argv[2]), json.loads(sys.argv[3])
    engine = Engine(load_app(app_dir), workdir, virtual_clock="--virtual-clock" in sys.argv)
    engine.start()
    for iid, (name, value) in spec.items():
        if engine.get_instance(iid) is None:
            engine.start_new(name, iid, json.dumps(value))
    print("READY", flush=True)
    for iid in spec:
        rec = engine.wait_for(iid, timeout=60)
        print(json.dumps({"id": iid, "status": rec.runtime_status, "output": rec.output}), flush=True)
    engine.stop()


if __name__ == "__main__":
    main()
