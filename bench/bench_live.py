#!/usr/bin/python3
"""bench_live.py - similarity search while the table changes: what a search
costs after writes, the cold build, the memory of shared copies, and what
the change log adds to writes.

Run from the repository root (after `make`):

    /usr/bin/python3 bench/bench_live.py

Data: the 100,000 x 384 float32 vectors of bench_knn.py (numpy
default_rng(42), bench/.data/knn_100000x384.f32, generated when missing),
in a WAL file database (synchronous=NORMAL, cache_size 1 GB), ids
0..99,999; queries are the file's 20 query vectors; every search is
SELECT id, distance FROM tok WHERE vector MATCH :q AND k = 10.

Measures (median and spread of ROUNDS rounds, all in one run):
  warm         a search with nothing changed since the last one
  after step   a search right after a 1,024-row embed_update (random ids,
               autocommit), by the same connection; each round is a fresh
               step, so this is the steady state of training + searching
  after other  a search right after another connection's 1-row embed_update
  in txn       a search inside a write transaction that changed 1,024 rows
  cold         the first search of a fresh process (builds the copy); the
               build (that search minus the process's second, warm one)
               against SELECT sum(length(vector)) FROM tok (the virtual
               table, which returns each vector), the same over its shadow
               table tok_vectors (SQLite alone reading the rows), and over
               a plain table of the same rows in another WAL file (median
               of COLD_ROUNDS, all alternating);
               the build runs right after another process touched as much
               memory, and again after the machine idled IDLE_S seconds,
               each next to the time a fresh process takes just to touch
               that much memory (see the comment in main)
  memory       the resident memory a process adds for 1 and for 4
               connections searching the table
  log cost     a 1,024-row embed_update and a 100,000-row INSERT ... SELECT,
               on this table against the same table with its change log
               removed (the layout of embed 0.1); the insert three times
               each, alternating, each after os.sync(), in user CPU time
               (its wall and system time are mostly the kernel's writing,
               which varied 2x from one fill to the next)
"""
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import cpu_model, log, summary  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))
from bench_knn import dataset  # noqa: E402

EXT = os.path.join(ROOT, "embed")
N, DIM, K = 100_000, 384, 10
ROUNDS = 15
COLD_ROUNDS = 7
IDLE_S = 3.0  # idle time after which this VM's free memory is reclaimed
BATCH = 1024
LOG_STEPS = 4  # steps per round with and without the log, for its cost


def connect(path):
    import sqlite3
    c = sqlite3.connect(path, isolation_level=None, timeout=10)
    c.enable_load_extension(True)
    c.load_extension(EXT)
    c.execute("PRAGMA journal_mode=wal")
    c.execute("PRAGMA synchronous=NORMAL")
    c.execute("PRAGMA cache_size=-1000000")
    return c


def fill(path, vectors, with_log=True):
    c = connect(path)
    c.execute(f"CREATE VIRTUAL TABLE tok USING embedding(dim={DIM}, seed=1)")
    c.execute("CREATE TABLE src(id INTEGER PRIMARY KEY, v BLOB)")
    c.execute("BEGIN")
    c.executemany("INSERT INTO src VALUES (?, ?)",
                  ((i, vectors[i].tobytes()) for i in range(N)))
    c.execute("COMMIT")
    if not with_log:
        c.execute("DROP TABLE tok_log")
        c.execute("DELETE FROM tok_config WHERE key IN ('layout', 'instance')")
        c.close()
        c = connect(path)
    os.sync()  # the previous fill's dirty pages written back, not timed
    t = resource.getrusage(resource.RUSAGE_SELF).ru_utime
    c.execute("INSERT INTO tok(id, vector) SELECT id, v FROM src")
    # user CPU time: wall and system time are mostly the kernel's writing,
    # which varied 2x from one fill to the next on the shared machine
    insert_s = resource.getrusage(resource.RUSAGE_SELF).ru_utime - t
    c.execute("DROP TABLE src")
    c.close()
    return insert_s


def ms(f):
    t = time.perf_counter()
    f()
    return (time.perf_counter() - t) * 1000


def fmt(name, xs, base=None):
    med, lo, hi = summary(xs)
    ratio = f"  {med / base:5.2f}x warm" if base else ""
    return f"  {name:<14} {med:8.2f} ms  (min {lo:.2f}, max {hi:.2f}){ratio}"


PROBE = r"""
import sqlite3, sys, time
ext, path, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096
def conn():
    c = sqlite3.connect(path, isolation_level=None)
    c.enable_load_extension(True); c.load_extension(ext)
    c.execute("PRAGMA cache_size=0")
    return c
q = bytes(384 * 4)
conns = [conn() for _ in range(n)]
base = rss()
t = time.perf_counter()
conns[0].execute("SELECT id FROM tok WHERE vector MATCH ? AND k = 10", (q,)).fetchall()
cold = time.perf_counter() - t
for c in conns[1:]:
    c.execute("SELECT id FROM tok WHERE vector MATCH ? AND k = 10", (q,)).fetchall()
grown = rss() - base
t = time.perf_counter()
conns[0].execute("SELECT id FROM tok WHERE vector MATCH ? AND k = 10", (q,)).fetchall()
print(cold, grown, time.perf_counter() - t)
"""

# Allocates and touches n float32 in a fresh process: what any program
# building an in-memory copy of the rows pays for the memory alone.
TOUCH = r"""
import sys, time
import numpy as np
t = time.perf_counter()
a = np.ones(int(sys.argv[1]), np.float32)
print(time.perf_counter() - t)
"""

SCAN = r"""
import sqlite3, sys, time
c = sqlite3.connect(sys.argv[1], isolation_level=None)
if len(sys.argv) > 3:  # the virtual table: the extension returns each vector
    c.enable_load_extension(True); c.load_extension(sys.argv[3])
c.execute("PRAGMA cache_size=0")
t = time.perf_counter()
c.execute("SELECT sum(length(vector)) FROM %s" % sys.argv[2]).fetchone()
print(time.perf_counter() - t)
"""


def fill_plain(path, vectors):
    """The same rows in a plain rowid table, for the cold reference."""
    import sqlite3
    c = sqlite3.connect(path, isolation_level=None)
    c.execute("PRAGMA journal_mode=wal")
    c.execute("CREATE TABLE plain(id INTEGER PRIMARY KEY, vector BLOB)")
    c.execute("BEGIN")
    c.executemany("INSERT INTO plain VALUES (?, ?)",
                  ((i, vectors[i].tobytes()) for i in range(N)))
    c.execute("COMMIT")
    c.close()


def main():
    log(f"bench_live: {N:,} x {DIM} float32, WAL, synchronous=NORMAL; "
        f"{cpu_model()}, {os.cpu_count()} cores")
    vectors, queries, _, _ = dataset(N, DIM)
    tmp = tempfile.mkdtemp(prefix="embed-live-")
    path = os.path.join(tmp, "live.db")
    path_nolog = os.path.join(tmp, "nolog.db")
    path_plain = os.path.join(tmp, "plain.db")
    rng = np.random.default_rng(7)
    # the insert's log cost: fills alternate, ABBA, in fresh files (the
    # machine's write-back moves a lone pair's times by up to 2x)
    ins = {True: [fill(path, vectors, True)], False: []}
    ins[False].append(fill(path_nolog, vectors, False))
    scratch = os.path.join(tmp, "scratch.db")
    for with_log in (False, True, True, False):
        ins[with_log].append(fill(scratch, vectors, with_log))
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(scratch + suffix):
                os.remove(scratch + suffix)
    fill_plain(path_plain, vectors)

    a, b = connect(path), connect(path)
    qs = [q.tobytes() for q in queries]

    def search(c, j):
        return c.execute("SELECT id, distance FROM tok WHERE vector MATCH ? "
                         "AND k = ?", (qs[j % len(qs)], K)).fetchall()

    def step(c, n):
        ids = rng.choice(N, size=n, replace=False)
        g = (rng.standard_normal((n, DIM)) * 1e-3).astype(np.float32)
        c.execute("SELECT embed_update('tok', ?, ?, 0.1)",
                  ("[" + ",".join(map(str, ids)) + "]", g.tobytes()))

    search(a, 0)
    search(b, 0)
    warm, after_step, after_other, in_txn = [], [], [], []
    step_ms = {"log": [], "nolog": []}
    c_nolog = connect(path_nolog)
    for r in range(ROUNDS):
        # each measure visits every method in turn, so drift hits all alike
        search(a, r)  # catches up with the last round's commits
        warm.append(ms(lambda: search(a, r)))
        step(a, BATCH)
        after_step.append(ms(lambda: search(a, r + 1)))
        search(b, r)
        step(b, 1)
        after_other.append(ms(lambda: search(a, r + 2)))
        a.execute("BEGIN")
        step(a, BATCH)
        in_txn.append(ms(lambda: search(a, r + 3)))
        a.execute("COMMIT")
        for _ in range(LOG_STEPS):  # alternating, one step at a time
            step_ms["log"].append(ms(lambda: step(a, BATCH)))
            step_ms["nolog"].append(ms(lambda: step(c_nolog, BATCH)))
    base = summary(warm)[0]
    log("search (k = 10), median of %d rounds:" % ROUNDS)
    log(fmt("warm", warm))
    log(fmt("after step", after_step, base) + "   (target <= 1.5x)")
    log(fmt("after other", after_other, base) + "   (target <= 1.5x)")
    log(fmt("in txn", in_txn, base) + "   (target <= 1.5x)")
    a.close()
    b.close()
    c_nolog.close()

    # The cold build allocates the copy, n x 4D bytes of fresh memory. On a
    # virtual machine whose hypervisor takes back free memory the guest has
    # left idle for a few seconds (virtio-balloon free page reporting, as on
    # this machine), touching such memory again costs several times the
    # build itself, in any program. So each round measures the build with
    # memory the machine has just used (a process touched and freed as much
    # right before: what a machine without that reclaim gives every time),
    # and once more after the machine idled, with the same touch alone as
    # the yardstick of that cost.
    def run(*args):
        return subprocess.run([sys.executable, "-c", *args],
                              capture_output=True, text=True,
                              check=True).stdout.split()

    colds, builds, scans, plains, mem1, mem4 = [], [], [], [], [], []
    touch_used, touch_idle, cold_idle, vscans = [], [], [], []
    for r in range(COLD_ROUNDS):
        vscans.append(float(run(SCAN, path, "tok", EXT)[0]) * 1000)
        scans.append(float(run(SCAN, path, "tok_vectors")[0]) * 1000)
        plains.append(float(run(SCAN, path_plain, "plain")[0]) * 1000)
        touch_used.append(float(run(TOUCH, str(N * DIM))[0]) * 1000)
        cold, rss1, warm_s = run(PROBE, EXT, path, "1")
        colds.append(float(cold) * 1000)
        builds.append((float(cold) - float(warm_s)) * 1000)
        mem1.append(int(rss1))
        mem4.append(int(run(PROBE, EXT, path, "4")[1]))
        time.sleep(IDLE_S)
        touch_idle.append(float(run(TOUCH, str(N * DIM))[0]) * 1000)
        time.sleep(IDLE_S)
        cold_idle.append(float(run(PROBE, EXT, path, "1")[0]) * 1000)
    copy = N * DIM * 4
    cold_med, scan_med = summary(colds)[0], summary(scans)[0]
    build_med, plain_med = summary(builds)[0], summary(plains)[0]
    log(f"cold: first search {cold_med:.0f} ms (min {min(colds):.0f}, max "
        f"{max(colds):.0f}) = the build {build_med:.0f} ms (min "
        f"{min(builds):.0f}, max {max(builds):.0f}) + the search itself")
    vscan_med = summary(vscans)[0]
    log(f"cold: the build against SELECT sum(length(vector)) FROM tok "
        f"({vscan_med:.0f} ms): {build_med / vscan_med:.2f}x   (target <= "
        f"1.5x); against the same over its shadow table tok_vectors "
        f"({scan_med:.0f} ms): {build_med / scan_med:.2f}x, and over a plain "
        f"table of the same rows ({plain_med:.0f} ms): "
        f"{build_med / plain_med:.2f}x")
    log(f"cold: touching {copy / 2**20:.0f} MiB of fresh memory alone takes "
        f"{summary(touch_used)[0]:.0f} ms right after another process used "
        f"it, {summary(touch_idle)[0]:.0f} ms after {IDLE_S:g} s idle; the "
        f"first search after {IDLE_S:g} s idle: "
        f"{summary(cold_idle)[0]:.0f} ms (min {min(cold_idle):.0f}, max "
        f"{max(cold_idle):.0f})")
    m1, m4 = statistics.median(mem1), statistics.median(mem4)
    log(f"memory: 1 connection +{m1 / 2**20:.0f} MiB, 4 connections "
        f"+{m4 / 2**20:.0f} MiB (the vectors: {copy / 2**20:.0f} MiB); 3 more "
        f"add {(m4 - m1) / copy:.1%} of one copy   (target <= 15%)")
    sl, sn = summary(step_ms["log"])[0], summary(step_ms["nolog"])[0]
    log(f"log cost: {BATCH}-row embed_update {sl:.2f} ms vs {sn:.2f} ms "
        f"without the log (median of {len(step_ms['log'])} steps each): "
        f"{sl / sn - 1:+.1%}   (target <= 10%)")
    (il, il0, il1), (inl, inl0, inl1) = summary(ins[True]), summary(ins[False])
    log(f"log cost: {N:,}-row INSERT ... SELECT, user CPU {il * 1000:.0f} ms [{il0 * 1000:.0f}, "
        f"{il1 * 1000:.0f}] vs {inl * 1000:.0f} ms [{inl0 * 1000:.0f}, "
        f"{inl1 * 1000:.0f}] without the log (median of {len(ins[True])} "
        f"fills each): {il / inl - 1:+.1%}   (target <= 10%)")
    for p in (path, path_nolog, path_plain):
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(p + suffix):
                os.remove(p + suffix)
    os.rmdir(tmp)


if __name__ == "__main__":
    main()
