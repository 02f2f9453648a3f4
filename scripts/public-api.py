#!/usr/bin/env python3
"""Lists a crate's public API from its rustdoc HTML (stable toolchain; `cargo public-api`
needs nightly): every item of all.html, with the fields, variants and inherent methods of
each type, and `#[non_exhaustive]` where it is declared. Run after
`cargo doc -p <crate> --no-deps`:  scripts/public-api.py target/doc/redis_sessions"""
import html, os, re, sys

def items(doc):
    text = open(os.path.join(doc, "all.html"), encoding="utf-8").read()
    for href, name in re.findall(r'<li><a href="([^"]+)">([^<]+)</a></li>', text):
        yield href, html.unescape(name)

def members(page):
    text = open(page, encoding="utf-8").read()
    decl = text.split('class="item-decl"', 1)[-1].split("</pre>", 1)[0]
    flags = " #[non_exhaustive]" if "non_exhaustive" in decl else ""
    fields = re.findall(r'id="structfield\.([A-Za-z0-9_]+)"', text)
    variants = re.findall(r'id="variant\.([A-Za-z0-9_]+)"', text)
    # Inherent methods only: the trait implementations come after this marker.
    inherent = text.split('id="trait-implementations"', 1)[0]
    methods = re.findall(r'id="(?:ty)?method\.([A-Za-z0-9_]+)"', inherent)
    return flags, fields, variants, list(dict.fromkeys(methods))

doc = sys.argv[1]
crate = os.path.basename(doc.rstrip("/"))
for href, name in sorted(items(doc), key=lambda i: i[0]):
    kind = href.split(".", 1)[0].split("/")[-1]
    line = f"{kind} {crate}::{name}"
    if kind in ("struct", "enum", "trait", "union"):
        flags, fields, variants, methods = members(os.path.join(doc, href))
        line += flags
        if fields:
            line += "\n    fields: " + ", ".join(fields)
        if variants:
            line += "\n    variants: " + ", ".join(variants)
        if methods:
            line += "\n    methods: " + ", ".join(methods)
    print(line)
