"""Parse Bicep files with pycep-parser and print ``{path: {"tree": ...} | {"error": ...}}`` as JSON.

Run by ``infra_support`` under ``.venv-infra``'s Python (checkov's pins, which include pycep-parser, do
not fit ``.venv``), so this file imports nothing from the repository.
"""

import json
import sys
from pathlib import Path
from typing import Any

from pycep import BicepParser


def main(paths: list[str]) -> None:
    parser = BicepParser()
    out: dict[str, Any] = {}
    for raw in paths:
        try:
            out[raw] = {"tree": parser.parse(file_path=Path(raw))}
        except Exception as exc:  # any parse failure is the finding, reported per file
            out[raw] = {"error": f"{type(exc).__name__}: {str(exc)[:2000]}"}
    json.dump(out, sys.stdout, default=str)


if __name__ == "__main__":
    main(sys.argv[1:])
