#!/usr/bin/env python3
"""The tree's structure rules (STYLE sections 1 and 11), checked so that CI
keeps them: dependencies point one way (fusefs -> core -> drivers ->
{crypto, locks, nvme}), a driver reaches only core/bd.h and core/overflow.h,
core's private headers stay in core, no source file reaches 900 lines and
no function 150. Prints each broken rule and exits 1; 0 when all hold.

Usage: check-structure.py [SOURCE_ROOT]
"""
import os
import re
import sys

MAX_FILE_LINES = 900
MAX_FUNCTION_LINES = 150
DRIVER_MAY_INCLUDE = {"core/bd.h", "core/overflow.h"}
CORE_PRIVATE = {"core/bd-internal.h", "core/registry.h", "core/resolve.h"}
SKIP_DIRS = {".git", "build", "build-asan", "build-rel"}

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def sources(root):
    for top in ("core", "fusefs", "drivers", "locks", "crypto", "nvme", "tests"):
        for d, dirs, files in os.walk(os.path.join(root, top)):
            dirs[:] = [x for x in dirs if x not in SKIP_DIRS]
            for f in files:
                if f.endswith((".c", ".h")):
                    p = os.path.join(d, f)
                    yield os.path.relpath(p, root), open(p, errors="replace").read()


def resolve(path, inc, root):
    """The include as a path from the root, the way the compiler finds it:
    beside the including file first, then from the root (-I.)."""
    beside = os.path.normpath(os.path.join(os.path.dirname(path), inc))
    if os.path.exists(os.path.join(root, beside)):
        return beside
    return os.path.normpath(inc)


def driver_folder(path):
    parts = path.split("/")
    return "/".join(parts[:3]) if len(parts) > 3 else path


def include_rules(path, inc):
    top = path.split("/")[0]
    if top == "drivers":
        if inc.startswith("core/") and inc not in DRIVER_MAY_INCLUDE:
            return "a driver includes only core/bd.h and core/overflow.h"
        if inc.startswith("fusefs/"):
            return "drivers do not reach the front-end"
        if inc.startswith("drivers/") and driver_folder(inc) != driver_folder(path):
            return "a driver does not include another driver's files"
    if top in ("locks", "crypto", "nvme"):
        if inc.startswith(("core/", "fusefs/", "drivers/")) and inc != "core/bd.h":
            return f"{top}/ sits below the drivers: it includes only core/bd.h"
    if top == "fusefs" and inc in CORE_PRIVATE:
        return "core's private headers stay in core (use core/graph.h)"
    if top == "fusefs" and inc.startswith("drivers/"):
        return "the front-end reaches drivers through core only"
    if top == "core" and inc.startswith(("fusefs/", "drivers/")):
        return "core does not include the front-end or a driver"
    return None


def functions(text):
    """(first line, length) of each function: a '{' in column 0 up to the
    next '}' in column 0, counted from the signature's first line."""
    lines = text.split("\n")
    start = None
    for i, line in enumerate(lines):
        if line.startswith("{") and start is None:
            j = i - 1
            while j > 0 and not re.match(r"[A-Za-z_]", lines[j]):
                j -= 1
            start = j
        elif line.startswith("}") and start is not None:
            yield start + 1, i - start + 1
            start = None


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else "."
    broken = []
    for path, text in sources(root):
        for m in INCLUDE.finditer(text):
            inc = resolve(path, m.group(1), root)
            why = include_rules(path, inc)
            if why:
                broken.append(f"{path}: includes {inc}: {why}")
        if path.startswith("tests/"):
            continue
        n = text.count("\n")
        if n >= MAX_FILE_LINES:
            broken.append(f"{path}: {n} lines; split it by job (under "
                          f"{MAX_FILE_LINES})")
        for first, length in functions(text):
            if length > MAX_FUNCTION_LINES:
                broken.append(f"{path}:{first}: a function of {length} lines; "
                              f"split it (at most {MAX_FUNCTION_LINES})")
    for b in broken:
        print(b)
    print(f"structure: {len(broken)} broken rule(s)")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
