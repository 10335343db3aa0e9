#!/usr/bin/env python3
"""The exporter's module graph has no cycle, and no source module imports another.

Nodes are the crate's top-level modules (`config`, `clickhouse`, `framework`, ...), except that
each source under `src/sources/` is its own node (`sources::collector_runs`), apart from the
registry (`sources`, i.e. src/sources/mod.rs). An edge A -> B is any path `crate::B...` (in a
`use`, a type or an expression; `use crate::{a, b::c}` lists count too) or `super::...` that
leaves A, written in a file of A outside comments and `#[cfg(test)]` test modules' own files
(tests may read anything). Standard library only.

Usage: module_graph.py [SRC_DIR]   (exit 1 with the cycle or the offending import)
"""
import os
import re
import sys

SRC = sys.argv[1] if len(sys.argv) > 1 and not sys.argv[1].startswith("--") else os.path.join(os.path.dirname(__file__), "..", "..", "src")
SRC = os.path.abspath(SRC)
BINARIES = {"main.rs"}  # the binary crate sits above everything


def module_path(rel):
    """['sources', 'collector_runs', 'model'] for sources/collector_runs/model.rs."""
    parts = rel[:-3].split(os.sep)
    if parts[-1] in ("mod", "lib"):
        parts = parts[:-1]
    return parts


def node(parts):
    if not parts:
        return None
    if parts[0] == "sources" and len(parts) >= 2:
        return "sources::" + parts[1]
    return parts[0]


def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def expand_use_lists(text):
    """`crate::{a, b::{c, d}}` -> the first segment of each branch, as `crate::a`, `crate::b`."""
    out = []
    for m in re.finditer(r"\bcrate::\{", text):
        depth, i = 1, m.end()
        start = i
        while i < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        inner = text[start:i - 1]
        # top-level branches only
        depth, cur, branches = 0, "", []
        for ch in inner:
            if ch == "," and depth == 0:
                branches.append(cur)
                cur = ""
                continue
            depth += {"{": 1, "}": -1}.get(ch, 0)
            cur += ch
        branches.append(cur)
        for b in branches:
            b = b.strip()
            if b:
                out.append("crate::" + b)
    return out


def targets(text, here):
    # `crate::name!` is a macro exported at the crate root, not a module.
    paths = re.findall(r"\bcrate::((?:[a-z_][a-z0-9_]*)(?:::[a-z_][a-z0-9_]*)*)(?![a-z0-9_]*!)", text)
    paths += [p[len("crate::"):] for p in expand_use_lists(text)]
    found = set()
    for p in paths:
        segs = [s for s in re.split(r"::", p) if s and re.match(r"^[a-z_][a-z0-9_]*$", s)]
        found.add(node(segs))
    # `mod x;` declares a child module: the parent depends on it.
    for m in re.finditer(r"^\s*(?:pub(?:\([a-z]+\))?\s+)?mod\s+([a-z_][a-z0-9_]*)\s*;", text, re.M):
        found.add(node(here + [m.group(1)]))
    for m in re.finditer(r"\b((?:super::)+)([a-z_][a-z0-9_]*)", text):
        ups = m.group(1).count("super::")
        base = here[:-ups] if ups <= len(here) else []
        found.add(node(base + [m.group(2)]))
    return found


def graph():
    edges = {}
    for dirpath, _, files in os.walk(SRC):
        for f in files:
            if not f.endswith(".rs"):
                continue
            rel = os.path.relpath(os.path.join(dirpath, f), SRC)
            if rel in BINARIES:
                continue
            here = module_path(rel)
            if here and here[-1] == "tests":
                continue  # unit tests may read any module
            text = strip_comments(open(os.path.join(dirpath, f)).read())
            # inline test modules: cut at `#[cfg(test)]\nmod tests {` (always last in our files)
            cut = re.search(r"#\[cfg\(test\)\]\s*(pub\s+)?mod\s+\w+\s*\{", text)
            if cut:
                text = text[:cut.start()]
            src = node(here) or "lib"
            for t in targets(text, here):
                if t and t != src:
                    edges.setdefault(src, {}).setdefault(t, set()).add(rel)
    return edges


def find_cycle(edges):
    state, stack = {}, []

    def visit(n):
        state[n] = 1
        stack.append(n)
        for m in sorted(edges.get(n, {})):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if state.get(m) is None:
                c = visit(m)
                if c:
                    return c
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(edges):
        if state.get(n) is None:
            c = visit(n)
            if c:
                return c
    return None


def self_test():
    """The check fails when a cycle or a source-to-source import is put back (on a copy of src/)."""
    import shutil
    import subprocess
    import tempfile
    cases = [("config/mod.rs", "use crate::sources::NAMES;\n", "import cycle"),
             ("sources/cloudwatch.rs", "use crate::sources::sqs::model;\n", "imports source")]
    for rel, line, expect in cases:
        work = tempfile.mkdtemp()
        shutil.copytree(SRC, os.path.join(work, "src"))
        path = os.path.join(work, "src", rel)
        with open(path) as f:
            text = f.read()
        with open(path, "w") as f:
            f.write(line + text)
        out = subprocess.run([sys.executable, __file__, os.path.join(work, "src")], capture_output=True, text=True)
        shutil.rmtree(work)
        if out.returncode == 0 or expect not in out.stdout:
            print(f"FAIL self-test: adding {line.strip()!r} to {rel} was not reported ({out.stdout.strip()})")
            return 1
    print("ok   module graph check reports a cycle and a source importing a source put back")
    return 0


def main():
    if "--self-test" in sys.argv:
        sys.argv.remove("--self-test")
        return self_test()
    edges = graph()
    errors = []
    for a, outs in sorted(edges.items()):
        for b, files in sorted(outs.items()):
            if a.startswith("sources::") and b.startswith("sources::"):
                errors.append(f"source {a} imports source {b} ({', '.join(sorted(files))})")
    cycle = find_cycle(edges)
    if cycle:
        hops = []
        for a, b in zip(cycle, cycle[1:]):
            hops.append(f"{a} -> {b} ({', '.join(sorted(edges[a][b]))})")
        errors.append("import cycle:\n    " + "\n    ".join(hops))
    for e in errors:
        print("FAIL " + e)
    if errors:
        return 1
    print(f"ok   module graph: {len(edges)} modules, no cycle, no source imports another")
    return 0


if __name__ == "__main__":
    sys.exit(main())
