#!/usr/bin/env python3
"""Replace (or append) one section of bench/RESULTS.md, leaving every other section alone.

    section.py RESULTS.md NAME < section.md

The section is kept between `<!-- BEGIN NAME -->` and `<!-- END NAME -->` markers, so each
benchmark script rewrites only its own part and reruns do not pile up.
"""
import os
import sys

path, name = sys.argv[1], sys.argv[2]
body = sys.stdin.read().rstrip("\n") + "\n"
begin, end = f"<!-- BEGIN {name} -->", f"<!-- END {name} -->"
block = f"{begin}\n{body}{end}\n"
text = open(path).read() if os.path.exists(path) else "# Benchmark results\n\nEach section is written by the script it names; see bench/results/ for the raw runs.\n"
if begin in text and end in text:
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    tail = tail.strip("\n")
    text = head + block + ("\n" + tail + "\n" if tail else "")
else:
    text = text.rstrip("\n") + "\n\n" + block
open(path, "w").write(text)
