#!/usr/bin/env python3
"""Finds import circles between source files of each crate: two or more files that reach
each other through `crate::`, `super::` or `self::` paths (a circle means neither can be
read, changed or moved on its own). A module and the files below it (`mod.rs`/`lib.rs`
and its submodules) may use each other freely: that is one module's inside.

    .ci/import-circles.py [CRATE_SRC_DIR ...]   (default: every crate of the workspace)

Exits 1 and names the files of each circle, 0 when there is none."""

import os
import re
import sys

PATH = re.compile(r"\b(crate|super|self)((?:::\w+)+|::\{[^;]*?\})", re.S)


def module_files(src):
    """module path (tuple) -> file, for every .rs file under src."""
    mods = {}
    for dirpath, _, files in os.walk(src):
        for f in files:
            if not f.endswith(".rs"):
                continue
            rel = os.path.relpath(os.path.join(dirpath, f), src)
            parts = rel[:-3].split(os.sep)
            if parts[-1] in ("mod", "lib", "main"):
                parts = parts[:-1]
            if parts == ["build"]:
                continue
            mods[tuple(parts)] = os.path.join(src, rel)
    return mods


def targets(base, rest):
    """The paths named by `rest` (`::a::b` or `::{a, b::c}`) relative to `base`."""
    rest = rest.strip()
    if rest.startswith("::{"):
        inner = rest[3:-1]
        for item in re.split(r",(?![^{]*\})", inner):
            item = item.strip()
            names = re.findall(r"\w+", item.split("{")[0])
            if names and names[0] not in ("self",):
                yield base + tuple(names)
    else:
        yield base + tuple(rest.strip(":").split("::"))


def resolve(mods, path):
    """The longest prefix of `path` that is a file module."""
    for n in range(len(path), -1, -1):
        if path[:n] in mods:
            return path[:n]
    return ()


def edges(mods):
    out = {m: set() for m in mods}
    for m, file in mods.items():
        text = open(file, encoding="utf-8").read()
        text = re.sub(r"//[^\n]*", "", text)
        for kind, rest in PATH.findall(text):
            if kind == "crate":
                base = ()
            elif kind == "self":
                base = m
            else:
                base = m[:-1]
                while rest.startswith("::super"):
                    rest = rest[len("::super"):]
                    base = base[:-1]
            for t in targets(base, rest):
                r = resolve(mods, t)
                # A module and what is inside it are one: only siblings and cousins count.
                if r[: len(m)] == m or m[: len(r)] == r:
                    continue
                out[m].add(r)
    return out


def circles(graph):
    """Strongly connected components with more than one file (Tarjan)."""
    index, low, stack, on, found = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(comp)

    sys.setrecursionlimit(10000)
    for v in graph:
        if v not in index:
            visit(v)
    return found


def main():
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    srcs = sys.argv[1:] or [os.path.join(root, "src-tauri")] + sorted(
        os.path.join(root, "crates", c, "src") for c in os.listdir(os.path.join(root, "crates"))
    )
    bad = 0
    for src in srcs:
        mods = module_files(src)
        for comp in circles(edges(mods)):
            bad += 1
            files = sorted(os.path.relpath(mods[m], root) for m in comp)
            print("import circle: " + " <-> ".join(files))
    if bad:
        sys.exit(1)
    print(f"no import circles in {len(srcs)} crates")


if __name__ == "__main__":
    main()
