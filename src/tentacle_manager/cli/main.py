"""Entry points of the `tentacle` and `tentacle-manager` programs."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from tentacle_manager.cli.verb import Console


def main(argv: Sequence[str] | None = None) -> int:
    from tentacle_manager.cli.program import run

    return run(list(sys.argv[1:] if argv is None else argv), Console())


def manager_main(argv: Sequence[str] | None = None) -> int:
    """The desktop manager (imported here, so the command line never loads Qt)."""
    from tentacle_manager.gui.app import main as gui_main

    return gui_main(argv)


if __name__ == "__main__":
    sys.exit(main())
