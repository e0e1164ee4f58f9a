#!/usr/bin/env python3
"""Checks the direction of src/: every file may include headers of its own layer and of the
layers below it, never above. The order is the one docs/ARCHITECTURE.md draws, bottom first.
Prints each include that points up a layer and exits 1 when there is one.

A second check keeps each layer to the libraries it is meant to use: codec and core see
neither libuv nor Lua, base sees neither either."""
import pathlib
import re
import sys

LAYERS = ["base", "codec", "core", "broker", "client", "lua", "stream", "transport", "http", "app", "server"]
# System headers a layer must not include (the layer's contract, not just taste).
FORBIDDEN = {
    "base": ["uv.h", "lua.h", "lauxlib.h", "lualib.h", "llhttp.h"],
    "codec": ["uv.h", "lua.h", "lauxlib.h", "lualib.h", "llhttp.h"],
    "core": ["uv.h", "lua.h", "lauxlib.h", "lualib.h", "llhttp.h"],
}
INCLUDE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]', re.M)


def main(src):
    rank = {name: i for i, name in enumerate(LAYERS)}
    problems = []
    files = sorted(p for p in src.glob("*/*") if p.suffix in (".c", ".h"))
    if not files:
        problems.append(f"no sources under {src}")
    for path in files:
        layer = path.parent.name
        rel = path.relative_to(src)
        if layer not in rank:
            problems.append(f"{rel}: folder '{layer}' is not a layer ({', '.join(LAYERS)})")
            continue
        text = path.read_text(errors="replace")
        for line_no, (kind, target) in enumerate_includes(text):
            if kind == "<":
                if target in FORBIDDEN.get(layer, []):
                    problems.append(f"{rel}:{line_no}: the {layer} layer may not include <{target}>")
                continue
            parts = target.split("/")
            if len(parts) != 2:
                problems.append(f"{rel}:{line_no}: include \"{target}\" should name its folder "
                                f"(\"<layer>/<file>.h\")")
                continue
            other = parts[0]
            if other not in rank:
                problems.append(f"{rel}:{line_no}: \"{target}\" is in no layer")
            elif not (src / target).exists():
                problems.append(f"{rel}:{line_no}: \"{target}\" does not exist")
            elif rank[other] > rank[layer]:
                problems.append(f"{rel}:{line_no}: {layer} includes \"{target}\", a layer above it")
    for p in problems:
        print(p)
    print(f"{len(files)} files, {len(problems)} problem(s)")
    return 1 if problems else 0


def enumerate_includes(text):
    for m in INCLUDE.finditer(text):
        yield text.count("\n", 0, m.start()) + 1, (m.group(1), m.group(2))


def self_test():
    """The check itself can fail: an include up a layer, a forbidden library in core, a
    folder that is no layer and an include without its folder are each caught, and a tree
    without them passes."""
    import tempfile
    cases = {
        "clean": ({"base/a.h": "", "core/b.c": '#include "base/a.h"\n#include <stdint.h>\n'}, 0),
        "upward": ({"server/s.h": "", "stream/x.c": '#include "server/s.h"\n'}, 1),
        "libuv in core": ({"core/c.c": "#include <uv.h>\n"}, 1),
        "no layer": ({"misc/m.c": ""}, 1),
        "no folder": ({"base/a.h": "", "base/b.c": '#include "a.h"\n'}, 1),
    }
    failed = 0
    for name, (files, want) in cases.items():
        with tempfile.TemporaryDirectory() as d:
            for rel, text in files.items():
                path = pathlib.Path(d) / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text)
            got = main(pathlib.Path(d))
        if got != want:
            print(f"self-test '{name}': exit {got}, expected {want}")
            failed = 1
    return failed


if __name__ == "__main__":
    if sys.argv[1:] == ["--self-test"]:
        sys.exit(self_test())
    root = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else pathlib.Path(__file__).resolve().parents[2] / "src"
    sys.exit(main(root))
