"""What both frozen programs do before their own code.

A frozen program has no `python` beside it, yet the code base starts helpers the way it does
from source, through `sys.executable`: `-m tentacle_manager.platform.services.supervisor_process`
(the user-mode supervisor) and `-I -S -c pass` (the manager's self-test). Rather than teach
every such call site about freezing, the executables answer those two command lines as the
interpreter would. No verb of `tentacle` and no option of `tentacle-manager` starts with `-m`,
`-c` or one of the ignored flags, so nothing the programs accept is shadowed.

PyInstaller's bootloader also prepends the bundle's `_internal` folder to LD_LIBRARY_PATH and
sets `_PYI_*` variables, and its PySide6 hook points QT_PLUGIN_PATH and QML2_IMPORT_PATH into
the bundle. Children inherit the environment: agents the manager starts, and the deployment
scripts they run, whose `curl` would load the bundled libcrypto, whose Qt programs would load
our Qt's plugins, and whose PyInstaller programs would mistake themselves for ours. The loader
has read LD_LIBRARY_PATH by the time Python runs, and Qt finds its plugins through the qt.conf
PySide6 embeds, so putting the user's environment back changes nothing for this process and
everything for its children.
"""

from __future__ import annotations

import os
import runpy
import sys
from collections.abc import Callable, MutableMapping, Sequence

# Flags that tune a real interpreter (isolation, site, environment, bytecode files, buffering)
# and mean nothing to a frozen one.
IGNORED_FLAGS = frozenset("IESsBu")
_LIBRARY_PATH = "LD_LIBRARY_PATH"
_ORIGINAL_LIBRARY_PATH = "LD_LIBRARY_PATH_ORIG"
_QT_PATHS = ("QT_PLUGIN_PATH", "QML2_IMPORT_PATH")


def restore_child_environment(environ: MutableMapping[str, str], bundle: str) -> None:
    for name in [name for name in environ if name.startswith("_PYI_")]:
        del environ[name]
    original = environ.pop(_ORIGINAL_LIBRARY_PATH, None)
    if original is not None:
        environ[_LIBRARY_PATH] = original
    else:
        environ.pop(_LIBRARY_PATH, None)
    for name in _QT_PATHS:
        if environ.get(name, "").startswith(bundle):
            del environ[name]


def interpreter_request(argv: Sequence[str]) -> tuple[str, str, list[str]] | None:
    """`(mode, target, rest)` when argv asks for `-m module` or `-c code`, else None."""
    index = 1
    while index < len(argv) and _is_ignored_flag(argv[index]):
        index += 1
    if index + 1 < len(argv) and argv[index] in ("-m", "-c"):
        return argv[index], argv[index + 1], list(argv[index + 2 :])
    return None


def _is_ignored_flag(word: str) -> bool:
    return len(word) > 1 and word[0] == "-" and set(word[1:]) <= IGNORED_FLAGS


def run(program: Callable[[], int]) -> int:
    restore_child_environment(os.environ, getattr(sys, "_MEIPASS", sys.prefix))
    request = interpreter_request(sys.argv)
    if request is None:
        return program()
    mode, target, rest = request
    if mode == "-m":
        sys.argv = [target, *rest]
        runpy.run_module(target, run_name="__main__", alter_sys=True)
    else:
        sys.argv = ["-c", *rest]
        exec(compile(target, "<string>", "exec"), {"__name__": "__main__"})
    return 0
