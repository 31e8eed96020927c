#!/usr/bin/python3
"""bench_knn.py - exact k-nearest-neighbour search: embed against the floor,
plain SQL and sqlite-vec.

Run from the repository root (after `make`):

    /usr/bin/python3 bench/bench_knn.py [--no-1m]

What it measures (under a minute on 2 cores):

  data     100,000 x 384 float32 vectors and 20 query vectors, numpy
           default_rng(42) (standard normal; the queries are the next 20
           draws), written once to bench/.data/knn_100000x384.f32 and
           knn_100000x384.queries.f32 (git-ignored) and reused after.
  floor    bench/knn_floor.c, compiled with -O3 -march=native: the vectors
           contiguous in memory, norms precomputed, one pass of dot
           products per query, top-10 by an insertion list. Two rows: float
           accumulation (what a float SIMD library does) and double
           accumulation (what embed's kernels do).
  embed    CREATE VIRTUAL TABLE tok USING embedding(dim=384) in a file
           database, filled with the vectors (ids 0..99,999);
           SELECT id, distance FROM tok WHERE vector MATCH :q AND k = 10.
           Also the same table with search_cache=0 (when the option exists).
  scan     an ordinary table t(id INTEGER PRIMARY KEY, v BLOB);
           SELECT id FROM t ORDER BY embed_cosine(v, :q) DESC LIMIT 10, and
           the same with vec_distance_cosine(v, :q) ASC (sqlite-vec).
  vec0     sqlite-vec 0.1.9 (vec0.so from `npm pack sqlite-vec-linux-x64@0.1.9`
           into bench/.data/; skipped when npm or the package is missing):
           CREATE VIRTUAL TABLE v USING vec0(embedding float[384]
           distance_metric=cosine); SELECT rowid, distance FROM v WHERE
           embedding MATCH :q AND k = 10.
  1M       1,000,000 x 128 (default_rng(42) again), embed KNN only: time
           and the resident memory of a fresh process that opens the
           database and queries it (skipped with --no-1m).

Method: each database is built once per run (build time reported), then
closed. "cold" is the first query (query 0) on a fresh connection, so it
pays for whatever the method loads on first use (SQLite's page cache,
embed's in-memory snapshot); the operating system's file cache is warm
(the file was just written). "median" is the median of 3 rounds of the 20
queries; each round visits every method in turn (the floor is re-run as a
process each round), so drift in the machine's load hits all alike. For
the floor, "cold" is the first query after the file is read. Every
connection uses cache_size=-1000000 (1 GB cap, as bench.py), so the scans
measure CPU, not I/O; the 1M run uses SQLite's default cache_size instead,
so its memory is the extension's. Wall time is reported; a warning is
printed when it exceeds process CPU time by over 15% (a busy machine).
Every database file is deleted at the end; the data files are kept.

Every method's top-10 ids are checked against a float64 numpy reference
(cosine, ties by the smaller id) for every query; each disagreement is
printed.
"""
import json
import os
import platform
import sqlite3
import statistics
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (cpu_model, exact_topk, fetch_npm_extension,  # noqa: E402
                    log, rss_kib)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA_DIR = os.path.join(ROOT, "bench", ".data")
EXT = os.path.join(ROOT, "embed")
FLOOR_SRC = os.path.join(ROOT, "bench", "knn_floor.c")
FLOOR_BIN = os.path.join(DATA_DIR, "knn_floor")
VEC_VERSION = "0.1.9"
VEC_DIR = os.path.join(DATA_DIR, f"sqlite-vec-{VEC_VERSION}")
VEC_EXT = os.path.join(VEC_DIR, "package", "vec0")

N, DIM = 100_000, 384
N_1M, DIM_1M = 1_000_000, 128
NQ, K = 20, 10
SEED = 42
CACHE_KIB = 1_000_000
ROUNDS = 3

T_START = time.perf_counter()


# ------------------------------------------------------------------ data
def dataset(n, dim):
    """(vectors, queries, data path, queries path), generated once."""
    os.makedirs(DATA_DIR, exist_ok=True)
    base = os.path.join(DATA_DIR, f"knn_{n}x{dim}")
    dpath, qpath = base + ".f32", base + ".queries.f32"
    if (os.path.exists(dpath) and os.path.getsize(dpath) == n * dim * 4 and
            os.path.exists(qpath) and os.path.getsize(qpath) == NQ * dim * 4):
        vectors = np.fromfile(dpath, dtype=np.float32).reshape(n, dim)
        queries = np.fromfile(qpath, dtype=np.float32).reshape(NQ, dim)
        return vectors, queries, dpath, qpath
    rng = np.random.default_rng(SEED)
    vectors = rng.standard_normal((n, dim), dtype=np.float32)
    queries = rng.standard_normal((NQ, dim), dtype=np.float32)
    vectors.tofile(dpath + ".tmp")
    queries.tofile(qpath + ".tmp")
    os.replace(dpath + ".tmp", dpath)
    os.replace(qpath + ".tmp", qpath)
    return vectors, queries, dpath, qpath


def reference_topk(vectors, queries):
    """Exact top-K ids per query: float64 cosine, ties by the smaller id."""
    return exact_topk(vectors, queries, K).tolist()


# ----------------------------------------------------------------- floor
def build_floor():
    cc = os.environ.get("CC", "cc")  # rebuilt each run: -march=native
    cmd = [cc, "-O3", "-march=native", "-o", FLOOR_BIN, FLOOR_SRC, "-lm"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        log(f"  floor: {' '.join(cmd)} failed:\n{r.stderr}")
        return False
    return True


def run_floor(dpath, qpath, n, dim):
    """{mode: (cold ms, [warm ms], [ids per query])}, load info."""
    out = subprocess.run([FLOOR_BIN, dpath, str(n), str(dim), qpath,
                          str(NQ), str(K)], capture_output=True, text=True,
                         check=True).stdout
    res, info = {}, ""
    for line in out.splitlines():
        f = line.split()
        if f[0] == "load":
            info = line
            continue
        mode, kind, q, ms = f[0], f[1], int(f[2]), float(f[4])
        entry = res.setdefault(mode, [None, [], [None] * NQ])
        if kind == "cold":
            entry[0] = ms
        else:
            entry[1].append(ms)
            entry[2][q] = [int(x) for x in f[6:]]
    return res, info


# ------------------------------------------------------------ sqlite-vec
def fetch_sqlite_vec():
    """Path of vec0 (without suffix), or None with the reason printed."""
    return fetch_npm_extension(f"sqlite-vec-linux-x64@{VEC_VERSION}",
                               "package/vec0.so", VEC_DIR)


# ------------------------------------------------------------- databases
def connect(path, vec_ext=None, cache_kib=CACHE_KIB):
    conn = sqlite3.connect(path, isolation_level=None)
    conn.enable_load_extension(True)
    conn.load_extension(EXT)
    if vec_ext:
        conn.load_extension(vec_ext)
    if cache_kib:
        conn.execute(f"PRAGMA cache_size=-{cache_kib}")
    return conn


def fresh(path):
    for suffix in ("", "-wal", "-shm", "-journal"):
        try:
            os.remove(path + suffix)
        except FileNotFoundError:
            pass
    return path


def build(path, create, insert, vectors, vec_ext=None, batch=100_000):
    """Create a database with one table and insert every vector. Seconds."""
    conn = connect(fresh(path), vec_ext)
    t0 = time.perf_counter()
    conn.execute(create)
    for s in range(0, len(vectors), batch):
        conn.execute("BEGIN")
        conn.executemany(insert, ((s + i, v.tobytes()) for i, v in
                                  enumerate(vectors[s:s + batch])))
        conn.execute("COMMIT")
    dt = time.perf_counter() - t0
    conn.close()
    return dt


class Method:
    """One SQL method: a connection opened for it, its cold query, then
    rounds of warm queries."""

    def __init__(self, label, path, sql, queries, vec_ext=None,
                 cache_kib=CACHE_KIB):
        self.label, self.sql = label, sql
        self.blobs = [q.tobytes() for q in queries]
        self.conn = connect(path, vec_ext, cache_kib)
        self.warm, self.ids, self.wall, self.cpu = [], None, 0.0, 0.0
        self.cold = self.query(self.blobs[0])[0]

    def query(self, blob):
        c0, t0 = time.process_time(), time.perf_counter()
        rows = self.conn.execute(self.sql, (blob,)).fetchall()
        dt = time.perf_counter() - t0
        self.wall += dt
        self.cpu += time.process_time() - c0
        assert len(rows) == K, rows
        return dt * 1e3, [r[0] for r in rows]

    def round(self):
        ids = []
        for b in self.blobs:
            ms, got = self.query(b)
            self.warm.append(ms)
            ids.append(got)
        if self.ids is None:
            self.ids = ids
        elif ids != self.ids:
            raise SystemExit(f"bench_knn: {self.label}: results changed "
                             "between rounds")

    def busy(self):
        return self.wall / max(self.cpu, 1e-9)

    def close(self):
        self.conn.close()


def child_1m(db, qpath, dim):
    """In a fresh process: open, query, report memory (JSON on stdout)."""
    queries = np.fromfile(qpath, dtype=np.float32).reshape(NQ, dim)
    conn = connect(db, cache_kib=0)  # SQLite's default cache_size
    rss0, _ = rss_kib()
    conn.close()
    m = Method("1M", db, "SELECT id, distance FROM tok WHERE vector MATCH ? "
               "AND k = 10", queries, cache_kib=0)
    m.round()
    rss1, hwm = rss_kib()
    m.close()
    print(json.dumps({"cold": m.cold, "warm": m.warm, "ids": m.ids,
                      "busy": m.busy(), "rss0": rss0, "rss1": rss1,
                      "hwm": hwm}))


# ------------------------------------------------------------------ main
def check(label, ids, ref, problems):
    """Count queries whose top-10 equals the reference; note the rest."""
    same = 0
    for j, (got, want) in enumerate(zip(ids, ref)):
        if got == want:
            same += 1
        else:
            missing = [x for x in want if x not in got]
            extra = [x for x in got if x not in want]
            what = (f"missing {missing}, extra {extra}" if missing or extra
                    else "same ids, different order")
            problems.append(f"{label}, query {j}: {what}\n"
                            f"      got  {got}\n      want {want}")
    return f"{same}/{len(ref)}"


def main():
    args = sys.argv[1:]
    if args and args[0] == "--child-1m":
        child_1m(args[1], args[2], int(args[3]))
        return 0
    do_1m = "--no-1m" not in args

    if not os.path.exists(EXT + ".so"):
        raise SystemExit("bench_knn: build embed.so first (make)")
    conn = connect(":memory:")
    embed_version = conn.execute("SELECT embed_version()").fetchone()[0]
    conn.close()
    log("embed KNN benchmark: exact top-10 by cosine")
    log(f"  CPU      {cpu_model()} ({os.cpu_count()} cores)")
    log(f"  SQLite   {sqlite3.sqlite_version} (Python "
        f"{platform.python_version()} sqlite3 module, numpy {np.__version__})")
    log(f"  embed    {embed_version} ({os.path.relpath(EXT, ROOT)}.so)")

    vectors, queries, dpath, qpath = dataset(N, DIM)
    ref = reference_topk(vectors, queries)
    vec_ext = fetch_sqlite_vec()
    if vec_ext:
        log(f"  vec      sqlite-vec {VEC_VERSION} "
            f"({os.path.relpath(vec_ext, ROOT)}.so)")
    log(f"  data     {N:,} x {DIM} float32, {NQ} queries, "
        f"default_rng({SEED}); cache_size=-{CACHE_KIB}")
    log()

    problems = []

    # Build every database (untimed for the queries), open every method
    # (its cold query), then run ROUNDS rounds of the warm queries, each
    # round visiting every method, so that drift in the machine's load
    # hits all methods alike.
    knn = "SELECT id, distance FROM tok WHERE vector MATCH ? AND k = 10"
    p_embed = os.path.join(DATA_DIR, "knn_embed.db")
    p_nocache = os.path.join(DATA_DIR, "knn_embed_nocache.db")
    p_plain = os.path.join(DATA_DIR, "knn_plain.db")
    p_vec = os.path.join(DATA_DIR, "knn_vec.db")
    builds = [("embed tok", p_embed, "CREATE VIRTUAL TABLE tok USING "
               f"embedding(dim={DIM})",
               "INSERT INTO tok(id, vector) VALUES (?, ?)", None),
              ("embed tok, search_cache=0", p_nocache, "CREATE VIRTUAL "
               f"TABLE tok USING embedding(dim={DIM}, search_cache=0)",
               "INSERT INTO tok(id, vector) VALUES (?, ?)", None),
              ("plain t", p_plain, "CREATE TABLE t(id INTEGER PRIMARY KEY, "
               "v BLOB)", "INSERT INTO t(id, v) VALUES (?, ?)", None)]
    if vec_ext:
        builds.append(("sqlite-vec v", p_vec, "CREATE VIRTUAL TABLE v USING "
                       f"vec0(embedding float[{DIM}] distance_metric=cosine)",
                       "INSERT INTO v(rowid, embedding) VALUES (?, ?)",
                       vec_ext))
    built = set()
    for label, path, create, insert, ext in builds:
        try:
            dt = build(path, create, insert, vectors, ext)
            built.add(path)
            log(f"  build    {label}: {dt:.1f}s")
        except sqlite3.Error as e:
            log(f"  build    {label}: skipped ({e})")

    specs = [("embed: tok MATCH :q AND k = 10", p_embed, knn, None),
             ("embed: same, search_cache=0", p_nocache, knn, None),
             (f"sqlite-vec {VEC_VERSION}: vec0 MATCH k = 10", p_vec,
              "SELECT rowid, distance FROM v WHERE embedding MATCH ? AND "
              "k = 10", vec_ext),
             ("scan: ORDER BY embed_cosine DESC", p_plain,
              "SELECT id FROM t ORDER BY embed_cosine(v, ?) DESC LIMIT 10",
              None),
             ("scan: ORDER BY vec_distance_cosine", p_plain,
              "SELECT id FROM t ORDER BY vec_distance_cosine(v, ?) ASC "
              "LIMIT 10", vec_ext)]
    methods = {}
    for label, path, sql, ext in specs:
        needs_vec = "vec0" in label or "vec_distance" in sql
        if path in built and (ext or not needs_vec):
            methods[label] = Method(label, path, sql, queries, ext)

    floor = None
    if build_floor():
        floor = {"f32": [None, [], None], "f64": [None, [], None]}
    for r in range(ROUNDS):
        if floor is not None:
            res, info = run_floor(dpath, qpath, N, DIM)
            if r == 0:
                log(f"  floor    {info} (one-time: file read, norms)")
            for mode in floor:
                cold, warm, ids = res[mode]
                if r == 0:
                    floor[mode][0], floor[mode][2] = cold, ids
                floor[mode][1].extend(warm)
        for m in methods.values():
            m.round()

    rows = []  # (label, median ms or None, cold ms or None, agree, busy)
    if floor is not None:
        for mode in ("f32", "f64"):
            label = f"floor: C -O3 -march=native, {mode} acc"
            cold, warm, ids = floor[mode]
            rows.append((label, statistics.median(warm), cold,
                         check(label, ids, ref, problems), None))
    else:
        rows += [(f"floor: {mode} acc", None, None, "-", None)
                 for mode in ("f32", "f64")]
    for label, *_ in specs:
        m = methods.get(label)
        if m:
            rows.append((label, statistics.median(m.warm), m.cold,
                         check(label, m.ids, ref, problems), m.busy()))
            m.close()
        else:
            rows.append((label, None, None, "-", None))
    row = {label: rr for label, *_ in specs for rr in rows if rr[0] == label}
    embed_row = row[specs[0][0]]
    vec_row = row[specs[2][0]]
    scan_embed, scan_vec = row[specs[3][0]], row[specs[4][0]]
    del vectors

    # 1M x 128
    m_rows = []
    if do_1m:
        v1m, q1m, _, q1m_path = dataset(N_1M, DIM_1M)
        ref1m = reference_topk(v1m, q1m)
        p_1m = os.path.join(DATA_DIR, "knn_embed_1m.db")
        dt = build(p_1m, f"CREATE VIRTUAL TABLE tok USING "
                   f"embedding(dim={DIM_1M})",
                   "INSERT INTO tok(id, vector) VALUES (?, ?)", v1m)
        del v1m
        log(f"  build    embed tok 1M x {DIM_1M}: {dt:.1f}s")
        out = subprocess.run([sys.executable, os.path.abspath(__file__),
                              "--child-1m", p_1m, q1m_path, str(DIM_1M)],
                             capture_output=True, text=True, check=True)
        r = json.loads(out.stdout)
        m_rows.append((f"embed 1M x {DIM_1M}: tok MATCH k = 10",
                       statistics.median(r["warm"]), r["cold"],
                       check("embed 1M", r["ids"], ref1m, problems),
                       r["busy"]))
        m_mem = r

    # ---------------------------------------------------------------- print
    log()
    w = 44
    rule = "-" * (w + 36)
    title = f"KNN, {N:,} x {DIM}, k = {K} (wall ms)"
    log(f"{title:{w}s} {'median':>9s} "
        f"{'cold':>9s}  {'top-10 = ref':>12s}")
    log(rule)

    def fmt(x):
        return f"{x:9.2f}" if x is not None else f"{'skipped':>9s}"

    loaded = []
    for label, med, cold, agree, busy in rows + m_rows:
        log(f"{label:{w}s} {fmt(med)} {fmt(cold)}  {agree:>12s}")
        if busy and busy > 1.15:
            loaded.append(f"{label} (wall/CPU {busy:.2f})")
    log(rule)
    floor_row = rows[0] if rows[0][1] is not None else None

    def ratio(label, a, b):
        if a is None or b is None or a[1] is None or b[1] is None:
            log(f"  {label:{w - 2}s} skipped")
            return
        log(f"  {label:{w - 2}s} {a[1] / b[1]:8.2f}x {a[2] / b[2]:8.2f}x")

    log(f"{'ratios (median, cold)':{w}s}")
    ratio("embed / floor (f32 acc)", embed_row, floor_row)
    ratio("embed / floor (f64 acc)", embed_row,
          rows[1] if floor_row else None)
    ratio("embed / sqlite-vec vec0", embed_row, vec_row)
    ratio("embed_cosine scan / vec_distance_cosine", scan_embed, scan_vec)
    if m_rows:
        log(f"1M x {DIM_1M} process memory (fresh process, default "
            f"cache_size): {m_mem['rss0'] / 1024:.0f} MiB after open, "
            f"{m_mem['rss1'] / 1024:.0f} MiB after the queries, peak "
            f"{m_mem['hwm'] / 1024:.0f} MiB (vectors alone: "
            f"{N_1M * DIM_1M * 4 / 2**20:.0f} MiB)")
    log("cold = query 0 on a fresh connection (OS file cache warm); median "
        f"= of {ROUNDS} rounds x {NQ} queries after it (1M: 1 round);\n"
        "top-10 = ref: queries whose ordered ids equal a float64 numpy "
        "reference's")
    if problems:
        log("Disagreements with the reference:")
        for p in problems:
            log("  " + p)
    if loaded:
        log("WARNING: wall time exceeds CPU time by over 15% (the machine "
            "was busy?) in: " + "; ".join(loaded))
    for p in ("knn_embed.db", "knn_embed_nocache.db", "knn_plain.db",
              "knn_vec.db", "knn_embed_1m.db"):
        fresh(os.path.join(DATA_DIR, p))
    log(f"total bench time {time.perf_counter() - T_START:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
