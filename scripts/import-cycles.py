#!/usr/bin/env python3
"""Fails when files of a crate import each other, directly or in a loop (issue #14: every
import points down). Reads each crate's src/ as text: a file refers to another when a code
line (comments and doc comments aside) names it by a `crate::`, `super::` or `self::` path,
or names a module it declares (`mod x;` does not count: that is the map, not an import).
The crate root (lib.rs/main.rs) only declares and re-exports, so a file that imports from
the root (`use crate::{Item}`) counts as a loop through it.
Usage: scripts/import-cycles.py crates/*/src"""
import os, re, sys

def module_files(src):
    files = {}
    for dirpath, _, names in os.walk(src):
        for name in names:
            if not name.endswith(".rs"):
                continue
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, src)[:-3].split(os.sep)
            if rel[-1] == "mod":
                rel = rel[:-1]
            if rel in (["lib"], ["main"]):
                rel = []
            if "bin" in rel[:1] or "tests" in rel[:1]:
                continue
            files[tuple(rel)] = path
    return files

PATH = re.compile(r"\b(crate|super|self)((?:::[A-Za-z_][A-Za-z0-9_]*)*)(::\{[^}]*\}?)?")

def code_lines(text):
    in_test = False
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#[cfg(test)]"):
            in_test = True  # unit tests may reach anywhere in their own file's tree
        if in_test:
            continue
        if stripped.startswith("//"):
            continue
        yield line.split("//")[0]

def edges(files):
    out = {m: set() for m in files}
    for module, path in files.items():
        for line in code_lines(open(path, encoding="utf-8").read()):
            for root, rest, group in PATH.findall(line):
                if not rest and not group:
                    continue  # `self.x`, `&self`: not a path
                base = {"crate": [], "self": list(module), "super": list(module[:-1])}[root]
                prefix = base + [p for p in rest.split("::") if p]
                # `use crate::{a, b::C, D}`: each name in braces is a path of its own
                names = re.findall(r"[A-Za-z_][A-Za-z0-9_]*", group) or [""]
                for name in names:
                    target = prefix + ([name] if name else [])
                    # the longest prefix that is a file of the crate
                    while target and tuple(target) not in files:
                        target.pop()
                    target = tuple(target)
                    if target != module:
                        out[module].add(target)
    return out

def cycles(graph):
    found, state, stack = [], {}, []
    def visit(node):
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                found.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2
    for node in sorted(graph):
        if node not in state:
            visit(node)
    return found

status = 0
for src in sys.argv[1:]:
    files = module_files(src)
    graph = edges(files)
    # The root declares every module: that edge is the map, so only edges *to* the root count.
    root_imports = [m for m, targets in graph.items() if () in targets and m != ()]
    graph[()] = set()
    name = lambda m: "::".join(m) or "(crate root)"
    for m in root_imports:
        print(f"{src}: {name(m)} imports from the crate root")
        status = 1
    for loop in cycles(graph):
        print(f"{src}: import loop " + " -> ".join(name(m) for m in loop))
        status = 1
sys.exit(status)
