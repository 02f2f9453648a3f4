#!/usr/bin/env python3
"""Fails when files of a crate import each other, directly or in a loop (issue #14: every
import points down). Reads each crate's src/ as text (comments, doc comments and the
`#[cfg(test)]` part of a file aside). A file refers to another when it names it by a path:
- `crate::a::b`, `super::b`, `self::b` (also `super::super::…`);
- a bare path through a child module the file declares (`mod b;` then `use b::X` or
  `b::f()`): a `mod.rs` that uses its children depends on them (`mod b;` alone does not
  count: that is the map, not an import);
- an item a parent module re-exports (`pub(crate) use b::X;` in mod.rs, then `super::X` in a
  sibling): the edge goes to the file that defines X, through any chain of re-exports; an
  item defined in mod.rs itself makes an edge to mod.rs.
The crate root (lib.rs) only declares and re-exports, so a file that imports from the root
(`use crate::{Item}`) counts as a loop through it. A binary's main.rs beside a lib.rs is
another crate and is not read.
Usage: scripts/import-cycles.py crates/*/src
       scripts/import-cycles.py --self-test   (runs the checker on small fixture trees)"""
import os, re, sys, tempfile

IDENT = r"[A-Za-z_][A-Za-z0-9_]*"


def module_files(src):
    files = {}
    has_lib = os.path.exists(os.path.join(src, "lib.rs"))
    for dirpath, _, names in os.walk(src):
        for name in names:
            if not name.endswith(".rs"):
                continue
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, src)[:-3].split(os.sep)
            if rel == ["main"] and has_lib:
                continue  # the binary: its own crate, which reaches the library by name
            if rel[-1] == "mod":
                rel = rel[:-1]
            if rel in (["lib"], ["main"]):
                rel = []
            if "bin" in rel[:1] or "tests" in rel[:1]:
                continue
            files[tuple(rel)] = path
    return files


def code_text(text):
    """The file's code: comments, string and char literals blanked, and everything from the
    first `#[cfg(test)]` on dropped (unit tests may reach anywhere in their own file's tree)."""
    cut = re.search(r"^\s*#\[cfg\(test\)\]", text, re.M)
    if cut:
        text = text[: cut.start()]
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            i = n if j < 0 else j + 2
            out.append(" ")
        elif c == '"' or (c == "r" and re.match(r'r#*"', text[i:]) and not re.match(r"\w", text[i - 1 : i] or " ")):
            m = re.match(r'r(#*)"', text[i:]) if c == "r" else None
            if m:  # raw string: ends at `"` followed by the same number of `#`
                end = text.find('"' + m.group(1), i + len(m.group(0)))
                i = n if end < 0 else end + 1 + len(m.group(1))
            else:
                j = i + 1
                while j < n and text[j] != '"':
                    j += 2 if text[j] == "\\" else 1
                i = j + 1
            out.append('""')
        elif c == "'" and re.match(r"'(\\.|[^\\'])'|'\\u\{[0-9a-fA-F]+\}'", text[i:]):
            m = re.match(r"'(\\.|[^\\'])'|'\\u\{[0-9a-fA-F]+\}'", text[i:])
            i += len(m.group(0))
            out.append("' '")
        else:
            out.append(c)
            i += 1
    return "".join(out)


def use_tree(tree):
    """`a::{b, c::{d as e, self}, *}` -> [(["a","b"], "b"), (["a","c","d"], "e"), (["a","c"], "c"), ...]"""
    tree = re.sub(r"\s+", "", re.sub(r"\s+as\s+", "@", tree))  # `d as e` -> `d@e`

    def parse(s, prefix):
        out = []
        depth, start, parts = 0, 0, []
        for k, ch in enumerate(s):
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
            elif ch == "," and depth == 0:
                parts.append(s[start:k])
                start = k + 1
        parts.append(s[start:])
        for part in filter(None, parts):
            brace = part.find("{")
            if brace >= 0:
                head = [p for p in part[:brace].split("::") if p]
                out += parse(part[brace + 1 : part.rfind("}")], prefix + head)
                continue
            alias = None
            if "@" in part:
                part, alias = part.split("@", 1)
            segs = [p for p in part.split("::") if p]
            if segs == ["self"]:
                out.append((prefix, alias or (prefix[-1] if prefix else "")))
            elif segs == ["*"]:
                out.append((prefix, "*"))
            else:
                out.append((prefix + segs, alias or segs[-1]))
        return out

    return parse(tree, [])


class Crate:
    def __init__(self, src):
        self.src = src
        self.files = module_files(src)
        self.text = {m: code_text(open(p, encoding="utf-8").read()) for m, p in self.files.items()}
        self.children = {
            m: set(re.findall(rf"^\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+({IDENT})\s*;", t, re.M))
            for m, t in self.text.items()
        }
        self.uses = {m: self._uses(t) for m, t in self.text.items()}
        self.reexport_cache = {}

    @staticmethod
    def _uses(text):
        """Every `use` of the file: (is_pub, [segments], name it binds)."""
        found = []
        for vis, tree in re.findall(r"(?:^|[;{}\n])\s*(pub(?:\([^)]*\))?\s+)?use\s+([^;]+);", text):
            for segs, name in use_tree(tree):
                found.append((bool(vis), segs, name))
        return found

    def base(self, module, segs):
        """Where a path starts, and the segments left; None for a path outside the crate."""
        segs = list(segs)
        if not segs:
            return None
        if segs[0] == "crate":
            return [], segs[1:]
        if segs[0] == "self":
            return list(module), segs[1:]
        if segs[0] == "super":
            cur = list(module)
            while segs and segs[0] == "super":
                if not cur:
                    return None
                cur.pop()
                segs = segs[1:]
            return cur, segs
        if segs[0] in self.children.get(module, ()):
            return list(module) + [segs[0]], segs[1:]
        return None

    def resolve(self, module, segs, seen=()):
        """The file a path names: the longest prefix that is a file, then through the
        re-exports of that (non-root) module to the file that defines the item."""
        start = self.base(module, segs)
        if start is None:
            return None
        cur, rest = start
        while rest and tuple(cur + [rest[0]]) in self.files:
            cur.append(rest.pop(0))
        cur = tuple(cur)
        if cur not in self.files:
            return None
        if rest and cur != () and (cur, rest[0]) not in seen:
            via = self.reexport(cur, rest[0], seen + ((cur, rest[0]),))
            if via is not None:
                return via
        return cur

    def reexport(self, module, name, seen):
        """The file that defines `name` when `module` re-exports it (`pub use x::name`)."""
        key = (module, name)
        if key in self.reexport_cache:
            return self.reexport_cache[key]
        found = None
        for is_pub, segs, bound in self.uses[module]:
            if is_pub and bound == name:
                found = self.resolve(module, segs, seen)
                break
        self.reexport_cache[key] = found
        return found

    def edges(self):
        out = {m: set() for m in self.files}
        path_re = re.compile(rf"(?<![A-Za-z0-9_:])({IDENT}(?:::{IDENT})+)")
        for module, text in self.text.items():
            paths = [segs for _, segs, _ in self.uses[module]]
            # paths in code (`crate::x::f()`, `child::Type`); `use` lines are read above
            body = re.sub(r"(?:^|(?<=[;{}\n]))\s*(?:pub(?:\([^)]*\))?\s+)?use\s+[^;]+;", " ", text)
            paths += [p.split("::") for p in path_re.findall(body)]
            for segs in paths:
                target = self.resolve(module, segs)
                if target is not None and target != module:
                    out[module].add(target)
        return out


def cycles(graph):
    found, state, stack = [], {}, []

    def visit(node):
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                found.append(stack[stack.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return found


def check(src, show=print):
    """Prints each import of the root and each loop of the crate at `src`; True when clean."""
    graph = Crate(src).edges()
    # The root declares every module: that edge is the map, so only edges *to* the root count.
    root_imports = [m for m, targets in graph.items() if () in targets and m != ()]
    graph[()] = set()
    name = lambda m: "::".join(m) or "(crate root)"
    for m in root_imports:
        show(f"{src}: {name(m)} imports from the crate root")
    loops = cycles(graph)
    for loop in loops:
        show(f"{src}: import loop " + " -> ".join(name(m) for m in loop))
    return not root_imports and not loops


FIXTURES = {
    # mod.rs uses its child `conn`; `conn` uses `target`; `target` reaches `conn` through the
    # parent's re-export: the loop of issue 24 (connection.rs <-> target.rs via mod.rs).
    "reexport_loop": (
        {
            "lib.rs": "mod store;\npub use store::Stats;\n",
            "store/mod.rs": "mod conn;\nmod target;\npub(crate) use conn::Connection;\n"
            "pub use conn::Stats;\nfn f() { conn::open(); }\n",
            "store/conn.rs": "use super::target::Target;\npub struct Connection;\npub struct Stats;\n",
            "store/target.rs": "use super::Connection;\npub struct Target;\n",
        },
        ["import loop store::conn -> store::target -> store::conn"],
    ),
    # a child imports an item defined in mod.rs, which uses the child by a bare path
    "parent_loop": (
        {
            "lib.rs": "mod store;\n",
            "store/mod.rs": "mod guard;\npub(crate) struct Timeouts;\n"
            "fn start() { guard::start(); }\n",
            "store/guard.rs": "// super::nothing in a comment\nuse super::Timeouts;\npub fn start() {}\n",
        },
        ["import loop store -> store::guard -> store"],
    ),
    # `crate::a::b` paths in code, multi-line use groups, string literals that look like paths
    "crate_paths_loop": (
        {
            "lib.rs": "mod a;\nmod b;\n",
            "a.rs": 'use crate::{\n    b::{self, B},\n};\nconst S: &str = "crate::nothing::here";\n',
            "b.rs": "pub struct B;\nfn f() { let _ = crate::a::g(); }\n",
        },
        ["import loop a -> b -> a"],
    ),
    # the same tree with every import pointing down: no loop, even though mod.rs names its
    # children and a child reaches a sibling through the parent's re-export
    "clean": (
        {
            "lib.rs": "mod store;\npub use store::Stats;\n",
            "store/mod.rs": "mod conn;\nmod guard;\nmod target;\npub(crate) use conn::Connection;\n"
            "pub use conn::Stats;\nfn f() { guard::start(); conn::open(); }\n",
            "store/conn.rs": "use super::target::Target;\npub struct Connection;\npub struct Stats;\n",
            "store/guard.rs": "use super::Connection;\npub fn start() {}\n"
            "#[cfg(test)]\nmod tests { use super::super::*; }\n",
            "store/target.rs": "pub struct Target;\n",
        },
        [],
    ),
    # importing from the crate root is a loop through it
    "root_import": (
        {"lib.rs": "mod a;\npub use a::A;\n", "a.rs": "use crate::A as Other;\npub struct A;\n"},
        ["a imports from the crate root"],
    ),
}


def self_test():
    failed = 0
    for name, (tree, expected) in FIXTURES.items():
        with tempfile.TemporaryDirectory() as root:
            for rel, text in tree.items():
                path = os.path.join(root, rel)
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(path, "w", encoding="utf-8") as f:
                    f.write(text)
            lines = []
            clean = check(root, lambda line: lines.append(line.split(": ", 1)[1]))
            if sorted(lines) != sorted(expected) or clean != (not expected):
                print(f"self-test {name}: expected {expected}, got {lines}")
                failed += 1
    print(f"import-cycles self-test: {len(FIXTURES) - failed} of {len(FIXTURES)} fixtures as expected")
    return failed == 0


if __name__ == "__main__":
    if sys.argv[1:] == ["--self-test"]:
        sys.exit(0 if self_test() else 1)
    ok = True
    for src in sys.argv[1:]:
        ok = check(src) and ok
    sys.exit(0 if ok else 1)
