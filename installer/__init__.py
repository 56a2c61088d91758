"""Turning the checkout into installable programs: the PyInstaller recipe (tentacle.spec) and
what it needs at build and run time, the Debian package, the Windows installer recipe, and the
smoke test of the built programs. See README.md, "Installers"."""
