"""What the frozen build is made of, tested without building it (scripts/build-frozen and
scripts/smoke-frozen do that, after pytest, in scripts/run-tests): the executables' interpreter
emulation and clean child environment, the agent program a frozen manager names, the stripped
copies that must still load, the trimmed ICU data Qt runs on, the Windows version resource and
the icons."""

from __future__ import annotations

import ast
import ctypes
import os
import struct
import subprocess
import sys
from pathlib import Path

import PyInstaller
import PySide6
import pytest

from installer import elf, frozen_runtime, icu_data, version_info
from installer.smoke import ICU_PROBE
from tentacle_manager import __version__
from tentacle_manager.cli.verbs import service
from tests.packaging_support import ROOT, ensure_packaging_tools

PYSIDE_LIB = Path(PySide6.__file__ or "").parent / "Qt" / "lib"
ICU_DATA_LIBRARY = next(PYSIDE_LIB.glob("libicudata.so.*"), None)
needs_pyside_icu = pytest.mark.skipif(
    ICU_DATA_LIBRARY is None, reason="this PySide6 has no ICU of its own (not Linux)"
)


@pytest.fixture(scope="module")
def binutils() -> None:
    ensure_packaging_tools()


# --- the executables behave like the interpreter they replace ---------------------------------


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["exe", "-m", "pkg.mod", "a", "-b"], ("-m", "pkg.mod", ["a", "-b"])),
        (["exe", "-I", "-S", "-c", "pass"], ("-c", "pass", [])),
        (["exe", "-IS", "-c", "print(1)", "x"], ("-c", "print(1)", ["x"])),
        (["exe", "agent", "--instance=x"], None),
        (["exe", "--self-test-subprocesses", "3"], None),
        (["exe", "-c"], None),  # no code: the program's own (failing) command line
        (["exe", "-X", "-c", "pass"], None),  # a flag the frozen program does not know
        (["exe"], None),
    ],
)
def test_interpreter_command_lines_are_recognised(argv: list[str], expected: object) -> None:
    assert frozen_runtime.interpreter_request(argv) == expected


def test_dash_c_and_dash_m_run_like_python(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setenv("_PYI_ARCHIVE_FILE", "/opt/x/tentacle")
    monkeypatch.setenv("LD_LIBRARY_PATH", "/opt/x/_internal")
    not_called = lambda: pytest.fail("the program ran instead of the interpreter")  # noqa: E731
    monkeypatch.setattr(sys, "argv", ["exe", "-I", "-S", "-c", "import sys; print(sys.argv)", "x"])
    assert frozen_runtime.run(not_called) == 0
    assert capsys.readouterr().out.strip() == "['-c', 'x']"
    assert "_PYI_ARCHIVE_FILE" not in os.environ and "LD_LIBRARY_PATH" not in os.environ

    (tmp_path / "probe_module.py").write_text("import sys\nprint(__name__, sys.argv[1:])\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(sys, "argv", ["exe", "-m", "probe_module", "--flag", "value"])
    assert frozen_runtime.run(not_called) == 0
    assert capsys.readouterr().out.strip() == "__main__ ['--flag', 'value']"

    monkeypatch.setattr(sys, "argv", ["exe", "version"])
    assert frozen_runtime.run(lambda: 7) == 7


def test_children_get_the_environment_the_user_gave_the_program() -> None:
    bundle = {
        "_PYI_ARCHIVE_FILE": "/opt/x/tentacle",
        "_PYI_PARENT_PROCESS_LEVEL": "1",
        "QT_PLUGIN_PATH": "/opt/x/_internal/PySide6/Qt/plugins",
        "QML2_IMPORT_PATH": "/opt/x/_internal/PySide6/Qt/qml",
    }
    prepended = {"LD_LIBRARY_PATH": "/opt/x/_internal:/usr/local/lib"}
    environ = {"PATH": "/usr/bin", **bundle, **prepended, "LD_LIBRARY_PATH_ORIG": "/usr/local/lib"}
    frozen_runtime.restore_child_environment(environ, "/opt/x/_internal")
    assert environ == {"PATH": "/usr/bin", "LD_LIBRARY_PATH": "/usr/local/lib"}

    environ = {"PATH": "/usr/bin", **bundle, "LD_LIBRARY_PATH": "/opt/x/_internal"}
    environ["QT_PLUGIN_PATH"] = "/home/me/qt-plugins"  # the user's own: theirs to keep
    frozen_runtime.restore_child_environment(environ, "/opt/x/_internal")
    assert environ == {"PATH": "/usr/bin", "QT_PLUGIN_PATH": "/home/me/qt-plugins"}


def test_a_frozen_program_names_the_tentacle_beside_it_as_the_agent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    for executable, agent in [
        ("/opt/tentacle-manager/tentacle-manager", "/opt/tentacle-manager/tentacle"),
        ("/opt/tentacle-manager/tentacle", "/opt/tentacle-manager/tentacle"),
        ("C:/Program Files/Tentacle Manager/tentacle-manager.exe", "tentacle.exe"),
    ]:
        monkeypatch.setattr(sys, "executable", executable)
        program, verb = service.agent_command()
        assert program.endswith(agent) and verb == "agent"


# --- stripped copies ---------------------------------------------------------------------------


def small_library(folder: Path, debug_bytes: int) -> Path:
    """A shared object with one exported function and `debug_bytes` of debug information."""
    source = folder / "library.s"
    source.write_text(
        "\t.text\n\t.globl answer\n\t.type answer, @function\nanswer:\n\tmovl $42, %eax\n\tret\n"
        f'\t.section .debug_info,"",@progbits\n\t.fill {debug_bytes}, 1, 0\n'
        '\t.section .note.GNU-stack,"",@progbits\n'
    )
    subprocess.run(["as", "-o", folder / "library.o", source], check=True)
    library = folder / "library.so"
    subprocess.run(["ld", "-shared", "-o", library, folder / "library.o"], check=True)
    return library


def test_a_stripped_copy_loses_its_debug_information_and_still_loads(
    binutils: None, tmp_path: Path
) -> None:
    library = small_library(tmp_path, 100_000)
    copy = elf.stripped_copy(library, tmp_path / "stripped" / "library.so")
    assert copy != library and copy.stat().st_size < library.stat().st_size - 90_000
    assert elf.segments_load(copy)
    assert ctypes.CDLL(str(copy)).answer() == 42


def test_a_copy_the_loader_would_refuse_is_not_used(
    binutils: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What strip does to a library whose segments patchelf moved (numpy's OpenBLAS): the copy
    maps a segment at an offset the loader refuses. A `strip` doing just that stands in."""
    library = small_library(tmp_path, 100_000)
    tools = tmp_path / "tools"
    tools.mkdir()
    (tools / "strip").write_text(
        f"#!{sys.executable}\n"
        "import struct, sys\n"
        "path = sys.argv[-1]\n"
        "blob = bytearray(open(path, 'rb').read())\n"
        "phoff, = struct.unpack_from('<Q', blob, 32)\n"
        "size, count = struct.unpack_from('<HH', blob, 54)\n"
        "for n in range(count):\n"
        "    at = phoff + n * size\n"
        "    if struct.unpack_from('<I', blob, at)[0] == 1:\n"
        "        offset, = struct.unpack_from('<Q', blob, at + 8)\n"
        "        struct.pack_into('<Q', blob, at + 8, offset + 8)\n"
        "open(path, 'wb').write(bytes(blob[:-4096]))\n"
    )
    (tools / "strip").chmod(0o755)
    monkeypatch.setenv("PATH", f"{tools}{os.pathsep}{os.environ['PATH']}")
    copy = tmp_path / "stripped" / "library.so"
    assert elf.stripped_copy(library, copy) == library
    assert not elf.segments_load(copy)


# --- ICU's data, trimmed ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kept"),
    [
        ("root.res", True),
        ("en.res", True),
        ("pool.res", True),
        ("res_index.res", True),
        ("likelySubtags.res", True),
        ("supplementalData.res", True),
        ("zoneinfo64.res", True),
        ("cnvalias.icu", True),
        ("coll/root.res", True),
        ("coll/ucadata.icu", True),
        ("zone/en.res", True),
        ("de.res", False),
        ("sr_Latn_BA.res", False),
        ("coll/de.res", False),
        ("zone/fr.res", False),
        ("brkitr/root.res", False),
        ("brkitr/cjdict.dict", False),
        ("curr/en.res", False),
        ("ibm-5348_P100-1997.cnv", False),
        ("unames.icu", False),
        ("rfc3491.spp", False),
    ],
)
def test_the_items_kept_are_those_qt_reads(name: str, kept: bool) -> None:
    assert icu_data.keep(name) is kept


@needs_pyside_icu
def test_a_package_reads_back_as_written() -> None:
    assert ICU_DATA_LIBRARY is not None
    _, data = elf.exported_data(ICU_DATA_LIBRARY)
    package = icu_data.read_package(data)
    again = icu_data.read_package(icu_data.write_package(package))
    assert list(again.items) == list(package.items)
    for name, item in package.items.items():
        assert again.items[name][: len(item)] == item
        assert again.items[name][len(item) :].strip(b"\0") == b""


@needs_pyside_icu
def test_qt_runs_on_the_trimmed_icu_data(binutils: None, tmp_path: Path) -> None:
    """The rebuilt library, loaded in place of PySide6's own (same soname, preloaded), serves
    the four things Qt asks ICU for."""
    assert ICU_DATA_LIBRARY is not None
    trimmed = tmp_path / ICU_DATA_LIBRARY.name
    before, after = icu_data.shrink_library(ICU_DATA_LIBRARY, trimmed)
    assert after < before / 8
    symbol, data = elf.exported_data(trimmed)
    assert symbol == elf.exported_data(ICU_DATA_LIBRARY)[0]
    assert "icudt" in symbol and len(icu_data.read_package(data).items) > 20
    soname = subprocess.run(["readelf", "-d", trimmed], capture_output=True, text=True).stdout
    assert f"[{ICU_DATA_LIBRARY.name}]" in soname
    probe = subprocess.run(
        [sys.executable, "-c", ICU_PROBE],
        env={**os.environ, "LD_PRELOAD": str(trimmed), "QT_QPA_PLATFORM": "offscreen"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.strip() == "icu ok"


# --- Windows version resource and icons -------------------------------------------------------


def version_resource_signatures() -> dict[str, list[str]]:
    """The constructors PyInstaller evaluates a version file with, and their parameters, read
    from its source (the module itself imports only on Windows)."""
    source = Path(PyInstaller.__file__).parent / "utils" / "win32" / "versioninfo.py"
    signatures = {}
    for node in ast.parse(source.read_text()).body:
        if isinstance(node, ast.ClassDef):
            for method in node.body:
                if isinstance(method, ast.FunctionDef) and method.name == "__init__":
                    signatures[node.name] = [argument.arg for argument in method.args.args[1:]]
    return signatures


def test_the_version_resource_carries_the_package_version() -> None:
    """PyInstaller eval()s the file with its VSVersionInfo classes; here the same names record
    their arguments, which must fit the real constructors."""
    signatures = version_resource_signatures()

    def constructor(name: str):
        def record(*args: object, **keywords: object) -> dict[str, object]:
            parameters = signatures[name]
            assert len(args) <= len(parameters) and set(keywords) <= set(parameters), name
            return dict(zip(parameters, args, strict=False)) | keywords

        return record

    rendered = version_info.render("tentacle", "Tentacle agent", __version__)
    info = eval(rendered, {name: constructor(name) for name in signatures})  # as PyInstaller does
    numbers = version_info.numbers(__version__)
    assert info["ffi"]["filevers"] == info["ffi"]["prodvers"] == numbers
    (table,) = info["kids"][0]["kids"]
    strings = {struct["name"]: struct["val"] for struct in table["kids"]}
    assert strings["ProductVersion"] == __version__  # what the Inno Setup recipe reads
    assert strings["OriginalFilename"] == "tentacle.exe"
    assert strings["FileDescription"] == "Tentacle agent"
    assert version_info.numbers("1.2.3rc1+local.5") == (1, 2, 3, 0)
    assert version_info.numbers("2.0") == (2, 0, 0, 0)


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_the_icons_are_rendered_at_every_size() -> None:
    from resources.render_icons import ICO_SIZES, PNG_SIZES, png_path

    for size in PNG_SIZES:
        assert png_size(png_path(size).read_bytes()) == (size, size)
    icon = (ROOT / "resources" / "tentacle-manager.ico").read_bytes()
    reserved, kind, count = struct.unpack_from("<HHH", icon)
    assert (reserved, kind, count) == (0, 1, len(ICO_SIZES))
    for index, size in enumerate(ICO_SIZES):
        width, height, _, _, _, bits, length, offset = struct.unpack_from(
            "<BBBBHHII", icon, 6 + 16 * index
        )
        assert (width or 256, height or 256, bits) == (size, size, 32)
        assert png_size(icon[offset : offset + length]) == (size, size)
