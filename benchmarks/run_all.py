"""Run every benchmark, each in a fresh interpreter, then summarise; exit 1 if a target is missed.

Usage: python -m benchmarks.run_all [--quick] [--profile] [name ...]
Names are module suffixes (overhead, cancel_abandon, output, status, mutex, api,
log_viewer, frozen); default: all.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.common import RESULTS_DIR

# Module suffix -> name of its results file.
BENCHMARKS = {
    "overhead": "overhead",
    "cancel_abandon": "cancel_abandon",
    "output": "output",
    "status": "status",
    "mutex": "mutex",
    "api": "api",
    "log_viewer": "log_viewer",
    "frozen": "frozen",
}
TIMEOUT = 900  # seconds per benchmark; a hung one is reported, not waited on for ever


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes (about a minute)")
    parser.add_argument("--profile", action="store_true", help="cProfile the service sections")
    parser.add_argument("names", nargs="*", metavar="name", help=", ".join(BENCHMARKS))
    args = parser.parse_args(argv)
    unknown = [name for name in args.names if name not in BENCHMARKS]
    if unknown:
        parser.error(
            f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}"
        )
    names = args.names or list(BENCHMARKS)
    flags = [flag for flag, on in (("--quick", args.quick), ("--profile", args.profile)) if on]
    root = Path(__file__).resolve().parent.parent
    started = time.perf_counter()
    outcomes: dict[str, str] = {}
    for name in names:
        result = RESULTS_DIR / f"{BENCHMARKS[name]}.json"
        result.unlink(missing_ok=True)
        command = [sys.executable, "-m", f"benchmarks.bench_{name}", *flags]
        try:
            code = subprocess.run(command, cwd=root, timeout=TIMEOUT, check=False).returncode
        except subprocess.TimeoutExpired:
            code = None
        print(flush=True)
        if code is None:
            outcomes[name] = f"ERROR: no result within {TIMEOUT} s"
        elif not result.exists():
            outcomes[name] = f"ERROR: exited {code} without writing {result.name}"
        else:
            outcomes[name] = "PASS" if code == 0 else "FAIL"
    elapsed = time.perf_counter() - started
    print(f"== summary ({'quick' if args.quick else 'full'} sizes, {elapsed:.0f} s) ==")
    failed = False
    for name in names:
        outcome = outcomes[name]
        result = RESULTS_DIR / f"{BENCHMARKS[name]}.json"
        if outcome.startswith("ERROR"):
            failed = True
            print(f"ERROR {name}: {outcome}")
            continue
        document = json.loads(result.read_text())
        if document.get("error"):
            failed = True
            print(f"ERROR {name}: {document['error'].strip().splitlines()[-1]}")
        for check in document["checks"]:
            failed |= not check["passed"]
            print(check["line"])
    print("== all targets met ==" if not failed else "== some targets missed (see FAIL above) ==")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
