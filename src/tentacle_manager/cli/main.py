"""Entry points of the `tentacle` and `tentacle-manager` programs."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from tentacle_manager.cli.verb import Console


def main(argv: Sequence[str] | None = None) -> int:
    from tentacle_manager.cli.program import run

    return run(list(sys.argv[1:] if argv is None else argv), Console())


def manager_main(argv: Sequence[str] | None = None) -> int:
    """Until the manager window exists, the manager runs a demonstration script through an
    embedded script service and shows its output, cancel ladder and exit code."""
    return main(["run-script", "--demo", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
