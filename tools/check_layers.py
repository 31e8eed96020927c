#!/usr/bin/python3
"""check_layers.py - the structural rules of embed, checked (make test-layers).

    tools/check_layers.py [CHECKS] [--objdir build/static] OBJECT.o...

`make test-layers` builds libembed.a and passes the objects it is made of
(build/static/<layer>/<file>.o, build/static/embed.o). The checks, each
selected by its flag (no flag: all of them):

  --cycles  from `nm` of each object, the graph "object A uses a symbol
            that object B defines"; any dependency cycle among objects is
            printed with the objects and the symbols of each edge.
  --order   an object may use only objects of its own layer or of a lower
            one: core < value < table < sql < io < embed (the folder of the
            object under --objdir; build/static/embed.o is layer embed).
  --lines   no source file under ext/ (.c, .h) over --max-lines (800) lines.
  --shadow  the shadow-table names are spelled only in the storage layer,
            ext/table/store*.c and store*.h: elsewhere under ext/, no
            `_vectors"`, `_config"`, `_state"` or `_log"` (the quote may be
            escaped, as inside a C string) and no printf-built
            `%s_vectors`, `%w_config`... .
  --spec    no tracked file of the repository (git ls-files, working-tree
            text) cites the spec document, which the repository does not
            hold: the all-caps word on its own (`<word> section 4`,
            `<word> 3`, `<word>.md`, `<word> §2`, `not in the <word>`), or
            the document's file name in any case. Identifiers that merely
            start or end with it (..._KEYS, ...IAL) are not citations, nor
            is the word used as a code name (`<word> = `, `<word>[`,
            `<word>->`).

Each check prints "layers: <check>: ok" or one "layers: <check>: ..." line
per violation; the exit status is 1 if any check failed, 2 on a usage error.
--root (default: the current folder) is the repository the source checks
read.
"""
import argparse
import os
import re
import subprocess
import sys
from collections import defaultdict, deque

LAYERS = ["core", "value", "table", "sql", "io", "embed"]
# a string that ends in a shadow table's suffix, but not an SQL function's
# name (embed_optimizer_state): those all begin with embed_
SHADOW_RE = re.compile(r'(?<!\bembed_optimizer)_(?:vectors|config|state|log)\\?"')
PRINTF_SHADOW_RE = re.compile(
    r'%[-#0 +\d.]*[sqQw]_(?:vectors|config|state|log)\b')
STORE_RE = re.compile(r"^ext/table/store[^/]*\.[ch]$")
WORD = "SP" "EC"  # spelled apart so that this file does not cite it
CITE_RE = re.compile(r"(?<![A-Za-z0-9_])%s(?![A-Za-z0-9_])"
                     r"(?!\s*(?:=(?!=)|\[|->|\.(?!md\b)\w))" % WORD)
DOC_RE = re.compile(r"(?<![A-Za-z0-9_])%s\.md\b" % WORD, re.I)


def die(msg):
    sys.stderr.write("check_layers: %s\n" % msg)
    sys.exit(2)


def report(check, problems):
    if not problems:
        print("layers: %s: ok" % check)
        return True
    for p in problems:
        print("layers: %s: %s" % (check, p))
    return False


# ---------------------------------------------------------------- objects

def read_objects(objects, objdir, nm):
    """{object name: (defined symbols, undefined symbols)}; names are
    relative to objdir (table/vtab.o)."""
    syms = {}
    for path in objects:
        name = os.path.relpath(path, objdir)
        if name.startswith(".."):
            die("%s is not under --objdir %s" %
                     (path, objdir))
        try:
            r = subprocess.run([nm, "-P", "-g", path], capture_output=True,
                               text=True)
        except OSError as e:
            die("cannot run %s: %s" % (nm, e))
        if r.returncode != 0:
            die("%s %s failed: %s" % (nm, path,
                                                         r.stderr.strip()))
        defined, undefined = set(), set()
        for line in r.stdout.splitlines():
            f = line.split()
            if len(f) < 2 or f[0].endswith(":"):
                continue
            (undefined if f[1] in ("U", "w", "v") else defined).add(f[0])
        syms[name] = (defined, undefined)
    return syms


def graph(syms):
    """{A: {B: [symbols of B that A uses]}}."""
    owner = defaultdict(list)
    for obj, (defined, _) in syms.items():
        for s in defined:
            owner[s].append(obj)
    g = {obj: defaultdict(list) for obj in syms}
    for obj, (_, undefined) in syms.items():
        for s in sorted(undefined):
            for other in owner.get(s, ()):
                if other != obj:
                    g[obj][other].append(s)
    return g


def components(g):
    """Strongly connected components of more than one object (Tarjan)."""
    index, low, on, stack, out = {}, {}, set(), [], []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(g[v]):
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
                out.append(sorted(comp))

    sys.setrecursionlimit(max(1000, 4 * len(g) + 100))
    for v in sorted(g):
        if v not in index:
            visit(v)
    return sorted(out)


def shortest_cycle(g, comp):
    """One shortest cycle inside a component, as a list of objects."""
    members = set(comp)
    best = None
    for start in comp:
        prev = {start: None}
        queue = deque([start])
        found = None
        while queue and not found:
            v = queue.popleft()
            for w in sorted(g[v]):
                if w not in members:
                    continue
                if w == start:
                    found = v
                    break
                if w not in prev:
                    prev[w] = v
                    queue.append(w)
        if found is None:
            continue
        path = [found]
        while prev[path[-1]] is not None:
            path.append(prev[path[-1]])
        path.reverse()
        if best is None or len(path) < len(best):
            best = path
    return best


def check_cycles(g):
    problems = []
    for comp in components(g):
        problems.append("cycle among %d objects: %s" % (len(comp),
                                                        " ".join(comp)))
        cyc = shortest_cycle(g, comp)
        problems.append("  shortest: %s" % " -> ".join(cyc + cyc[:1]))
        for a in comp:
            for b in sorted(g[a]):
                if b in comp:
                    problems.append("  %s -> %s: %s" % (a, b,
                                                        ", ".join(g[a][b])))
    return problems


def layer_of(obj):
    parts = obj.replace(os.sep, "/").split("/")
    return parts[0] if len(parts) > 1 else os.path.splitext(parts[0])[0]


def check_order(g):
    problems = []
    rank = {name: i for i, name in enumerate(LAYERS)}
    for a in sorted(g):
        if layer_of(a) not in rank:
            problems.append("%s: layer '%s' is not in the order %s" %
                            (a, layer_of(a), " < ".join(LAYERS)))
    for a in sorted(g):
        for b in sorted(g[a]):
            la, lb = layer_of(a), layer_of(b)
            if la in rank and lb in rank and rank[lb] > rank[la]:
                problems.append("%s (%s) uses %s (%s, a higher layer): %s" %
                                (a, la, b, lb, ", ".join(g[a][b])))
    return problems


# ---------------------------------------------------------------- sources

def ext_sources(root):
    out = []
    for d, dirs, files in os.walk(os.path.join(root, "ext")):
        dirs.sort()
        for f in sorted(files):
            if f.endswith((".c", ".h")):
                p = os.path.join(d, f)
                out.append((os.path.relpath(p, root).replace(os.sep, "/"), p))
    return out


def check_lines(root, limit):
    problems = []
    for name, path in ext_sources(root):
        with open(path, "rb") as f:
            n = f.read().count(b"\n")
        if n > limit:
            problems.append("%s: %d lines (over %d)" % (name, n, limit))
    return problems


def check_shadow(root):
    problems = []
    for name, path in ext_sources(root):
        if STORE_RE.match(name):
            continue
        with open(path, encoding="utf-8", errors="replace") as f:
            for n, line in enumerate(f, 1):
                if SHADOW_RE.search(line) or PRINTF_SHADOW_RE.search(line):
                    problems.append("%s:%d: %s" % (name, n,
                                                   line.strip()[:100]))
    return problems


def tracked_files(root):
    r = subprocess.run(["git", "-C", root, "ls-files", "-z"],
                       capture_output=True)
    if r.returncode != 0:
        die("git ls-files failed in %s: %s" %
                 (root, r.stderr.decode(errors="replace").strip()))
    return [p for p in r.stdout.decode().split("\0") if p]


def check_spec(root):
    problems = []
    for name in tracked_files(root):
        path = os.path.join(root, name)
        if not os.path.isfile(path) or os.path.islink(path):
            continue
        with open(path, "rb") as f:
            data = f.read()
        if b"\0" in data[:8192]:
            continue  # binary
        for n, line in enumerate(data.decode("utf-8", "replace").split("\n"),
                                 1):
            if CITE_RE.search(line) or DOC_RE.search(line):
                problems.append("%s:%d: %s" % (name, n, line.strip()[:100]))
    return problems


# ------------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("objects", nargs="*", help="the objects of libembed.a")
    ap.add_argument("--objdir", default="build/static",
                    help="the folder the objects are under (gives layers)")
    ap.add_argument("--root", default=".", help="the repository")
    ap.add_argument("--max-lines", type=int, default=800)
    ap.add_argument("--nm", default=os.environ.get("NM", "nm"))
    checks = ["cycles", "order", "lines", "shadow", "spec"]
    for c in checks:
        ap.add_argument("--" + c, action="store_true",
                        help="run this check (default: every check)")
    a = ap.parse_args()
    chosen = [c for c in checks if getattr(a, c)] or checks
    g = None
    if {"cycles", "order"} & set(chosen):
        if not a.objects:
            ap.error("--cycles and --order need the object files")
        g = graph(read_objects(a.objects, a.objdir, a.nm))
    ok = True
    for c in chosen:
        if c == "cycles":
            ok &= report(c, check_cycles(g))
        elif c == "order":
            ok &= report(c, check_order(g))
        elif c == "lines":
            ok &= report(c, check_lines(a.root, a.max_lines))
        elif c == "shadow":
            ok &= report(c, check_shadow(a.root))
        elif c == "spec":
            ok &= report(c, check_spec(a.root))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
