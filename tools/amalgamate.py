#!/usr/bin/python3
"""amalgamate.py - write embed as one C file, as SQLite and FTS5 ship.

    tools/amalgamate.py -I ext --header ext/embed.h -o dist/embed.c SRC...
    tools/amalgamate.py -I ext --check SRC...       (only the name check)

`make amalgamation` runs it with SRC = $(SRC) of the Makefile, the sources
in layer order. The output is the sources concatenated in that order, each
between /**** begin file ... ****/ and /**** end file ... ****/ markers,
with every local `#include "..."` (one found next to the including file or
under an -I folder, as the compiler would) replaced by the header's text the
first time it is seen and dropped afterwards; <system> includes and the
SQLite headers (sqlite3.h, sqlite3ext.h: not under ext/) are kept. --header
names the public header whose EMBED_VERSION the output's header comment
states (make copies that header to dist/embed.h as is). --line-directives
adds #line directives, so that compiler messages name the original files.

Python 3 (the Makefile's /usr/bin/python3) rather than sh+awk: the name
check needs a small C tokenizer, which awk would make hard to read.

The name check. In one translation unit, names that each source file kept to
itself collide: static functions and variables, enumerators, typedefs and
struct/union/enum tags defined in .c files, and macros. Before writing,
every source is run through the preprocessor (`$CC -E -dD`, once as the
loadable and once as the -DSQLITE_CORE form, so that macro-generated statics
count) and the file-scope names of each file under the -I folders are
collected. Reported, with file:line: a name declared in two files that no
compilation of the normal build sees together (two sources, or a header
and a source that does not include it; compatible extern declarations
aside); a macro defined in an earlier file that a later file, which does
not see it in its own build, uses as an ordinary name; a feature-test macro
(_GNU_SOURCE ...) defined after system headers were already included. Any
finding: nothing is written and the exit status is 1 (--force writes anyway).
Branches the host preprocessor does not take (the NEON kernels on x86) are
not checked; the compiler sees what the check does not.

A local #include inside #if/#ifdef is refused: a header is inlined once,
where it is first seen, so a conditional first inclusion would hide it from
every later file.
"""
import argparse
import os
import re
import shlex
import subprocess
import sys
import tempfile

INCLUDE_RE = re.compile(r'^\s*#\s*include\s*"([^"]+)"')
COND_OPEN_RE = re.compile(r"^\s*#\s*if(n?def)?\b")
COND_CLOSE_RE = re.compile(r"^\s*#\s*endif\b")
VERSION_RE = re.compile(r'^\s*#\s*define\s+EMBED_VERSION\s+"([^"]*)"', re.M)
LINEMARK_RE = re.compile(r'^#\s*(\d+)\s+"((?:[^"\\]|\\.)*)"')
DEFINE_RE = re.compile(r"^#\s*define\s+([A-Za-z_]\w*)(.*)$")
UNDEF_RE = re.compile(r"^\s*#\s*undef\s+([A-Za-z_]\w*)")
TOKEN_RE = re.compile(
    r"""(?P<id>[A-Za-z_]\w*)|(?P<num>\.?\d(?:[eEpP][+-]|[\w.])*)"""
    r"""|(?P<str>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')|(?P<ws>\s+)"""
    r"""|(?P<op>\S)""")
FEATURE_MACROS = {"_GNU_SOURCE", "_POSIX_C_SOURCE", "_XOPEN_SOURCE",
                  "_DEFAULT_SOURCE", "_BSD_SOURCE", "_FILE_OFFSET_BITS",
                  "_LARGEFILE_SOURCE", "_LARGEFILE64_SOURCE",
                  "_DARWIN_C_SOURCE", "_ISOC99_SOURCE", "_ISOC11_SOURCE"}
KEYWORDS = set("""auto break case char const continue default do double else
enum extern float for goto if inline int long register restrict return short
signed sizeof static struct switch typedef union unsigned void volatile while
_Alignas _Alignof _Atomic _Bool _Complex _Generic _Imaginary _Noreturn
_Static_assert _Thread_local __inline __inline__ __restrict __restrict__
__const __const__ __volatile__ __signed__ __extension__ __attribute__
__attribute __declspec __asm__ __asm asm __typeof__ __typeof typeof
__int128 __builtin_va_list _Float16 _Float32 _Float64 _Float128""".split())
ATTRS = {"__attribute__", "__attribute", "__declspec", "_Alignas", "__asm__",
         "__asm", "asm"}


def die(msg):
    sys.stderr.write("amalgamate: %s\n" % msg)
    sys.exit(2)


def rel(path):
    return os.path.relpath(os.path.normpath(path))


def resolve(name, including, incdirs):
    """The file `#include "name"` in `including` opens, or None when it is
    not a local header (then the include is kept)."""
    for d in [os.path.dirname(including)] + incdirs:
        p = os.path.join(d, name)
        if os.path.isfile(p):
            return rel(p)
    return None


# ------------------------------------------------------------- generation

def guard_line(text):
    """The line of an include guard's #ifndef (it does not make the includes
    inside it conditional), or 0."""
    directives = [(n, line) for n, line in enumerate(text.splitlines(), 1)
                  if re.match(r"\s*#", line)]
    if len(directives) >= 2:
        (n, a), (_, b) = directives[:2]
        m = re.match(r"\s*#\s*ifndef\s+(\w+)", a)
        if m and re.match(r"\s*#\s*define\s+%s\b" % m.group(1), b):
            return n
    return 0


def emit(path, incdirs, seen, out, lines_on):
    """Append `path` to out, inlining its local headers not yet seen."""
    out.append("/**** begin file %s ****/\n" % path)
    if lines_on:
        out.append('#line 1 "%s"\n' % path)
    depth = 0
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if not text.endswith("\n"):
        text += "\n"
    guard = guard_line(text)
    for n, line in enumerate(text.splitlines(True), 1):
        if COND_OPEN_RE.match(line) and n != guard:
            depth += 1
        elif COND_CLOSE_RE.match(line):
            depth -= 1
        m = INCLUDE_RE.match(line)
        target = m and resolve(m.group(1), path, incdirs)
        if not target:
            out.append(line)
            continue
        if depth > 0:
            die("%s:%d: local #include inside #if: a header is inlined "
                "once, so its first inclusion must not be conditional"
                % (path, n))
        if target in seen:
            out.append('/* #include "%s" (inlined above) */\n' % m.group(1))
            continue
        seen.add(target)
        emit(target, incdirs, seen, out, lines_on)
        if lines_on:
            out.append('#line %d "%s"\n' % (n + 1, path))
    out.append("/**** end file %s ****/\n" % path)


def banner(version, commit, header):
    src = ("from the sources of git commit %s" % commit if commit else
           "from the sources under ext/")
    hname = os.path.basename(header) if header else "embed.h"
    return """\
/*
** embed.c - the amalgamation of embed %(v)s: the whole embed SQLite
** extension (float32 embedding tables keyed by token id, vector SQL
** functions, training) in one C file, generated by tools/amalgamate.py
** %(src)s.
** Do not edit: edit the sources under ext/ and run `make amalgamation`.
**
** Needs only SQLite's sqlite3.h and sqlite3ext.h on the include path (on
** Debian: libsqlite3-dev), and GNU C11 or later with POSIX (the compilers'
** default; with a strict -std=c11 add -D_GNU_SOURCE). Build it as
**
**   the loadable extension (then `.load ./embed` in the sqlite3 shell):
**       cc -O2 -shared -fPIC embed.c -o embed.so -lm
**       (macOS: cc -O2 -dynamiclib embed.c -o embed.dylib)
**
**   or for static linking into an application that ships SQLite:
**       cc -O2 -DSQLITE_CORE -c embed.c
**   and, before opening connections, call (declared in %(h)s):
**       sqlite3_auto_extension((void (*)(void))sqlite3_embed_init);
*/
""" % {"v": version, "src": src, "h": hname}


def git_commit():
    try:
        r = subprocess.run(["git", "describe", "--always", "--dirty",
                            "--abbrev=12"], capture_output=True, text=True,
                           timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return r.stdout.strip() if r.returncode == 0 else None


def write_atomic(path, text):
    d = os.path.dirname(path) or "."
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".amalgamate.")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


# ------------------------------------------------------------ name check

class Unit:
    """What one file under the -I folders declares at file scope."""

    def __init__(self, path):
        self.path = path
        self.names = {}     # (space, name) -> (kind, line)
        self.macros = {}    # name -> (line, body)
        self.sees = {path}  # this file and every header it includes
        self.undefs = set()  # its macros it #undefs again


def preprocess(cc, flags, path):
    cmd = shlex.split(cc) + ["-E", "-dD"] + flags + [path]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        die("%s failed:\n%s" % (" ".join(cmd), r.stderr))
    return r.stdout


def tokens_of(text, mine, on_directive):
    """Tokens (kind, text, file, line) of preprocessor output, only for the
    files `mine` accepts; linemarkers set the place, #define/#undef lines
    go to on_directive(file, line, text)."""
    toks = []
    cur, line = None, 1
    for raw in text.split("\n"):
        if raw.startswith("#"):
            m = LINEMARK_RE.match(raw)
            if m:
                line = int(m.group(1))
                cur = rel(m.group(2)) if mine(m.group(2)) else None
                continue
            if cur:
                on_directive(cur, line, raw)
            line += 1
            continue
        if cur:
            for m in TOKEN_RE.finditer(raw):
                kind = m.lastgroup
                if kind != "ws":
                    toks.append((kind, m.group(), cur, line))
        line += 1
    return toks


def skip_group(toks, i):
    """Index after the bracket group that opens at toks[i]."""
    pairs = {"(": ")", "[": "]", "{": "}"}
    stack = [pairs[toks[i][1]]]
    i += 1
    while i < len(toks) and stack:
        t = toks[i][1]
        if t in pairs:
            stack.append(pairs[t])
        elif t == stack[-1]:
            stack.pop()
        i += 1
    return i


def declarations(toks):
    """Split file-scope tokens into declarations; function bodies dropped.
    Yields (tokens, is_function_definition)."""
    i, start = 0, 0
    while i < len(toks):
        t = toks[i][1]
        if t == ";":
            yield toks[start:i], False
            i += 1
            start = i
        elif t == "{":
            decl = strip_attrs(toks[start:i])
            end = skip_group(toks, i)
            if (decl and decl[-1][1] == ")" and
                    not any(x[1] == "=" for x in decl) and
                    toks[i - 1][1] != "="):
                yield toks[start:i], True
                start = end
            i = end
        elif t in "([":
            i = skip_group(toks, i)
        else:
            i += 1
    if start < len(toks):
        yield toks[start:], False


def strip_attrs(decl):
    out, i = [], 0
    while i < len(decl):
        if decl[i][1] in ATTRS and i + 1 < len(decl) and decl[i + 1][1] == "(":
            i = skip_group(decl, i + 1)
        elif decl[i][1] == "__extension__":
            i += 1
        else:
            out.append(decl[i])
            i += 1
    return out


def analyse(decl, is_def, add):
    """Record the names one file-scope declaration declares."""
    decl = strip_attrs(decl)
    if not decl or decl[0][1] in ("_Static_assert", "static_assert"):
        return
    words = {t[1] for t in decl if t[0] == "id"}
    storage = ("typedef" if "typedef" in words else
               "static" if "static" in words else "extern")
    # struct/union/enum bodies: tags, enumerators; then replace by one token
    flat, i = [], 0
    while i < len(decl):
        t = decl[i]
        if t[1] in ("struct", "union", "enum"):
            j = i + 1
            tag = None
            if j < len(decl) and decl[j][0] == "id":
                tag = decl[j]
                j += 1
            if j < len(decl) and decl[j][1] == "{":
                end = skip_group(decl, j)
                body = decl[j + 1:end - 1]
                if tag:
                    add("tag", tag[1], t[1] + " tag", tag)
                enum_bodies(body, t[1] == "enum", add)
                flat.append(("body", "{}", t[2], t[3]))
                i = end
                continue
            flat.append(t)
            if tag:
                flat.append(("tag", tag[1], tag[2], tag[3]))
            i = j
            continue
        flat.append(t)
        i += 1
    # declarators: split at depth-0 commas; the name is the first ordinary
    # identifier followed by ( ) [ = , ; or the end
    segs, cur, i = [], [], 0
    while i < len(flat):
        t = flat[i]
        if t[1] in "([{" and t[0] == "op":
            end = skip_group(flat, i)
            cur.extend(flat[i:end])
            i = end
            continue
        if t[1] == ",":
            segs.append(cur)
            cur = []
        else:
            cur.append(t)
        i += 1
    segs.append(cur)
    for seg in segs:
        for k, t in enumerate(seg):
            if t[0] != "id" or t[1] in KEYWORDS:
                continue
            nxt = seg[k + 1][1] if k + 1 < len(seg) else ";"
            if nxt not in ("(", ")", "[", "=", ";"):
                continue
            func = nxt == "(" or (nxt == ")" and is_def)
            if storage == "typedef":
                kind = "typedef"
            elif func:
                kind = "static function" if storage == "static" else "function"
            else:
                kind = "static variable" if storage == "static" else "variable"
            add("name", t[1], kind, t)
            break
        if is_def:
            break


def enum_bodies(body, is_enum, add):
    """Enumerators of an enum body; nested enum bodies inside a struct."""
    if is_enum:
        expect = True
        i = 0
        while i < len(body):
            t = body[i]
            if t[1] in "([{" and t[0] == "op":
                i = skip_group(body, i)
                continue
            if expect and t[0] == "id":
                add("name", t[1], "enumerator", t)
                expect = False
            elif t[1] == ",":
                expect = True
            i += 1
        return
    for i, t in enumerate(body):
        if t[1] == "enum":
            j = i + 1 + (i + 1 < len(body) and body[i + 1][0] == "id")
            if j < len(body) and body[j][1] == "{":
                end = skip_group(body, j)
                enum_bodies(body[j + 1:end - 1], True, add)


def check_names(sources, incdirs, cc, cflags):
    """The findings (strings) of the name check; [] when the sources can
    share one translation unit."""
    roots = tuple(os.path.abspath(d) + os.sep for d in incdirs)
    own = {os.path.abspath(s) for s in sources}

    def mine(p):
        p = os.path.abspath(p)
        return p.startswith(roots) or p in own

    units = {}

    def unit(p):
        if p not in units:
            units[p] = Unit(p)
        return units[p]

    all_tokens = {}  # .c file -> its tokens, both forms (macro-use check)
    for src in sources:
        for extra in ([], ["-DSQLITE_CORE"]):
            def directive(f, line, raw):
                m = DEFINE_RE.match(raw)
                if m:
                    unit(f).macros.setdefault(m.group(1), (line, m.group(2)))
                m = UNDEF_RE.match(raw)
                if m and m.group(1) in unit(f).macros:
                    unit(f).undefs.add(m.group(1))
            toks = tokens_of(preprocess(cc, cflags + extra, src), mine,
                             directive)
            unit(src).sees.update(t[2] for t in toks)
            unit(src).sees.update(headers_of(src, incdirs))
            all_tokens.setdefault(src, []).extend(toks)

            def add(space, name, kind, tok):
                u = unit(tok[2])
                key = (space, name)
                if key not in u.names or u.names[key][0] == "function":
                    u.names[key] = (kind, tok[3])
            for decl, is_def in declarations(toks):
                analyse(decl, is_def, add)
    for u in units.values():  # a header sees what it includes
        if u.path not in sources:
            u.sees.update(headers_of(u.path, incdirs))

    def related(a, b):
        """Compiled together in the normal build (so the compiler already
        judged any name they share)."""
        return (a.path in b.sees or b.path in a.sees or
                any(a.path in units[s].sees and b.path in units[s].sees
                    for s in sources))

    def position(u):
        """Where u starts in the amalgamation (a header: before its first
        includer's own text)."""
        return min((i, 0 if u.path != s else 1) for i, s in
                   enumerate(sources) if u.path in units[s].sees)

    findings = []
    ulist = [units[p] for p in sorted(units)]
    compatible = {"function", "variable"}
    for ai, a in enumerate(ulist):
        for b in ulist[ai + 1:]:
            if related(a, b):
                continue
            for key in sorted(set(a.names) & set(b.names)):
                ka, la = a.names[key]
                kb, lb = b.names[key]
                if ka in compatible and kb in compatible:
                    continue
                findings.append("name collision: %s '%s' in %s:%d and %s "
                                "'%s' in %s:%d" % (ka, key[1], a.path, la, kb,
                                                   key[1], b.path, lb))
            first = min(a, b, key=position)
            for name in sorted(set(a.macros) & set(b.macros)):
                if name in first.undefs:
                    continue  # gone before the other file defines it
                (la, ba), (lb, bb) = a.macros[name], b.macros[name]
                same = " (same definition)" if ba.strip() == bb.strip() else ""
                findings.append("macro collision: '%s' defined in %s:%d and "
                                "%s:%d%s" % (name, a.path, la, b.path, lb,
                                             same))
    # macros still defined when a later file, which does not see them in its
    # own build, uses the name; feature-test macros after system headers
    live = {}  # macro name -> the file that defined it
    done = set()  # files already in the amalgamation
    for idx, src in enumerate(sources):
        me = units[src]
        for f, ln, name in uses(all_tokens[src], me.sees - done):
            owner = live.get(name)
            if owner and owner not in me.sees:
                findings.append("macro leak: '%s' from %s:%d is still "
                                "defined where %s:%d uses the name"
                                % (name, owner, units[owner].macros[name][0],
                                   f, ln))
        for p in sorted(me.sees - done):
            for name in units[p].macros if p in units and idx > 0 else ():
                if name in FEATURE_MACROS:
                    findings.append(
                        "feature-test macro: %s:%d defines %s, but in the "
                        "amalgamation earlier files already included the "
                        "system headers (define it in the first file or on "
                        "the command line)" % (p, units[p].macros[name][0],
                                               name))
            for name in units[p].macros if p in units else ():
                live.setdefault(name, p)
        done |= me.sees
        undef_file_local(src, live)
    return sorted(set(findings), key=findings.index)


def headers_of(path, incdirs, acc=None):
    """The local headers `path` includes, transitively (textual)."""
    acc = set() if acc is None else acc
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError:
        return acc
    for line in text.splitlines():
        m = INCLUDE_RE.match(line)
        t = m and resolve(m.group(1), path, incdirs)
        if t and t not in acc:
            acc.add(t)
            headers_of(t, incdirs, acc)
    return acc


def uses(toks, files):
    """(file, line, name) of the ordinary identifiers in `files` (a source
    and the headers first inlined with it; macro names are already expanded
    away), and of the names their #if/#ifdef lines test."""
    for t in toks:
        if t[0] == "id" and t[2] in files:
            yield t[2], t[3], t[1]
    for p in sorted(files):
        with open(p, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if re.match(r"\s*#\s*(if|ifdef|ifndef|elif)\b", line):
                    for name in re.findall(r"[A-Za-z_]\w*", line)[1:]:
                        yield p, n, name


def undef_file_local(src, live):
    """#undef lines of src end a macro's life in the amalgamation too."""
    with open(src, encoding="utf-8") as f:
        for line in f:
            m = UNDEF_RE.match(line.strip())
            if m:
                live.pop(m.group(1), None)


# ------------------------------------------------------------------ main

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("sources", nargs="+", help=".c files, in layer order")
    ap.add_argument("-I", dest="incdirs", action="append", default=[],
                    help="folder of local headers (as the compiler's -I)")
    ap.add_argument("-o", dest="output", help="the amalgamation to write")
    ap.add_argument("--header", help="the public header, whose "
                    "EMBED_VERSION the banner states")
    ap.add_argument("--check", action="store_true",
                    help="only run the name check, write nothing")
    ap.add_argument("--force", action="store_true",
                    help="write even when the name check finds collisions")
    ap.add_argument("--line-directives", action="store_true",
                    help="emit #line so messages name the original files")
    ap.add_argument("--cc", default=os.environ.get("CC", "cc"),
                    help="compiler whose preprocessor the check runs")
    ap.add_argument("--cflags", default="-std=gnu11",
                    help="flags for the preprocessor (besides -I)")
    a = ap.parse_args()
    if not a.check and not a.output:
        ap.error("-o is required unless --check")
    sources = [rel(s) for s in a.sources]
    for s in sources:
        if not os.path.isfile(s):
            die("no such source: %s" % s)
    cflags = shlex.split(a.cflags) + ["-I" + d for d in a.incdirs]
    findings = check_names(sources, a.incdirs, a.cc, cflags)
    for f in findings:
        sys.stderr.write("amalgamate: %s\n" % f)
    if findings:
        sys.stderr.write("amalgamate: %d problem(s): rename the file-scope "
                         "names (or move shared ones to a header)%s\n"
                         % (len(findings), "" if a.force or a.check
                            else "; nothing written"))
    if a.check:
        return 1 if findings else 0
    if findings and not a.force:
        return 1
    version = "(unknown version)"
    if a.header:
        with open(a.header, encoding="utf-8") as f:
            m = VERSION_RE.search(f.read())
        if not m:
            die("%s defines no EMBED_VERSION" % a.header)
        version = m.group(1)
    out = [banner(version, git_commit(), a.header)]
    seen = set()
    for s in sources:
        emit(s, a.incdirs, seen, out, a.line_directives)
    write_atomic(a.output, "".join(out))
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
