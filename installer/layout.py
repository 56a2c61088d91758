"""The names the frozen build, the Debian package and the Windows installer must agree on.

tentacle.spec builds `dist/<FOLDER>/` holding both programs; the .deb installs that folder as
/opt/<FOLDER>/ and windows/tentacle.iss installs it under Program Files. The tests compare the
recipes against these names, so a rename here that the recipes miss fails the suite.
"""

from __future__ import annotations

FOLDER = "tentacle-manager"
CLI = "tentacle"
MANAGER = "tentacle-manager"
PROGRAMS = (CLI, MANAGER)
DEB_PACKAGE = "tentacle-manager"
INSTALL_ROOT = f"/opt/{FOLDER}"
AGENT_UNIT = "tentacle@.service"
