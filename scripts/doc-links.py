#!/usr/bin/env python3
"""Fails when a citation or a link names a file or a section that does not exist.

Why: tests and code cite the contract (`docs/spec/redis-sessions.md#operations`) and the
docs link to each other; a citation of a file that is not in the repository (as tests once
cited `spec/redis-sessions.md`) sends the reader nowhere, and nothing else notices.

Checks, over the files git tracks:
- every mention of a `spec/<page>.md` path, in any text file (Rust comments included): the
  path must resolve from the repository root or from the citing file's folder, and its
  `#section`, when given, must be a heading of that page;
- every relative Markdown link `[text](path#section)` of the Markdown files: the path must
  exist, and a `#section` of a Markdown page must be one of its headings (GitHub's anchors).
Usage: scripts/doc-links.py            (from anywhere; exit 1 on a dead citation or link)
       scripts/doc-links.py --self-test"""
import os, re, subprocess, sys, tempfile

SPEC = re.compile(r"(?<![\w/.-])((?:\.{1,2}/)*(?:[\w.-]+/)*spec/[\w-]+\.md)(#[\w-]+)?")
LINK = re.compile(r"\]\(\s*<?([^)\s>]*?)(#[^)\s>]*)?>?(?:\s+\"[^\"]*\")?\s*\)")
TEXT = (".rs", ".md", ".py", ".sh", ".toml", ".js", ".lua", ".txt", ".yml", ".yaml")


def anchors(path):
    """The anchors GitHub gives the headings of a Markdown page."""
    seen, out, in_code = {}, set(), False
    for line in open(path, encoding="utf-8"):
        if line.startswith("```"):
            in_code = not in_code
        m = None if in_code else re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not m:
            continue
        slug = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower().replace("`", "")).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
        out.update(re.findall(r'<a (?:name|id)="([^"]+)"', line))
    return out


def resolve(root, citing, target):
    for base in (root, os.path.dirname(os.path.join(root, citing))):
        path = os.path.normpath(os.path.join(base, target))
        if os.path.exists(path):
            return path
    return None


def check(root, files):
    problems = []
    cache = {}

    def section_ok(path, section):
        if not section or not path.endswith(".md") or not os.path.isfile(path):
            return True
        if path not in cache:
            cache[path] = anchors(path)
        return section[1:].lower() in cache[path]

    for rel in files:
        if not rel.endswith(TEXT) or rel == "scripts/doc-links.py":  # its own examples
            continue
        try:
            text = open(os.path.join(root, rel), encoding="utf-8").read()
        except (UnicodeDecodeError, FileNotFoundError):
            continue
        for n, line in enumerate(text.splitlines(), 1):
            # a Markdown link's target is checked as a link below, not twice
            cited = LINK.sub("]()", line) if rel.endswith(".md") else line
            for target, section in SPEC.findall(cited):
                path = resolve(root, rel, target)
                if path is None:
                    problems.append(f"{rel}:{n}: cites {target}, which is not in the repository")
                elif not section_ok(path, section):
                    problems.append(f"{rel}:{n}: cites {target}{section}: no such section")
            if not rel.endswith(".md"):
                continue
            for target, section in LINK.findall(line):
                if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
                    continue
                if not target:
                    path = os.path.join(root, rel)
                else:
                    path = os.path.normpath(os.path.join(os.path.dirname(os.path.join(root, rel)), target))
                    if not os.path.exists(path):
                        problems.append(f"{rel}:{n}: links {target}, which does not exist")
                        continue
                if not section_ok(path, section):
                    problems.append(f"{rel}:{n}: links {target}{section}: no such section")
    return problems


def self_test():
    tree = {
        "docs/spec/a.md": "# A page\n## Inputs and errors\nsee [b](../../b.md#kept) and [x](#a-page)\n",
        "b.md": "# Kept\n[gone](docs/none.md) [bad](docs/spec/a.md#nothing)\n",
        "t.rs": "//! cites docs/spec/a.md#inputs-and-errors and spec/a.md and docs/spec/a.md#nope\n",
    }
    expected = [
        "b.md:2: links docs/none.md, which does not exist",
        "b.md:2: links docs/spec/a.md#nothing: no such section",
        "t.rs:1: cites spec/a.md, which is not in the repository",
        "t.rs:1: cites docs/spec/a.md#nope: no such section",
    ]
    with tempfile.TemporaryDirectory() as root:
        for rel, text in tree.items():
            os.makedirs(os.path.dirname(os.path.join(root, rel)), exist_ok=True)
            open(os.path.join(root, rel), "w", encoding="utf-8").write(text)
        got = check(root, sorted(tree))
    ok = sorted(got) == sorted(expected)
    print(f"doc-links self-test: {'as expected' if ok else f'expected {expected}, got {got}'}")
    return ok


if __name__ == "__main__":
    if sys.argv[1:] == ["--self-test"]:
        sys.exit(0 if self_test() else 1)
    root = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    files = subprocess.run(["git", "ls-files"], cwd=root, capture_output=True, text=True, check=True).stdout.split()
    problems = check(root, files)
    for p in problems:
        print(p)
    print(f"doc-links: {len(problems)} dead citations or links" if problems else "doc-links: every citation and link resolves")
    sys.exit(1 if problems else 0)
