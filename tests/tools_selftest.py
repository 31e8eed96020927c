#!/usr/bin/python3
"""Self-test of the build tools (make test-tools): tools/amalgamate.py and
tools/check_layers.py on small made-up source trees and objects in a
scratch folder, each check once on input it must reject and once on input
it must accept. Needs cc, nm and git; not collected by pytest (the name).

    /usr/bin/python3 tests/tools_selftest.py
"""
import os
import subprocess
import sys
import tempfile
import traceback

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
AMALGAMATE = os.path.join(ROOT, "tools", "amalgamate.py")
CHECK = os.path.join(ROOT, "tools", "check_layers.py")
CC = os.environ.get("CC", "cc")
WARN = ["-std=gnu11", "-Wall", "-Wextra", "-Werror", "-Wshadow",
        "-Wstrict-prototypes"]
WORD = "SP" "EC"  # the cited document's name, spelled apart (see --spec)


def run(cmd, cwd):
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    return r.returncode, r.stdout + r.stderr


def write(root, files):
    for name, text in files.items():
        path = os.path.join(root, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(text)


def expect(cond, what, out=""):
    if not cond:
        raise AssertionError(what + ("\n--- output:\n" + out if out else ""))


# ------------------------------------------------------------ amalgamate

HEADER = """\
#ifndef UTIL_H
#define UTIL_H
#include <stddef.h>
#define UTIL_SCALE 3
typedef struct util_pair { int a, b; } util_pair;
int util_sum(const util_pair *p);
#endif
"""
PUBLIC = '#ifndef PUB_H\n#define PUB_H\n#define EMBED_VERSION "9.8.7"\n' \
         'int pub_answer(void);\n#endif\n'
UTIL_C = """\
#include <string.h>
#include "util/util.h"
#define WIDTH 2
static int helper(int x) { return x * WIDTH; }
int util_sum(const util_pair *p) { return helper(p->a) + p->b * UTIL_SCALE; }
"""
APP_C = """\
#include <stdio.h>
#include "sqlite3.h"
#include "util/util.h"
#include "pub.h"
static int app_helper(void) { return (int)sizeof(sqlite3_int64); }
int pub_answer(void) { util_pair p = {1, 2}; return util_sum(&p) + app_helper(); }
int main(void) { printf("%d\\n", pub_answer()); return 0; }
"""
CLEAN = {"ext/util/util.h": HEADER, "ext/pub.h": PUBLIC,
         "ext/util/util.c": UTIL_C, "ext/app/app.c": APP_C}
SOURCES = ["ext/util/util.c", "ext/app/app.c"]


def amalgamate(root, sources, *extra):
    return run([sys.executable, AMALGAMATE, "--cc", CC, "-I", "ext",
                "--header", "ext/pub.h"] + list(extra) + sources, root)


def test_amalgamation_clean(tmp):
    write(tmp, CLEAN)
    rc, out = amalgamate(tmp, SOURCES, "-o", "dist/one.c")
    expect(rc == 0, "clean tree: exit 0", out)
    text = open(os.path.join(tmp, "dist/one.c")).read()
    order = [text.find("/**** begin file %s ****/" % f) for f in
             ("ext/util/util.c", "ext/util/util.h", "ext/app/app.c",
              "ext/pub.h")]
    expect(-1 not in order and order == sorted(order),
           "begin markers, in source order with headers inlined", text)
    expect(text.count("begin file ext/util/util.h") == 1,
           "a header is inlined once", text)
    expect('/* #include "util/util.h" (inlined above) */' in text,
           "a second include is dropped", text)
    expect('#include "sqlite3.h"' in text and "#include <string.h>" in text,
           "system and SQLite includes are kept", text)
    expect("9.8.7" in text.split("*/")[0], "the banner states the version")
    rc, out = run([CC] + WARN + ["-o", "one", "dist/one.c"], tmp)
    expect(rc == 0, "the amalgamation compiles with -Werror", out)
    rc, out = run(["./one"], tmp)
    expect(out.strip() == "16", "the amalgamation runs", out)
    rc, out = amalgamate(tmp, SOURCES, "-o", "dist/two.c",
                         "--line-directives")
    text = open(os.path.join(tmp, "dist/two.c")).read()
    expect(rc == 0 and '#line 1 "ext/app/app.c"' in text,
           "--line-directives", out)


DIRTY = {
    "ext/app/dup.c": """\
#define _GNU_SOURCE
#include "util/util.h"
#define UTIL_LOCAL 1
#define GEN(n) static int get_##n(void) { return UTIL_LOCAL; }
GEN(width)
static int helper(void) { return get_width(); }
static int counter;
enum { RED, GREEN };
typedef int count_t;
struct shape { int sides; };
int dup_use(void) { int WIDTH = 4; count_t c = 0; return WIDTH + helper() + c + counter + RED; }
#define SCRATCH 1
#undef SCRATCH
""",
    "ext/app/dup2.c": """\
#define UTIL_LOCAL 2
#define GEN(n) static int get_##n(void) { return UTIL_LOCAL; }
GEN(width)
static const char *counter = "x";
enum { BLUE, GREEN2, RED };
typedef long count_t;
struct shape { long sides; };
int dup2_use(void) { return (int)get_width() + (int)counter[0] + BLUE + RED; }
#define SCRATCH 2
""",
}


def test_amalgamation_collisions(tmp):
    write(tmp, CLEAN)
    write(tmp, DIRTY)
    srcs = ["ext/util/util.c", "ext/app/dup.c", "ext/app/dup2.c"]
    rc, out = amalgamate(tmp, srcs, "-o", "dist/one.c")
    expect(rc == 1, "collisions: exit 1", out)
    expect(not os.path.exists(os.path.join(tmp, "dist/one.c")),
           "collisions: nothing written", out)
    for want in [
            "static function 'helper' in ext/app/dup.c:6",
            "ext/util/util.c:4",
            "static function 'get_width' in ext/app/dup.c:5",
            "static variable 'counter' in ext/app/dup.c:7",
            "enumerator 'RED' in ext/app/dup.c:8",
            "typedef 'count_t' in ext/app/dup.c:9",
            "struct tag 'shape' in ext/app/dup.c:10",
            "macro collision: 'UTIL_LOCAL' defined in ext/app/dup.c:3 and "
            "ext/app/dup2.c:1",
            "macro collision: 'GEN' defined in ext/app/dup.c:4 and "
            "ext/app/dup2.c:2 (same definition)",
            "macro leak: 'WIDTH' from ext/util/util.c:3 is still defined "
            "where ext/app/dup.c:11 uses the name",
            "feature-test macro: ext/app/dup.c:1 defines _GNU_SOURCE"]:
        expect(want in out, "collision report names: " + want, out)
    expect("GREEN" not in out, "distinct enumerators are not reported", out)
    expect("SCRATCH" not in out, "a macro #undef'd before the next file "
           "defines it is no collision", out)
    rc, out = amalgamate(tmp, srcs, "-o", "dist/one.c", "--force")
    expect(rc == 1 and os.path.exists(os.path.join(tmp, "dist/one.c")),
           "--force writes anyway", out)
    rc, out = amalgamate(tmp, srcs, "--check")
    expect(rc == 1 and "collision" in out, "--check", out)


def test_amalgamation_conditional_include(tmp):
    write(tmp, CLEAN)
    write(tmp, {"ext/app/cond.c": '#ifdef X\n#include "util/util.h"\n#endif\n'
                                  "int cond_x;\n"})
    rc, out = amalgamate(tmp, ["ext/app/cond.c"], "-o", "dist/one.c")
    expect(rc == 2 and "ext/app/cond.c:2: local #include inside #if" in out,
           "a conditional first include is refused", out)


# ----------------------------------------------------------- check_layers

OBJECTS = {
    "core/k.c": "int core_fn(void) { return 1; }\n",
    "value/v.c": "int core_fn(void);\nint value_fn(void) { return core_fn(); }\n",
    "table/a.c": "int value_fn(void);\nint b_fn(void);\n"
                 "int a_fn(void) { return value_fn() + b_fn(); }\n",
    "table/b.c": "int b_fn(void) { return 2; }\n",
    "embed.c": "int a_fn(void);\nint entry(void) { return a_fn(); }\n",
}


def build_objects(tmp, files):
    objs = []
    for name, text in files.items():
        src = os.path.join(tmp, "src", name)
        obj = os.path.join(tmp, "obj", name[:-2] + ".o")
        write(tmp, {os.path.join("src", name): text})
        os.makedirs(os.path.dirname(obj), exist_ok=True)
        rc, out = run([CC, "-c", "-o", obj, src], tmp)
        expect(rc == 0, "compile " + name, out)
        objs.append(obj)
    return objs


def check(tmp, *args):
    return run([sys.executable, CHECK, "--objdir", "obj"] + list(args), tmp)


def test_objects_clean(tmp):
    objs = build_objects(tmp, OBJECTS)
    rc, out = check(tmp, "--cycles", "--order", *objs)
    expect(rc == 0 and out == "layers: cycles: ok\nlayers: order: ok\n",
           "acyclic, layered objects pass", out)


def test_objects_cycle_and_order(tmp):
    files = dict(OBJECTS)
    files["table/b.c"] = "int a_fn(void);\nint b_fn(void) { return a_fn(); }\n"
    files["core/bad.c"] = "int a_fn(void);\nint bad(void) { return a_fn(); }\n"
    objs = build_objects(tmp, files)
    rc, out = check(tmp, "--cycles", "--order", *objs)
    expect(rc == 1, "a cycle fails", out)
    for want in ["layers: cycles: cycle among 2 objects: table/a.o table/b.o",
                 "layers: cycles:   shortest: table/a.o -> table/b.o -> "
                 "table/a.o",
                 "layers: cycles:   table/a.o -> table/b.o: b_fn",
                 "layers: cycles:   table/b.o -> table/a.o: a_fn",
                 "layers: order: core/bad.o (core) uses table/a.o (table, a "
                 "higher layer): a_fn"]:
        expect(want in out, "reports: " + want, out)
    expect("embed.o" not in out and "value/v.o" not in out,
           "only the offending objects are named", out)
    rc, out = check(tmp, "--cycles", *objs)
    expect("order" not in out, "--cycles runs only that check", out)


def test_lines(tmp):
    write(tmp, {"ext/a/ok.c": "x\n" * 800, "ext/a/ok.h": "x\n" * 10})
    rc, out = check(tmp, "--lines")
    expect(rc == 0 and out == "layers: lines: ok\n", "800 lines pass", out)
    write(tmp, {"ext/b/long.h": "x\n" * 801})
    rc, out = check(tmp, "--lines")
    expect(rc == 1 and out == "layers: lines: ext/b/long.h: 801 lines (over "
           "800)\n", "801 lines fail, naming the file", out)


SQL = 'static const char *q = "SELECT * FROM \\"%w\\".\\"%w_vectors\\"";\n'


def test_shadow(tmp):
    write(tmp, {"ext/table/store.c": SQL + 'const char *c = "T_config";\n',
                "ext/table/store_state.h": '#define S "%s_state"\n',
                "ext/sql/f.c": "typedef struct bag_state bag_state;\n"
                               "int n_config, x_log;\n"})
    rc, out = check(tmp, "--shadow")
    expect(rc == 0 and out == "layers: shadow: ok\n",
           "shadow names in store*.c/h and look-alikes pass", out)
    write(tmp, {"ext/table/vtab.c": "/* the table T_log\" */\n" + SQL,
                "ext/io/files.c": "\n\nmsg(\"cannot read %s_config: %s\");\n",
                "ext/table/restore.c": SQL})
    rc, out = check(tmp, "--shadow")
    lines = out.splitlines()
    expect(rc == 1 and len(lines) == 4, "shadow names elsewhere fail", out)
    for want in ["ext/io/files.c:3:", "ext/table/restore.c:1:",
                 "ext/table/vtab.c:1:", "ext/table/vtab.c:2:"]:
        expect(any(x.startswith("layers: shadow: " + want) for x in lines),
               "reports " + want, out)


def test_spec(tmp):
    ok = ("SPECIAL = 1\nSPEC_KEYS = {}\nMY_SPEC = 2\nSPECS\n%s = 3\n"
          "x.%s[0]\nspec section 2 (lowercase)\n%s->field\n" %
          (WORD, WORD, WORD))
    write(tmp, {"a.py": ok, "untracked.md": "see %s section 4\n" % WORD})
    run(["git", "init", "-q"], tmp)
    run(["git", "add", "a.py"], tmp)
    rc, out = check(tmp, "--spec")
    expect(rc == 0 and out == "layers: spec: ok\n",
           "identifiers and untracked files are not citations", out)
    cites = ["(%s section 5)" % WORD, "%s sections 3 and 4" % WORD,
             "# %s 2: messages" % WORD, "see %s.md" % WORD,
             "docs/%s.md" % WORD.lower(), "%s §4" % WORD,
             "not in the %s: additions" % WORD, "%s.md#options" % WORD]
    write(tmp, {"b.c": "\n".join("/* %s */" % c for c in cites) + "\n"})
    run(["git", "add", "b.c"], tmp)
    rc, out = check(tmp, "--spec")
    lines = out.splitlines()
    expect(rc == 1 and len(lines) == len(cites), "every citation form", out)
    for i in range(len(cites)):
        expect(lines[i].startswith("layers: spec: b.c:%d: " % (i + 1)),
               "reports b.c:%d" % (i + 1), out)


def main():
    tests = [(n, f) for n, f in sorted(globals().items())
             if n.startswith("test_") and callable(f)]
    failed = 0
    for name, fn in tests:
        with tempfile.TemporaryDirectory(prefix="embed-tools-") as tmp:
            try:
                fn(tmp)
                print("ok   %s" % name)
            except Exception:  # report every test, then fail
                failed += 1
                print("FAIL %s" % name)
                traceback.print_exc(file=sys.stdout)
    print("tools: %d passed, %d failed" % (len(tests) - failed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
