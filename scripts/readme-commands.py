#!/usr/bin/env python3
"""Lists every command the READMEs and docs pages show, for scripts/readme-commands.sh to
run. The pages: README.md, CONTRIBUTING.md, crates/*/README.md and every docs/*.md page but
the records of past measurements (RECORDS below: their commands reproduce a past run at
full size or name tools we do not run). From each page: each line
of a ```sh block (continuation lines joined, comments dropped), and each `cargo …` or
`scripts/…` command quoted in the prose. A `curl` line followed by a comment that starts
with an HTTP status (`# 400 {...}`) expects that status; every other curl expects a 2xx.
Output: one line per command, `expected<TAB>command<TAB>page` (expected is `-` but for
curl; page is where it was first shown), in page order, each command once."""
import glob, re, sys

# Records of measurements made once, kept as they were; not operator instructions.
RECORDS = {"docs/cost-model.md", "docs/cluster-client-comparison.md", "docs/public-api.md"}


def readmes():
    docs = [p for p in sorted(glob.glob("docs/*.md")) if p not in RECORDS]
    return ["README.md", "CONTRIBUTING.md"] + sorted(glob.glob("crates/*/README.md")) + docs

def commands(path):
    try:
        lines = open(path, encoding="utf-8").read().splitlines()
    except FileNotFoundError:
        sys.exit(f"readme-commands.py: {path} is missing")
    out, in_block, fence_lang, pending = [], False, "", ""
    for i, line in enumerate(lines):
        fence = re.match(r"^```(\w*)", line)
        if fence:
            in_block, fence_lang = (not in_block), fence.group(1)
            continue
        if in_block and fence_lang in ("sh", "bash", "shell", "console"):
            text = pending + line.strip()
            if text.endswith("\\"):
                pending = text[:-1].rstrip() + " "
                continue
            pending = ""
            command = re.sub(r"\s+#.*$", "", text).strip()
            if not command or command.startswith("#"):
                continue
            expected = ""
            if command.startswith("curl "):
                following = lines[i + 1].strip() if i + 1 < len(lines) else ""
                status = re.match(r"^#\s*([1-5]\d\d)\b", following)
                expected = status.group(1) if status else "2xx"
            out.append((expected, re.sub(r"\s+", " ", command)))
        elif not in_block:
            for quoted in re.findall(r"`((?:cargo|scripts/)[^`]*)`", line):
                out.append(("", re.sub(r"\s+", " ", quoted.strip())))
    return out

seen = set()
for path in readmes():
    for expected, command in commands(path):
        if command in seen:
            continue
        seen.add(command)
        print(f"{expected or '-'}\t{command}\t{path}")
