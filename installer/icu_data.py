"""A smaller ICU data library for the frozen build on Linux.

PySide6's Qt links ICU, and libicudata.so.73 carries ICU's data for every locale, converter and
break-iteration dictionary: 30 MB, a fifth of the whole folder. Qt calls ICU for four things
only (its imports say so: `readelf --dyn-syms libQt6Core.so.6`): collation (ucol_*), codecs
other than UTF and Latin-1 (ucnv_*), time-zone display names and canonical IDs (ucal_*), and
locale-aware case mapping (u_strTo*, whose data is built into libicuuc). This module rewrites
the library keeping the data those need, in its root and English forms:

- the root collation (coll/root, coll/ucadata.icu): sorting follows the Unicode default order
  in every language instead of each language's tailoring;
- the converter alias table, but no converter tables: Qt's own UTF-8/16/32 and Latin-1 codecs
  are what the app uses, and ICU's UTF and ASCII converters are algorithmic;
- the time-zone and calendar data (zoneinfo64, metaZones, supplementalData ...) with root and
  English names;
- no break-iterator dictionaries, units, currencies, language or region names, transliterators
  or spell-out rules, which Qt never asks for.

Missing data is an ordinary ICU status (U_MISSING_RESOURCE_ERROR) that Qt handles by falling
back, never a crash; scripts/smoke-frozen exercises each of the four uses in the frozen manager.

The library is ICU's "common data" package (format CmnD: a header, a table of contents sorted
by name, 16-byte aligned items) exported as one symbol, `icudt<version>_dat`. The new package
keeps the header and the order of the kept items, and is linked into a shared object with the
same name and symbol by `as` and `ld`, which PyInstaller already needs (binutils).
"""

from __future__ import annotations

import re
import struct
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from installer.elf import exported_data

_ALIGNMENT = 16
_KEPT_LOCALE_BUNDLES = {"root", "en", "pool", "res_index"}
# Trees whose root and English bundles stay; every other tree goes.
_KEPT_TREES = {"coll", "zone"}
_DROPPED_TOP_LEVEL = {"unames.icu", "confusables.cfu", "confusablesWholeScript.cfu"}
_DROPPED_SUFFIXES = (".cnv", ".spp")
_LOCALE_BUNDLE = re.compile(r"[a-z]{2,3}(_[A-Za-z0-9]+)*\.res")


class IcuDataError(Exception):
    """The library is not an ICU data library this module understands."""


@dataclass(frozen=True)
class Package:
    header: bytes
    items: dict[str, bytes]  # "icudt73l/coll/root.res" -> contents, in table-of-contents order

    @property
    def prefix(self) -> str:
        """`icudt73l`: the package name, which also names the library's symbol."""
        return next(iter(self.items)).split("/", 1)[0]


def keep(name: str) -> bool:
    """Is the item `name` (without the package prefix, e.g. "coll/root.res") kept?"""
    *tree, leaf = name.split("/")
    stem = leaf.removesuffix(".res")
    if leaf in _DROPPED_TOP_LEVEL or leaf.endswith(_DROPPED_SUFFIXES):
        return False
    if tree:
        return tree[0] in _KEPT_TREES and (stem in _KEPT_LOCALE_BUNDLES or leaf == "ucadata.icu")
    if stem in _KEPT_LOCALE_BUNDLES:
        return True
    return not _LOCALE_BUNDLE.fullmatch(leaf)


def read_package(blob: bytes) -> Package:
    header_size, magic1, magic2 = struct.unpack_from("<HBB", blob, 0)
    if (magic1, magic2) != (0xDA, 0x27) or blob[12:16] != b"CmnD" or blob[16] != 1:
        raise IcuDataError("not an ICU common data package (CmnD, format 1)")
    if blob[8] != 0:
        raise IcuDataError("a big-endian ICU package; only little-endian ones are rewritten")
    count = struct.unpack_from("<I", blob, header_size)[0]
    toc = [struct.unpack_from("<II", blob, header_size + 4 + 8 * i) for i in range(count)]
    ends = [offset for _, offset in toc[1:]] + [len(blob) - header_size]
    items = {}
    for (name_offset, data_offset), end in zip(toc, ends, strict=True):
        start = header_size + name_offset
        name = blob[start : blob.index(b"\0", start)].decode("ascii")
        items[name] = blob[header_size + data_offset : header_size + end]
    return Package(blob[:header_size], items)


def write_package(package: Package) -> bytes:
    """The header, the table of contents (offsets from its own start), the names, then each
    item padded to 16 bytes: the layout ICU's pkgdata writes."""
    names = [name.encode("ascii") + b"\0" for name in package.items]
    toc_size = 4 + 8 * len(names)
    names_size = sum(map(len, names))
    data_offset = _aligned(len(package.header) + toc_size + names_size) - len(package.header)
    toc = [struct.pack("<I", len(names))]
    blocks: list[bytes] = []
    name_offset, item_offset = toc_size, data_offset
    for name, item in zip(names, package.items.values(), strict=True):
        toc.append(struct.pack("<II", name_offset, item_offset))
        padded = item + b"\0" * (_aligned(len(item)) - len(item))
        blocks.append(padded)
        name_offset += len(name)
        item_offset += len(padded)
    padding = b"\0" * (data_offset - toc_size - names_size)
    return b"".join([package.header, *toc, *names, padding, *blocks])


def trimmed(package: Package) -> Package:
    prefix = package.prefix + "/"
    kept = {name: data for name, data in package.items.items() if keep(name.removeprefix(prefix))}
    return Package(package.header, kept)


def shrink_library(source: Path, target: Path) -> tuple[int, int]:
    """Write the trimmed copy of the ICU data library `source` to `target`; returns both sizes."""
    symbol, data = exported_data(source)
    package = read_package(data)
    if symbol != package.prefix[:-1] + "_dat":  # icudt73l -> icudt73_dat
        raise IcuDataError(f"{source} exports {symbol}, not the data of {package.prefix}")
    smaller = write_package(trimmed(package))
    with tempfile.TemporaryDirectory(prefix="icu-data-") as scratch:
        folder = Path(scratch)
        (folder / "data.bin").write_bytes(smaller)
        (folder / "data.s").write_text(
            "\t.section .rodata\n"
            f"\t.balign {_ALIGNMENT}\n"
            f"\t.globl {symbol}\n"
            f"\t.type {symbol}, @object\n"
            f"{symbol}:\n"
            '\t.incbin "data.bin"\n'
            f"\t.size {symbol}, . - {symbol}\n"
            '\t.section .note.GNU-stack,"",@progbits\n'
        )
        subprocess.run(["as", "-o", "data.o", "data.s"], cwd=folder, check=True)
        subprocess.run(
            ["ld", "-shared", "-soname", source.name, "-o", str(target), "data.o"],
            cwd=folder,
            check=True,
        )
    return source.stat().st_size, target.stat().st_size


def _aligned(size: int) -> int:
    return -(-size // _ALIGNMENT) * _ALIGNMENT
