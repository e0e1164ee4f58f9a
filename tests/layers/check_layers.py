#!/usr/bin/env python3
"""Checks the direction of src/: every file may include headers of its own layer and of the
layers below it, never above. The order is the one docs/ARCHITECTURE.md draws, bottom first.
Prints each include that points up a layer and exits 1 when there is one.

A second check keeps each layer to the libraries it is meant to use: codec and core see
neither libuv nor Lua, base sees neither either."""
import pathlib
import re
import sys

LAYERS = ["base", "codec", "core", "broker", "lua", "stream", "transport", "http", "app", "server"]
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


if __name__ == "__main__":
    root = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else pathlib.Path(__file__).resolve().parents[2] / "src"
    sys.exit(main(root))
