"""Command line of the local cloud: ``python -m azsim up --world examples/world.json``."""

from __future__ import annotations

import sys

USAGE = "usage: python -m azsim up --world WORLD.json [--workdir .azsim] [--time-scale X] [--faults FILE] ..."


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        print("Run `python -m azsim up --help` for all options.")
        return 0 if argv else 2
    if argv[0] != "up":
        print(f"azsim: unknown command {argv[0]!r}; expected 'up'.\n{USAGE}", file=sys.stderr)
        return 2
    from azsim.up import main as up_main

    return up_main(argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
