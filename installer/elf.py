"""The ELF facts the Linux build needs: a data symbol's bytes, and stripped copies that load.

`strip` (binutils, which PyInstaller needs anyway) removes debug information: the interpreter's
libpython alone carries 18 MB of it. PyInstaller's own `strip=True` strips every binary, and
that breaks libraries whose segments patchelf moved (auditwheel does that to numpy's OpenBLAS):
the stripped file no longer maps ("ELF load command address/offset not page-aligned"). Here each
stripped copy is checked the way the dynamic loader checks it, and the original is kept when
the copy would not load.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

_PT_LOAD = 1
_SHT_DYNSYM = 11
_STT_OBJECT = 1


class ElfError(Exception):
    """The file is not the kind of ELF file these functions read."""


def _read(path: Path) -> bytes:
    blob = path.read_bytes()
    if blob[:4] != b"\x7fELF" or blob[4] != 2 or blob[5] != 1:
        raise ElfError(f"{path} is not a 64-bit little-endian ELF file")
    return blob


def segments_load(path: Path) -> bool:
    """Does every loadable segment start at the same offset within a page in the file and in
    memory? The dynamic loader refuses a library where one does not."""
    blob = _read(path)
    (phoff,) = struct.unpack_from("<Q", blob, 32)
    phentsize, phnum = struct.unpack_from("<HH", blob, 54)
    for index in range(phnum):
        kind, _, offset, address, _, _, _, align = struct.unpack_from(
            "<IIQQQQQQ", blob, phoff + index * phentsize
        )
        if kind == _PT_LOAD and align > 1 and (address - offset) % align:
            return False
    return True


def exported_data(path: Path) -> tuple[str, bytes]:
    """The first data object the library exports: its name and its bytes."""
    blob = _read(path)
    (shoff,) = struct.unpack_from("<Q", blob, 40)
    shentsize, shnum = struct.unpack_from("<HH", blob, 58)
    # (name, type, flags, address, offset, size, link, info, align, entry size)
    sections = [
        struct.unpack_from("<IIQQQQIIQQ", blob, shoff + index * shentsize) for index in range(shnum)
    ]
    symbols = next((s for s in sections if s[1] == _SHT_DYNSYM), None)
    if symbols is None:
        raise ElfError(f"{path} has no dynamic symbol table")
    names = sections[symbols[6]]
    for entry in range(symbols[4], symbols[4] + symbols[5], symbols[9]):
        name_index, info, _, section_index, value, size = struct.unpack_from("<IBBHQQ", blob, entry)
        if section_index == 0 or info & 0xF != _STT_OBJECT:
            continue
        start = names[4] + name_index
        name = blob[start : blob.index(b"\0", start)].decode("ascii")
        section = sections[section_index]
        offset = section[4] + value - section[3]
        return name, blob[offset : offset + size]
    raise ElfError(f"{path} exports no data object")


def stripped_copy(source: Path, target: Path) -> Path:
    """`target`, a copy of `source` without debug information, or `source` itself when
    stripping changes nothing or leaves a file the loader would refuse."""
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source, target)
    done = subprocess.run(
        ["strip", "--strip-unneeded", str(target)], capture_output=True, check=False
    )
    if done.returncode != 0 or not segments_load(target):
        return source
    if target.stat().st_size >= source.stat().st_size:
        return source
    return target
