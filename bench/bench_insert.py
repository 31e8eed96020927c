#!/usr/bin/python3
"""bench_insert.py - bulk insert into an embedding table against the same
insert into an ordinary table (issue 12's goal: within 1.2x, in memory and
on disk).

Run from the repository root after `make` (bench_train.py runs it):

    /usr/bin/python3 bench/bench_insert.py [--rows 200000] [--reps 5]
        [--page-size BYTES]

What it measures: 200,000 x 128 float32 rows (numpy default_rng(0)) in
src(id INTEGER PRIMARY KEY, v BLOB) of an attached `:memory:` database, then

    INSERT INTO tok(id, vector) SELECT id, v FROM src      -- embedding(dim=128)
    INSERT INTO plain(id, v) SELECT id, v FROM src         -- ordinary table

into a fresh, empty table each repetition, in a `:memory:` database and in
a WAL file (synchronous=NORMAL, SQLite's default page cache), once as one
autocommit statement (the timed part includes its COMMIT) and once inside
BEGIN ... COMMIT (timed from BEGIN to the end of COMMIT; README "Bulk
insert"). Figures: wall-clock median and
[min, max] over the repetitions, embed and plain alternating in the same
process, and the ratio of the medians.
"""
import argparse
import os
import sqlite3
import statistics
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXT = os.environ.get("EMBED_EXT") or os.path.join(ROOT, "embed")
DIM = 128
GOAL = 1.2


def one_run(kind, where, form, n, src_rows, workdir, page_size=None):
    path = ":memory:" if where == "memory" else os.path.join(workdir, "ins.db")
    for suffix in ("", "-wal", "-shm"):
        if where != "memory" and os.path.exists(path + suffix):
            os.remove(path + suffix)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.enable_load_extension(True)
    conn.load_extension(EXT)
    if page_size:  # both tables alike, before the database's first page
        conn.execute(f"PRAGMA main.page_size={int(page_size)}")
    if where != "memory":
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("ATTACH ':memory:' AS s")
    conn.execute("CREATE TABLE s.src(id INTEGER PRIMARY KEY, v BLOB)")
    conn.executemany("INSERT INTO src VALUES (?, ?)", src_rows)
    if kind == "embed":
        conn.execute(f"CREATE VIRTUAL TABLE main.tok USING embedding(dim={DIM})")
        sql = "INSERT INTO main.tok(id, vector) SELECT id, v FROM src"
    else:
        conn.execute("CREATE TABLE main.tok(id INTEGER PRIMARY KEY, v BLOB)")
        sql = "INSERT INTO main.tok(id, v) SELECT id, v FROM src"
    t0 = time.perf_counter()
    if form == "txn":
        conn.execute("BEGIN")
    conn.execute(sql)
    if form == "txn":
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - t0
    assert conn.execute("SELECT count(*) FROM main.tok").fetchone()[0] == n
    conn.close()
    return elapsed


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--page-size", type=int, metavar="BYTES",
                    help="PRAGMA page_size of both tables' databases "
                         "(default SQLite's, 4096)")
    args = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((args.rows, DIM), dtype=np.float32)
    src_rows = [(i, X[i].tobytes()) for i in range(args.rows)]
    print(f"bench_insert: INSERT ... SELECT of {args.rows:,} x {DIM} float32 "
          f"rows into an empty table, {args.reps} reps, SQLite "
          f"{sqlite3.sqlite_version}"
          f"{f', page_size {args.page_size}' if args.page_size else ''}; "
          f"wall ms, median [min, max]")
    with tempfile.TemporaryDirectory(dir=os.path.join(ROOT, "build")
                                     if os.path.isdir(os.path.join(ROOT, "build"))
                                     else None) as workdir:
        for where in ("memory", "file"):
            for form in ("autocommit", "txn"):
                ms = {"embed": [], "plain": []}
                for _ in range(args.reps):
                    for kind in ms:
                        ms[kind].append(1e3 * one_run(kind, where, form,
                                                      args.rows, src_rows,
                                                      workdir, args.page_size))
                med = {k: statistics.median(v) for k, v in ms.items()}
                ratio = med["embed"] / med["plain"]
                label = {"memory": ":memory:", "file": "WAL file"}[where]
                form_label = ("one autocommit statement" if form == "autocommit"
                              else "BEGIN; INSERT; COMMIT")
                verdict = "PASS" if ratio <= GOAL else "MISS"
                print(f"  {label:<9} {form_label:<25} embed "
                      f"{med['embed']:6.0f} [{min(ms['embed']):.0f}, "
                      f"{max(ms['embed']):.0f}]  plain {med['plain']:6.0f} "
                      f"[{min(ms['plain']):.0f}, {max(ms['plain']):.0f}]  "
                      f"{ratio:.2f}x  {verdict}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
