"""The frozen `tentacle` program (see tentacle.spec)."""

import sys

from installer.frozen_runtime import run
from tentacle_manager.cli.main import main

sys.exit(run(main))
