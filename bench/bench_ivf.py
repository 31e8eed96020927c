#!/usr/bin/python3
"""bench_ivf.py - approximate (IVF) similarity search: embed's index=ivf
against exact search and against sqlite-vec and sqlite-vector.

Run from the repository root (after `make`):

    /usr/bin/python3 bench/bench_ivf.py [--rows 1000000] [--rounds 3]
                                        [--epochs 3] [--drift-scale 1]
                                        [--no-drift]

Data (bench/common.py: mixture, exact_topk): --rows (100,000 by default)
x 384 float32 vectors from a Gaussian mixture of 2,048 centres of
lognormal sizes, the standard deviation of dimension j decaying as
1 / sqrt(1 + j / 32), every vector L2-normalised, spread and noise set so
that most but not all of a query's 10 nearest neighbours share its
centre; 200 fresh queries from the same mixture; the ground truth is a
float64 numpy brute force. Vectors, queries and truth are cached as .npy
under build/bench-data/ (so are the databases, deleted at the end).

Methods, each a file database built once per run (build time printed):
  embed ivf    CREATE VIRTUAL TABLE t USING embedding(dim=384, index=ivf),
               filled, then INSERT INTO t(t) VALUES ('build-index') (timed
               alone); SELECT id, distance FROM t WHERE vector MATCH :q AND
               k = 10 [AND nprobe = N] for N in NPROBES, the default, and
               nprobe = 0 (exact on the indexed table)
  embed exact  the same table without index=ivf
  sqlite-vec   0.1.9 vec0 (from npm, as bench_knn.py): exact brute force
  sqlite-vector 1.1.2 (npm @sqliteai/sqlite-vector-linux-x86_64):
               vector_init on a plain table, vector_quantize (timed as its
               build), vector_quantize_preload per connection, then
               vector_quantize_scan(tbl, col, :q, 10)

Method: recall@10 = |returned ids & true top 10| / 10, averaged over the
200 queries. Latency is wall time of execute + fetchall per query; ROUNDS
rounds, each visiting every method in turn so that load drift on this
shared machine hits all alike (a method whose round takes over
SLOW_ROUND_S runs one round only); p50 and p95 are over every sample, the
spread is the range of the per-round p50s. "cold" and "+RSS" come from a
fresh process per method (OS file cache warm, SQLite's default cache
size): the first query's time including whatever the method loads, and
the resident memory it added, against the float32 vectors' size.

Write cost: bulk insert and 1,024-row 'step' statements into an
index=ivf table against one without, side by side (up to 100,000 rows),
and the search after each step, which re-assigns the changed rows.

Training drift (embed ivf, --no-drift skips it): EPOCHS epochs in which
every row takes one SGD step, INSERT INTO t(t, id, vector, lr) VALUES
('step', :ids_json, :grads, :lr), with a random unit gradient and lr set
so that a row moves in all by about --drift-scale times the median
distance from a query to its 10th neighbour; then the truth is recomputed from the table's rows and
recall measured at the same nprobe without a rebuild and after one.
"""
import argparse
import json
import os
import sqlite3
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (cpu_model, exact_topk, fetch_npm_extension, log,  # noqa
                    mixture, rss_kib, summary)
from bench_knn import EXT, ROOT, build, connect, fetch_sqlite_vec, fresh  # noqa

DATA = os.path.join(ROOT, "build", "bench-data")
SV_VERSION = "1.1.2"
DIM, NQ, K = 384, 200, 10
NPROBES = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512]
SLOW_ROUND_S = 20.0
STEP_BATCH = 4096
CACHE_KIB = 1_000_000
TAG = "m2"  # bump when mixture()'s parameters change: the cache key


def cached_data(rows):
    """(vectors, queries, truth, queries path), generated once per size."""
    os.makedirs(DATA, exist_ok=True)
    base = os.path.join(DATA, f"ivf_{TAG}_{rows}x{DIM}")
    paths = [base + s for s in ("_vectors.npy", "_queries.npy",
                                "_truth.npy")]
    if all(os.path.exists(p) for p in paths):
        v, q, t = (np.load(p) for p in paths)
        if len(v) == rows and len(q) == NQ:
            return v, q, t, paths[1]
    t0 = time.perf_counter()
    v, q, _, _ = mixture(rows, NQ, DIM)
    t1 = time.perf_counter()
    t = exact_topk(v, q, K)
    log(f"  data     generated in {t1 - t0:.1f}s, truth in "
        f"{time.perf_counter() - t1:.1f}s (cached in "
        f"{os.path.relpath(DATA, ROOT)}/)")
    for p, a in zip(paths, (v, q, t)):
        np.save(p + ".tmp.npy", a)
        os.replace(p + ".tmp.npy", p)
    return v, q, t, paths[1]


def recall(ids, truth):
    return float(np.mean([len(set(g) & set(w.tolist())) / K
                          for g, w in zip(ids, truth)]))


class Method:
    """One query form on one database: its connection (setup statements
    run once), rounds of the NQ queries, ids and per-query latencies."""

    def __init__(self, label, path, sql, exts=(), setup=(), kind="embed"):
        self.label, self.path, self.sql, self.kind = label, path, sql, kind
        self.exts, self.setup = list(exts), list(setup)
        self.conn = open_db(path, self.exts, self.setup, CACHE_KIB)
        self.rounds, self.ids = [], None

    def run(self, blobs):
        if len(self.rounds) == 1 and sum(self.rounds[0]) > SLOW_ROUND_S * 1e3:
            return
        times, ids = [], []
        for b in blobs:
            t0 = time.perf_counter()
            rows = self.conn.execute(self.sql, (b,)).fetchall()
            times.append((time.perf_counter() - t0) * 1e3)
            ids.append([r[0] for r in rows])
        self.rounds.append(times)
        if self.ids is None:
            self.ids = ids

    def stats(self):
        """(p50, p95, min p50 of a round, max p50 of a round) in ms."""
        allt = np.concatenate(self.rounds)
        _, lo, hi = summary([float(np.median(r)) for r in self.rounds])
        return float(np.median(allt)), float(np.percentile(allt, 95)), lo, hi

    def close(self):
        self.conn.close()


def open_db(path, exts, setup, cache_kib):
    conn = connect(path, None, cache_kib)
    for e in exts:
        conn.load_extension(e)
    for s in setup:
        conn.execute(s).fetchall()
    return conn


def knn_sql(nprobe=None):
    extra = "" if nprobe is None else f" AND nprobe = {nprobe}"
    return f"SELECT id, distance FROM t WHERE vector MATCH ? AND k = {K}" + extra


def child(spec):
    """In a fresh process: open, first query, second query; JSON out."""
    s = json.loads(spec)
    q = np.load(s["queries"])
    rss0, _ = rss_kib()
    t0 = time.perf_counter()
    conn = open_db(s["path"], s["exts"], s["setup"], 0)
    conn.execute(s["sql"], (q[0].tobytes(),)).fetchall()
    cold = time.perf_counter() - t0
    rss1, _ = rss_kib()
    t0 = time.perf_counter()
    conn.execute(s["sql"], (q[1].tobytes(),)).fetchall()
    print(json.dumps({"cold_ms": cold * 1e3, "second_ms":
                      (time.perf_counter() - t0) * 1e3,
                      "rss_kib": rss1 - rss0}))


def fresh_process(m, qpath):
    """{cold_ms, second_ms, rss_kib} of m's query in a new process."""
    spec = json.dumps({"path": m.path, "exts": m.exts, "setup": m.setup,
                       "sql": m.sql, "queries": qpath})
    out = subprocess.run([sys.executable, os.path.abspath(__file__),
                          "--child", spec], capture_output=True, text=True)
    if out.returncode != 0:
        log(f"  fresh process for {m.label} failed: {out.stderr.strip()}")
        return None
    return json.loads(out.stdout)


def timed(conn, sql, params=()):
    t0 = time.perf_counter()
    conn.execute(sql, params).fetchall()
    return time.perf_counter() - t0


def build_all(vectors, vec_ext, sv_ext):
    """Build every database; {name: (path, build s, index s)} of those
    built; prints one line each."""
    n = len(vectors)
    built = {}
    ins = "INSERT INTO t(id, vector) VALUES (?, ?)"
    specs = [("embed ivf", f"CREATE VIRTUAL TABLE t USING embedding("
              f"dim={DIM}, index=ivf)", ins, None,
              "INSERT INTO t(t) VALUES ('build-index')"),
             ("embed exact", f"CREATE VIRTUAL TABLE t USING embedding("
              f"dim={DIM})", ins, None, None)]
    if vec_ext:
        specs.append(("sqlite-vec", "CREATE VIRTUAL TABLE v USING vec0("
                      f"embedding float[{DIM}] distance_metric=cosine)",
                      "INSERT INTO v(rowid, embedding) VALUES (?, ?)",
                      vec_ext, None))
    if sv_ext:
        specs.append(("sqlite-vector", "CREATE TABLE sv(id INTEGER PRIMARY "
                      "KEY, embedding BLOB)", "INSERT INTO sv(id, embedding) "
                      "VALUES (?, ?)", sv_ext, SV_INIT +
                      "; SELECT vector_quantize('sv', 'embedding')"))
    for name, create, insert, ext, index in specs:
        path = os.path.join(DATA, "ivf_" + name.replace(" ", "_") + ".db")
        try:
            dt = build(path, create, insert, vectors, ext)
        except sqlite3.Error as e:
            what = ("embed index=ivf not available" if name == "embed ivf"
                    else f"{name}: build failed")
            log(f"  build    {what} ({e})")
            fresh(path)
            continue
        di = None
        if index:
            conn = connect(path, ext, CACHE_KIB)
            di = sum(timed(conn, s) for s in index.split("; "))
            conn.close()
        built[name] = (path, dt, di)
        log(f"  build    {name}: insert {n:,} rows {dt:.1f}s" +
            (f", index {di:.2f}s" if di is not None else ""))
    return built


SV_INIT = (f"SELECT vector_init('sv', 'embedding', 'type=FLOAT32,"
           f"dimension={DIM},distance=COSINE')")
SV_SQL = (f"SELECT rowid, distance FROM vector_quantize_scan('sv', "
          f"'embedding', ?, {K})")


def make_methods(built, vec_ext, sv_ext):
    ms = []
    if "embed ivf" in built:
        p = built["embed ivf"][0]
        ms += [Method(f"embed ivf nprobe={n}", p, knn_sql(n), kind=n)
               for n in NPROBES]
        ms.append(Method("embed ivf default nprobe", p, knn_sql(),
                         kind="default"))
        ms.append(Method("embed ivf nprobe=0 (exact)", p, knn_sql(0),
                         kind="exact-ivf"))
    if "embed exact" in built:
        ms.append(Method("embed, no index (exact)", built["embed exact"][0],
                         knn_sql(), kind="exact"))
    if "sqlite-vec" in built:
        ms.append(Method("sqlite-vec 0.1.9 vec0 (exact)",
                         built["sqlite-vec"][0], "SELECT rowid, distance FROM"
                         f" v WHERE embedding MATCH ? AND k = {K}",
                         [vec_ext], kind="vec0"))
    if "sqlite-vector" in built:
        ms.append(Method(f"sqlite-vector {SV_VERSION} quantize_scan",
                         built["sqlite-vector"][0], SV_SQL, [sv_ext],
                         [SV_INIT, "SELECT vector_quantize_preload('sv', "
                          "'embedding')"], kind="sv"))
    return ms


def step_epochs(conn, n, epochs, lr, rng):
    """EPOCHS epochs of SGD steps with random unit gradients; seconds."""
    t0 = time.perf_counter()
    for _ in range(epochs):
        order = rng.permutation(n)
        conn.execute("BEGIN")
        for s in range(0, n, STEP_BATCH):
            ids = order[s:s + STEP_BATCH]
            g = rng.standard_normal((len(ids), DIM), dtype=np.float32)
            g /= np.linalg.norm(g, axis=1, keepdims=True)
            conn.execute("INSERT INTO t(t, id, vector, lr) VALUES "
                         "('step', ?, ?, ?)",
                         (json.dumps(ids.tolist()), g.tobytes(), lr))
        conn.execute("COMMIT")
    return time.perf_counter() - t0


def read_rows(conn, n):
    out = np.empty((n, DIM), dtype=np.float32)
    for i, blob in conn.execute("SELECT id, vector FROM t"):
        out[i] = np.frombuffer(blob, dtype=np.float32)
    return out


def drift(path, queries, truth, vectors, nprobes, epochs, scale):
    """Recall at each of nprobes (label, sql) before and after the steps,
    without and with a rebuild."""
    blobs = [q.tobytes() for q in queries]
    top = truth[:, K - 1]
    d10 = float(np.median(np.linalg.norm(
        vectors[top] - queries, axis=1)))
    lr = scale * d10 / np.sqrt(epochs)
    conn = connect(path, None, CACHE_KIB)
    rng = np.random.default_rng(7)
    dt = step_epochs(conn, len(vectors), epochs, lr, rng)
    now = read_rows(conn, len(vectors))
    moved = float(np.median(np.linalg.norm(now - vectors, axis=1)))
    t0 = time.perf_counter()
    truth2 = exact_topk(now, queries, K)
    gt_s = time.perf_counter() - t0
    kept = np.mean([len(set(a) & set(b)) / K for a, b in
                    zip(truth.tolist(), truth2.tolist())])

    def recalls():
        return [recall([[r[0] for r in conn.execute(sql, (b,))]
                        for b in blobs], truth2) for _, sql in nprobes]
    before = recalls()
    rebuild = timed(conn, "INSERT INTO t(t) VALUES ('build-index')")
    after = recalls()
    conn.close()
    log(f"\nTraining drift: {epochs} epochs of 'step' (every row once per "
        f"epoch, {STEP_BATCH} rows a statement) in {dt:.1f}s, lr {lr:.3f}, "
        f"random unit gradients;")
    log(f"  rows moved by {moved:.3f} (median; a query's 10th neighbour is "
        f"at {d10:.3f}); new truth in {gt_s:.1f}s keeps {kept:.1%} of the "
        "old top 10")
    log(f"  {'setting':30s} {'no rebuild':>11s} {'rebuilt':>9s}")
    for (label, _), b, a in zip(nprobes, before, after):
        log(f"  {label:30s} {b:11.4f} {a:9.4f}")
    log(f"  rebuild ('build-index') {rebuild:.2f}s")


def write_cost(vectors, rounds=3, steps=15):
    """What keeping the index costs writes, at up to 100,000 rows: bulk
    insert (INSERT ... SELECT from a plain table) and 1,024-row 'step'
    statements into an index=ivf table (built) against one without, side
    by side in one WAL file (synchronous=NORMAL), and the first search
    after each step, which re-reads and re-assigns the changed rows."""
    x = vectors[:100_000]
    n = len(x)
    path = os.path.join(DATA, "ivf_write_cost.db")
    fresh(path)
    conn = connect(path, None, CACHE_KIB)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("CREATE TABLE src(id INTEGER PRIMARY KEY, v BLOB)")
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO src VALUES (?, ?)",
                     ((i, x[i].tobytes()) for i in range(n)))
    conn.execute("COMMIT")
    names = {"none": "", "ivf": ", index=ivf"}
    for name, opt in names.items():
        conn.execute(f"CREATE VIRTUAL TABLE t_{name} USING embedding("
                     f"dim={DIM}{opt}, seed=1)")
    times = {k: {name: [] for name in names}
             for k in ("insert", "step", "search", "warm")}
    for _ in range(rounds):
        for name in names:
            conn.execute(f"DELETE FROM t_{name}")
            times["insert"][name].append(timed(
                conn, f"INSERT INTO t_{name}(id, vector) SELECT id, v FROM "
                "src"))
    conn.execute("INSERT INTO t_ivf(t_ivf) VALUES ('build-index')")
    rng = np.random.default_rng(5)
    q = x[0].tobytes()
    for name in names:  # load the copy and the index
        conn.execute(f"SELECT id FROM t_{name} WHERE vector MATCH ? AND "
                     "k = 10", (q,)).fetchall()
    for _ in range(steps):
        ids = json.dumps(rng.choice(n, 1024, replace=False).tolist())
        g = (0.01 * rng.standard_normal((1024, DIM))).astype("<f4").tobytes()
        for name in names:
            times["step"][name].append(timed(
                conn, f"INSERT INTO t_{name}(t_{name}, id, vector, lr) VALUES "
                "('step', ?, ?, 0.1)", (ids, g)))
            for k in ("search", "warm"):  # after the step, then again
                t0 = time.perf_counter()
                conn.execute(f"SELECT id FROM t_{name} WHERE vector MATCH ? "
                             "AND k = 10", (q,)).fetchall()
                times[k][name].append(time.perf_counter() - t0)
    conn.close()
    fresh(path)
    log(f"\nwrite cost of the index ({n:,} rows, medians; no index / "
        "index=ivf, ranges):")
    med = {}
    for k, label in (("insert", f"bulk insert of {n:,} rows"),
                     ("step", "1,024-row step"),
                     ("search", "first search after the step"),
                     ("warm", "the search after that")):
        (a, a0, a1), (b, b0, b1) = (summary(times[k]["none"]),
                                    summary(times[k]["ivf"]))
        med[k] = (a, b)
        log(f"  {label:30s} {a * 1e3:9.2f} / {b * 1e3:9.2f} ms  "
            f"{b / a:5.2f}x  ({a0 * 1e3:.1f}-{a1 * 1e3:.1f} / "
            f"{b0 * 1e3:.1f}-{b1 * 1e3:.1f})")
    # what the index adds to a step: its own write cost, plus the
    # re-assignment the next search does (that search minus a warm one)
    ins = med["insert"][1] / med["insert"][0] - 1
    step = (med["step"][1] + med["search"][1] - med["warm"][1]) / \
        med["step"][0] - 1
    target("cost added to bulk insert by the index <= 25%", ins <= 0.25,
           f"{ins:+.0%}")
    target("cost added to a 1,024-row step by the index <= 25%",
           step <= 0.25, f"{step:+.0%} (the step, plus what the next "
           "search spends re-assigning its rows)")


def target(label, ok, detail):
    state = "n/a " if ok is None else ("PASS" if ok else "MISS")
    log(f"  {state}  {label}: {detail}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--drift-scale", type=float, default=1.0)
    ap.add_argument("--no-drift", action="store_true")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        child(a.child)
        return 0
    if not os.path.exists(EXT + ".so"):
        raise SystemExit("bench_ivf: build embed.so first (make)")
    t_start = time.perf_counter()
    c = connect(":memory:")
    version = c.execute("SELECT embed_version()").fetchone()[0]
    c.close()
    log(f"embed IVF benchmark: approximate top-{K} by cosine, {a.rows:,} x "
        f"{DIM}")
    log(f"  CPU      {cpu_model()} ({os.cpu_count()} cores)")
    log(f"  SQLite   {sqlite3.sqlite_version}, numpy {np.__version__}, "
        f"embed {version}")
    vec_ext = fetch_sqlite_vec()
    sv_ext = fetch_npm_extension(
        f"@sqliteai/sqlite-vector-linux-x86_64@{SV_VERSION}",
        "package/vector.so", os.path.join(DATA, f"sqlite-vector-{SV_VERSION}"))
    vectors, queries, truth, qpath = cached_data(a.rows)
    d = 1 - np.einsum("qd,qkd->qk", queries.astype(np.float64),
                      vectors[truth].astype(np.float64))
    log(f"  data     mixture of 2,048 centres, {NQ} queries; cosine distance "
        f"to the 1st / 10th neighbour: median {np.median(d[:, 0]):.3f} / "
        f"{np.median(d[:, -1]):.3f}")

    built = build_all(vectors, vec_ext, sv_ext)
    methods = make_methods(built, vec_ext, sv_ext)
    blobs = [q.tobytes() for q in queries]
    for _ in range(a.rounds):
        for m in methods:
            m.run(blobs)
    for m in methods:
        m.close()

    fresh_of = {}
    for m in methods:
        if m.kind in ("default", "exact", "vec0", "sv"):
            fresh_of[m.kind] = fresh_process(m, qpath)

    # ------------------------------------------------------------- print
    res = {}
    w = 34
    log(f"\n{'method':{w}s} {'recall@10':>9s} {'p50 ms':>8s} {'p95 ms':>8s}"
        f"  {'p50 range':>15s} {'rounds':>6s}")
    log("-" * (w + 52))
    for m in methods:
        p50, p95, lo, hi = m.stats()
        r = recall(m.ids, truth)
        res[m.kind] = (r, p50, p95, m)
        log(f"{m.label:{w}s} {r:9.4f} {p50:8.3f} {p95:8.3f}  "
            f"{lo:7.3f}-{hi:<7.3f} {len(m.rounds):6d}")
    if "embed ivf" not in built:
        log("embed index=ivf not available: the IVF rows, targets and "
            "drift are skipped")
    vec_bytes = a.rows * DIM * 4
    log(f"\n{'fresh process (first query)':{w}s} {'cold ms':>9s} "
        f"{'next ms':>8s} {'+RSS MiB':>9s} {'x vectors':>9s}")
    for kind, f in fresh_of.items():
        if f:
            log(f"{res[kind][3].label:{w}s} {f['cold_ms']:9.1f} "
                f"{f['second_ms']:8.2f} {f['rss_kib'] / 1024:9.1f} "
                f"{f['rss_kib'] * 1024 / vec_bytes:9.3f}")
    log(f"  (float32 vectors: {vec_bytes / 2**20:.0f} MiB)")

    # the operating point: the fastest sweep setting with recall >= 0.99
    ok = [k for k in NPROBES if k in res and res[k][0] >= 0.99]
    best = min(ok, key=lambda k: res[k][1]) if ok else None
    # else the sweep's best recall, for the ratios and the drift
    top = best or max((k for k in NPROBES if k in res),
                      key=lambda k: res[k][0], default=None)
    log("\nratios embed / peer (p50)")
    for mine, label in (("default", "embed ivf default"),
                        (top, f"embed ivf nprobe={top}"),
                        ("exact", "embed exact, no index")):
        for peer in ("vec0", "sv"):
            if mine in res and peer in res:
                log(f"  {label:26s} / {res[peer][3].label:30s} "
                    f"{res[mine][1] / res[peer][1]:7.3f}x  (recall "
                    f"{res[mine][0]:.4f} vs {res[peer][0]:.4f})")

    if "embed ivf" in built:
        log("\ntargets")
        big = a.rows >= 1_000_000
        small = a.rows == 100_000
        for rows, ms, on in ((100_000, 1.2, small), (1_000_000, 3.0, big)):
            if not on:
                target(f"{rows:,} rows recall@10 >= 0.99 at p50 <= {ms} ms",
                       None, f"run with --rows {rows}")
                continue
            fast = [k for k in ok if res[k][1] <= ms]
            detail = (f"nprobe={fast[0]}: recall {res[fast[0]][0]:.4f}, p50 "
                      f"{res[fast[0]][1]:.3f} ms" if fast else
                      f"best >= 0.99: nprobe={best}, p50 "
                      f"{res[best][1]:.3f} ms" if best else
                      "no nprobe reaches 0.99")
            target(f"{rows:,} rows recall@10 >= 0.99 at p50 <= {ms} ms",
                   bool(fast), detail)
        di = built["embed ivf"][2]
        target("build-index at 1M rows <= 30 s", di <= 30 if big else None,
               f"{di:.2f}s at {a.rows:,} rows")
        f = fresh_of.get("default")
        if f:
            ratio = f["rss_kib"] * 1024 / vec_bytes
            target("index memory <= 0.35 x float32 vectors", ratio <= 0.35,
                   f"{ratio:.3f}x (+RSS of the first default-nprobe query)")
            target("cold first query at 1M rows <= 3 s",
                   f["cold_ms"] <= 3000 if big else None,
                   f"{f['cold_ms']:.0f} ms at {a.rows:,} rows")
        write_cost(vectors)
        if not a.no_drift:
            sweep = [("default nprobe", knn_sql()),
                     (f"nprobe={top}", knn_sql(top))]
            drift(built["embed ivf"][0], queries, truth, vectors, sweep,
                  a.epochs, a.drift_scale)
    for path, _, _ in built.values():
        fresh(path)
    log(f"total bench time {time.perf_counter() - t_start:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
