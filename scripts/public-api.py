#!/usr/bin/env python3
"""Lists a crate's public API from its rustdoc HTML (stable toolchain; `cargo public-api`
needs nightly): every item of all.html with its declaration (signature, public fields,
variants, `#[non_exhaustive]`), the signature of each inherent method, its trait
implementations and whether it is Send/Sync.

Why: a change of the public API must be a decision, seen in review. The recorded lists are
committed in docs/public-api/<crate>.txt; CI (scripts/test.sh) regenerates them and fails
on any difference that was not recorded.

Usage (after `cargo doc --workspace --no-deps`, which --check and --update do not run):
  scripts/public-api.py target/doc/redis_sessions   print one crate's list
  scripts/public-api.py --check                     diff every crate against docs/public-api/
  scripts/public-api.py --update                    record the current lists (commit them)"""
import difflib, html, os, re, sys

CRATES = ["redis_sessions", "redis_sessions_axum", "rest_sessions"]
RECORDED = "docs/public-api"
# Auto traits whose loss breaks callers (a future that is no longer Send, a type no longer
# shareable across threads). The rest vary with the toolchain's version, so are left out.
AUTO = ("Send", "Sync", "Unpin", "UnwindSafe", "RefUnwindSafe")


def text_of(fragment):
    """The text of an HTML fragment: tags dropped, entities decoded, whitespace collapsed."""
    fragment = re.sub(r'<span class="since[^"]*"[^>]*>.*?</span>', "", fragment)
    fragment = re.sub(r'<a class="src[^"]*"[^>]*>.*?</a>', "", fragment)
    fragment = re.sub(r'<summary class="hideme">.*?</summary>', "", fragment, flags=re.S)  # "Show 32 fields"
    fragment = re.sub(r"<br\s*/?>|<(?:div|span) class=\"where[^\"]*\">", " ", fragment)
    text = html.unescape(re.sub(r"<[^>]+>", "", fragment))
    text = re.sub(r"\s+", " ", text).strip()
    return re.sub(r"\](?=pub)", "] ", text.strip("§ "))


def items(doc):
    text = open(os.path.join(doc, "all.html"), encoding="utf-8").read()
    for href, name in re.findall(r'<li><a href="([^"]+)">([^<]+)</a></li>', text):
        yield href, html.unescape(name)


def section(text, marker):
    """The part of a page from the heading `id=marker` to the next h2 heading."""
    start = text.find(f'id="{marker}"')
    if start < 0:
        return ""
    end = text.find("<h2", start + 1)
    return text[start : end if end >= 0 else len(text)]


def describe(page):
    """The lines for one item page: declaration, methods, trait impls, auto traits."""
    text = open(page, encoding="utf-8").read()
    lines = []
    decl = re.search(r'<pre class="rust item-decl">(.*?)</pre>', text, re.S)
    if decl:
        lines.append("decl: " + text_of(decl.group(1)))
    inherent = section(text, "implementations")
    for sig in re.findall(r'<section id="(?:ty)?method\.[^"]+"[^>]*>(.*?)</section>', inherent, re.S):
        lines.append("fn: " + text_of(sig))
    for sig in re.findall(r'<section id="associatedconstant\.[^"]+"[^>]*>(.*?)</section>', inherent, re.S):
        lines.append("const: " + text_of(sig))
    for head in re.findall(r'<section id="impl-[^"]*"[^>]*>(.*?)</section>', section(text, "trait-implementations"), re.S):
        lines.append(text_of(head))
    auto = section(text, "synthetic-implementations")
    for head in re.findall(r'<section id="impl-[^"]*"[^>]*>(.*?)</section>', auto, re.S):
        head = text_of(head)
        m = re.match(r"impl(?:<[^>]*>)? (!?)(\w+) for", head)
        if m and m.group(2) in AUTO:
            lines.append(head)
    return lines


def listing(doc):
    crate = os.path.basename(doc.rstrip("/"))
    out = []
    for href, name in sorted(items(doc), key=lambda i: i[0]):
        kind = href.split(".", 1)[0].split("/")[-1]
        out.append(f"{kind} {crate}::{name}")
        out += ["    " + line for line in describe(os.path.join(doc, href))]
    return "\n".join(out) + "\n"


def target_dir():
    # Where `cargo doc` wrote: CARGO_TARGET_DIR when set (a clone built against a shared
    # target), else the workspace's own target/.
    return os.environ.get("CARGO_TARGET_DIR") or "target"


def check(update):
    status = 0
    for crate in CRATES:
        doc = os.path.join(target_dir(), "doc", crate)
        if not os.path.exists(os.path.join(doc, "all.html")):
            print(f"public-api: {doc} missing; run `cargo doc --workspace --no-deps` first")
            return 1
        now = listing(doc)
        path = os.path.join(RECORDED, f"{crate}.txt")
        if update:
            os.makedirs(RECORDED, exist_ok=True)
            with open(path, "w", encoding="utf-8") as f:
                f.write(now)
            print(f"public-api: recorded {path} ({sum(not l.startswith(' ') for l in now.splitlines())} items)")
            continue
        recorded = open(path, encoding="utf-8").read() if os.path.exists(path) else ""
        if recorded != now:
            status = 1
            sys.stdout.writelines(
                difflib.unified_diff(
                    recorded.splitlines(True), now.splitlines(True), f"{path} (recorded)", f"{crate} (this build)"
                )
            )
    if status:
        print(
            "public-api: the public API differs from the recorded lists (above: - recorded, + now).\n"
            "If the change is meant, record it and commit the lists with the change:\n"
            "  cargo doc --workspace --no-deps && scripts/public-api.py --update"
        )
    elif not update:
        print(f"public-api: {', '.join(CRATES)} as recorded in {RECORDED}/")
    return status


if __name__ == "__main__":
    if sys.argv[1:] in (["--check"], ["--update"]):
        os.chdir(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
        sys.exit(check(sys.argv[1] == "--update"))
    if len(sys.argv) != 2 or sys.argv[1].startswith("-"):
        sys.exit(__doc__)
    sys.stdout.write(listing(sys.argv[1]))
