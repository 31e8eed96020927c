#!/usr/bin/python3
"""bench.py - the `embedding` virtual table against a plain SQLite table.

Run from the repository root (`make bench` does):

    /usr/bin/python3 bench/bench.py [--strict]

What it measures, in one run (about a minute on 2 cores):

  1. data      200,000 x 128 float32 vectors (numpy default_rng(0)), ids
               0..199,999, loaded into `tok` (embedding(dim=128)) and into
               `plain(id INTEGER PRIMARY KEY, v BLOB)` in one file database,
               bench/.data/bench.db (git-ignored, re-created every run).
  2. insert    INSERT ... SELECT id, v FROM staging (all 200,000 rows, one
               statement, Python not in the loop), embed vs plain.
  3. join      500,000 random token ids in ids(pos, token_id);
               SELECT sum(length(e.vector)) FROM ids JOIN tok e ON ...
               vs the same against plain; the embed plan must be INDEX 1 (EQ).
  4. update    100,000 distinct ids in upd(id);
               SELECT count(embed_update('tok', id, :g, 0.01)) FROM upd
               vs UPDATE plain SET v = embed_sub(v, :step) FROM upd ...
               (:step = 0.01 * g); the bound form embed_update(id, ...) FROM
               tok WHERE id IN (SELECT id FROM upd) is reported too.
  5. batch     one embed_update('tok', :ids_json, :grads, 0.01) with 10,000
               distinct ids vs 10,000 per-row calls as in 4; per-row times.

Method: every figure is the median of 3 timed repetitions, after one
untimed warm-up run of the same statement (warm caches, WAL file already
grown). Embed and plain repetitions alternate so drift hits both alike.
Every write runs inside BEGIN ... ROLLBACK, so each repetition does the
same work on the same data; only the statement is timed (not BEGIN, not
COMMIT/ROLLBACK, so no fsync is in any figure). Both tables live in the same
database file with the same settings: journal_mode=WAL, synchronous default
(FULL), page_size 4096, cache_size=-1000000 (1 GB cap, so the ~220 MB working
set stays in SQLite's page cache: the figures measure CPU cost, not I/O).
The join is also shown with SQLite's default cache_size (-2000, 2 MB) as an
informational row.

Ratios are embed/plain: above 1 means the extension is slower. The bounds
come from the issue; a bound that is missed is printed as MISS, never hidden.
With --strict the exit status is 1 when any bound is missed.
"""
import json
import os
import platform
import sqlite3
import statistics
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA_DIR = os.path.join(ROOT, "bench", ".data")
DB_PATH = os.path.join(DATA_DIR, "bench.db")
EXT = os.path.join(ROOT, "embed")

N_ROWS = 200_000
DIM = 128
N_JOIN = 500_000
N_UPD = 100_000
N_BATCH = 10_000
LR = 0.01
REPS = 3
CACHE_KIB = 1_000_000  # cache_size = -CACHE_KIB

T_START = time.perf_counter()


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def log(msg):
    print(msg, flush=True)


def fresh_db():
    os.makedirs(DATA_DIR, exist_ok=True)
    for suffix in ("", "-wal", "-shm", "-journal"):
        try:
            os.remove(DB_PATH + suffix)
        except FileNotFoundError:
            pass
    conn = sqlite3.connect(DB_PATH, isolation_level=None)  # we BEGIN ourselves
    conn.enable_load_extension(True)
    conn.load_extension(EXT)
    mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    assert mode == "wal", mode
    conn.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
    return conn


def run(conn, sql, params=()):
    return conn.execute(sql, params).fetchall()


def time_once(conn, sql, params=(), write=True):
    """Seconds for one execution; writes are rolled back afterwards."""
    if write:
        conn.execute("BEGIN")
    try:
        t0 = time.perf_counter()
        rows = conn.execute(sql, params).fetchall()
        dt = time.perf_counter() - t0
    finally:
        if write:
            conn.execute("ROLLBACK")
    return dt, rows


def compare(conn, cases, expect=None):
    """cases: {label: (sql, params, write)}. One warm-up each, then REPS
    timed runs, alternating between the cases. Returns {label: median}."""
    times = {label: [] for label in cases}
    for label, (sql, params, write) in cases.items():
        _, rows = time_once(conn, sql, params, write)
        if expect and label in expect and rows != expect[label]:
            raise SystemExit(f"bench: {label}: unexpected result {rows!r}, "
                             f"expected {expect[label]!r}")
    for _ in range(REPS):
        for label, (sql, params, write) in cases.items():
            dt, _ = time_once(conn, sql, params, write)
            times[label].append(dt)
    return {label: statistics.median(ts) for label, ts in times.items()}, times


def plan(conn, sql, params=()):
    return [row[3] for row in run(conn, "EXPLAIN QUERY PLAN " + sql, params)]


def main():
    strict = "--strict" in sys.argv[1:]
    conn = fresh_db()
    sqlite_version = sqlite3.sqlite_version
    embed_version = run(conn, "SELECT embed_version()")[0][0]

    log("embed benchmark: embedding virtual table vs plain table")
    log(f"  CPU      {cpu_model()} ({os.cpu_count()} cores)")
    log(f"  SQLite   {sqlite_version} (Python {platform.python_version()} "
        f"sqlite3 module, numpy {np.__version__})")
    log(f"  embed    {embed_version} ({EXT}.so)")
    log(f"  database {os.path.relpath(DB_PATH, ROOT)}: journal_mode=WAL, "
        f"synchronous=FULL (default), page_size="
        f"{run(conn, 'PRAGMA page_size')[0][0]}, cache_size=-{CACHE_KIB}")
    log(f"  method   median of {REPS} after 1 warm-up; writes in "
        f"BEGIN..ROLLBACK; only the statement is timed")
    log("")

    # ------------------------------------------------------------- data
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((N_ROWS, DIM), dtype=np.float32)
    join_ids = rng.integers(0, N_ROWS, size=N_JOIN)
    upd_ids = rng.choice(N_ROWS, size=N_UPD, replace=False)
    batch_ids = rng.choice(N_ROWS, size=N_BATCH, replace=False)
    g = rng.standard_normal(DIM, dtype=np.float32)
    batch_grads = rng.standard_normal((N_BATCH, DIM), dtype=np.float32)
    g_blob = g.tobytes()
    step_blob = (np.float32(LR) * g).astype(np.float32).tobytes()
    batch_ids_json = json.dumps(batch_ids.tolist())
    batch_grads_blob = batch_grads.tobytes()

    run(conn, "CREATE TABLE staging(id INTEGER PRIMARY KEY, v BLOB)")
    run(conn, "CREATE VIRTUAL TABLE tok USING embedding(dim=128)")
    run(conn, "CREATE TABLE plain(id INTEGER PRIMARY KEY, v BLOB)")
    run(conn, "CREATE TABLE ids(pos INTEGER PRIMARY KEY, token_id INTEGER)")
    run(conn, "CREATE TABLE upd(id INTEGER PRIMARY KEY)")
    run(conn, "CREATE TABLE upd_small(id INTEGER PRIMARY KEY)")
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO staging(id, v) VALUES (?, ?)",
                     ((i, vectors[i].tobytes()) for i in range(N_ROWS)))
    conn.executemany("INSERT INTO ids(pos, token_id) VALUES (?, ?)",
                     enumerate(join_ids.tolist()))
    conn.executemany("INSERT INTO upd(id) VALUES (?)",
                     ((i,) for i in upd_ids.tolist()))
    conn.executemany("INSERT INTO upd_small(id) VALUES (?)",
                     ((i,) for i in batch_ids.tolist()))
    conn.execute("COMMIT")

    results = []  # (label, embed_s, plain_s, bound or None, unit note)

    # ----------------------------------------------------------- insert
    ins_embed = "INSERT INTO tok(id, vector) SELECT id, v FROM staging"
    ins_plain = "INSERT INTO plain(id, v) SELECT id, v FROM staging"
    med, _ = compare(conn, {"embed": (ins_embed, (), True),
                            "plain": (ins_plain, (), True)})
    results.append(("insert 200,000 rows (INSERT..SELECT)", med["embed"],
                    med["plain"], 1.5))
    # the committed load the reads and updates below work on (untimed)
    for sql in (ins_embed, ins_plain):
        conn.execute("BEGIN")
        conn.execute(sql)
        conn.execute("COMMIT")
    run(conn, "PRAGMA wal_checkpoint(TRUNCATE)")
    n_tok = run(conn, "SELECT count(*) FROM tok")[0][0]
    n_plain = run(conn, "SELECT count(*) FROM plain")[0][0]
    assert n_tok == n_plain == N_ROWS, (n_tok, n_plain)

    # ------------------------------------------------------------- join
    join_embed = ("SELECT sum(length(e.vector)) FROM ids "
                  "JOIN tok e ON e.id = ids.token_id")
    join_plain = ("SELECT sum(length(e.v)) FROM ids "
                  "JOIN plain e ON e.id = ids.token_id")
    join_plan = plan(conn, join_embed)
    join_plan_plain = plan(conn, join_plain)
    join_uses_eq = any("VIRTUAL TABLE INDEX 1:" in p for p in join_plan)
    want = [(N_JOIN * DIM * 4,)]
    med, _ = compare(conn, {"embed": (join_embed, (), False),
                            "plain": (join_plain, (), False)},
                     expect={"embed": want, "plain": want})
    results.append(("join 500,000 ids (sum(length(vector)))", med["embed"],
                    med["plain"], 1.25))

    run(conn, "PRAGMA cache_size=-2000")
    med, _ = compare(conn, {"embed": (join_embed, (), False),
                            "plain": (join_plain, (), False)})
    results.append(("  info: same join, cache_size=-2000 (default)",
                    med["embed"], med["plain"], None))
    run(conn, f"PRAGMA cache_size=-{CACHE_KIB}")
    # re-warm the big cache for the updates
    run(conn, "SELECT sum(length(vector)) FROM tok")
    run(conn, "SELECT sum(length(v)) FROM plain")

    # ----------------------------------------------------------- update
    upd_embed = ("SELECT count(embed_update('tok', id, :g, 0.01)) FROM upd")
    upd_plain = ("UPDATE plain SET v = embed_sub(v, :step) FROM upd "
                 "WHERE plain.id = upd.id")
    upd_bound = ("SELECT count(embed_update(id, :g, 0.01)) FROM tok "
                 "WHERE id IN (SELECT id FROM upd)")
    upd_plain_in = ("UPDATE plain SET v = embed_sub(v, :step) "
                    "WHERE id IN (SELECT id FROM upd)")
    p_g = {"g": g_blob}
    p_step = {"step": step_blob}
    upd_plans = {
        "embed named": plan(conn, upd_embed, p_g),
        "embed bound": plan(conn, upd_bound, p_g),
        "plain UPDATE FROM": plan(conn, upd_plain, p_step),
    }
    # Sanity: both forms give bit-identical rows (float32 w + (-lr)*g).
    conn.execute("BEGIN")
    run(conn, upd_embed, p_g)
    run(conn, upd_plain, p_step)
    n_diff = run(conn, "SELECT count(*) FROM upd JOIN plain p ON p.id = upd.id"
                       " JOIN tok t ON t.id = upd.id WHERE p.v <> t.vector")
    conn.execute("ROLLBACK")
    identical = n_diff[0][0] == 0
    med, _ = compare(conn, {"embed": (upd_embed, p_g, True),
                            "bound": (upd_bound, p_g, True),
                            "plain": (upd_plain, p_step, True),
                            "plain_in": (upd_plain_in, p_step, True)},
                     expect={"embed": [(N_UPD,)], "bound": [(N_UPD,)]})
    results.append(("per-row update 100,000 ids (named)", med["embed"],
                    med["plain"], 1.2))
    results.append(("  info: bound form, WHERE id IN (SELECT ..)",
                    med["bound"], med["plain"], None))
    results.append(("  info: plain as UPDATE .. WHERE id IN (..)",
                    med["embed"], med["plain_in"], None))

    # ------------------------------------------------------------ batch
    batch_sql = "SELECT embed_update('tok', :ids, :grads, 0.01)"
    small_sql = ("SELECT count(embed_update('tok', id, :g, 0.01)) "
                 "FROM upd_small")
    med, _ = compare(conn, {"batch": (batch_sql, {"ids": batch_ids_json,
                                                  "grads": batch_grads_blob},
                                      True),
                            "rows": (small_sql, p_g, True)},
                     expect={"batch": [(N_BATCH,)], "rows": [(N_BATCH,)]})
    batch_row = (med["batch"], med["rows"])

    # ------------------------------------------------------------ print
    log("Query plans (EXPLAIN QUERY PLAN):")
    log(f"  join, embed:        {' | '.join(join_plan)}")
    log(f"  join, plain:        {' | '.join(join_plan_plain)}")
    for k, v in upd_plans.items():
        log(f"  update, {k + ':':18s}{' | '.join(v)}")
    log(f"  per-row update results bit-identical to plain: "
        f"{'yes' if identical else 'NO'}")
    log("")

    w = 46
    log(f"{'measurement':{w}s} {'embed':>10s} {'plain':>10s} {'ratio':>7s}"
        f"  (bound)")
    log("-" * (w + 42))
    for label, e, p, bound in results:
        b = f"(<= {bound:.2f}x)" if bound else ""
        log(f"{label:{w}s} {e * 1000:8.1f}ms {p * 1000:8.1f}ms "
            f"{e / p:6.2f}x  {b}")
    bt, rt = batch_row
    log(f"{'batch update, 10,000 ids in one call':{w}s} {bt * 1000:8.1f}ms "
        f"{'':>10s} {'':>7s}")
    log(f"{'per-row update, 10,000 calls':{w}s} {rt * 1000:8.1f}ms "
        f"{'':>10s} {'':>7s}")
    log(f"{'  per row: batch vs per-row calls (us/row)':{w}s} "
        f"{bt / N_BATCH * 1e6:8.2f}us {rt / N_BATCH * 1e6:8.2f}us "
        f"{bt / rt:6.2f}x  (< 1.00x)")
    log("-" * (w + 42))

    # ---------------------------------------------------------- summary
    verdicts = []
    for label, e, p, bound in results:
        if bound is None:
            continue
        verdicts.append((label.strip(), e / p, f"<= {bound:.2f}x",
                         e / p <= bound))
    verdicts.append(("batch update per row vs per-row calls", bt / rt,
                     "< 1.00x", bt < rt))
    log("Summary:")
    log(f"  {'PASS' if join_uses_eq else 'MISS'}  join uses the id index "
        f"(plan INDEX 1 = EQ): {join_plan[-1] if join_plan else '?'}")
    for label, ratio, bound, ok in verdicts:
        log(f"  {'PASS' if ok else 'MISS'}  {label}: {ratio:.2f}x "
            f"(bound {bound})")
    missed = sum(not ok for *_, ok in verdicts) + (not join_uses_eq)
    log(f"  {missed} bound(s) missed; total bench time "
        f"{time.perf_counter() - T_START:.0f}s")
    conn.close()
    return 1 if (strict and missed) else 0


if __name__ == "__main__":
    sys.exit(main())
