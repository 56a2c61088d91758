"""Entry points of the `tentacle` and `tentacle-manager` programs."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from tentacle_manager import __version__
from tentacle_manager.cli import run_script


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tentacle", description="Tentacle Manager's agent command line."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="<verb>")
    run_script.register(verbs)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return int(args.handler(args))


def manager_main(argv: Sequence[str] | None = None) -> int:
    """Until the manager window exists, the manager runs a demonstration script through the
    script service and shows its output, cancel ladder and exit code."""
    return main(["run-script", "--demo", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
