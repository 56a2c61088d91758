"""`python -m tentacle_manager.gui`: the desktop manager."""

import sys

from tentacle_manager.gui.app import main

sys.exit(main())
