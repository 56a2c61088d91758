"""The frozen `tentacle-manager` program (see tentacle.spec)."""

import sys

from installer.frozen_runtime import run
from tentacle_manager.cli.main import manager_main

sys.exit(run(manager_main))
