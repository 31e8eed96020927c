#!/usr/bin/python3
"""bench_train.py - training steps per second: the step command in SQLite
against torch's sparse nn.Embedding + optimizer, per optimizer.

Run from the repository root after `make`:

    /usr/bin/python3 bench/bench_train.py [--steps 25] [--reps 3]
                                          [--torch-threads 1]
                                          [--checkpoint-every K]
                                          [--page-size BYTES]

What it measures, in one run (the file part about 20 s on 2 cores; the
in-memory and bulk-insert parts that follow take a few minutes more):

  data     for each optimizer (sgd, sgd with momentum 0.9, adagrad, adam
           = SparseAdam) a fresh
           table embedding(num_embeddings=100000, dim=128, optimizer=...) in
           one file database, bench/.data/train.db (git-ignored, re-created
           every run); torch starts from the same weights (read back from
           the table) in nn.Embedding.from_pretrained(W, freeze=False,
           sparse=True) with torch.optim.SGD / Adagrad / SparseAdam
           (momentum: each step also moves every row that has a buffer,
           in both, so its cost per batch row grows with the steps).
  batches  2 warm-up + reps * steps batches, each 1,024 ids drawn uniformly
           from 0..99,999 (numpy default_rng(0); a few repeats per batch) and
           a 1,024 x 128 float32 gradient; the same batches, in the same
           order, on both sides; lr 0.01.
  embed    one repetition = BEGIN; `steps` x the step command
           INSERT INTO t(t, id, vector, lr) VALUES ('step', :ids_json,
           :grads_blob, 0.01) (what embed_update does); COMMIT;
           PRAGMA wal_checkpoint(PASSIVE) (WAL, synchronous=NORMAL, the
           issue-12 setting: COMMIT every 25 steps, and the checkpoint that
           SQLite's autocheckpoint would run after it, both timed). The ids
           JSON and gradient BLOB are prepared before timing, as a caller
           holding numpy arrays would.
  torch    one repetition = `steps` x (zero_grad; (emb(ids) * G).sum()
           .backward(); opt.step()), with ids and G already tensors, on
           --torch-threads threads (default 1: SQLite runs on one thread,
           and torch's own default here is 1 too; with 2 threads on this
           2-core machine, shared with other work, OpenMP's threads wait on
           each other and torch got 10-80x slower, so a multi-threaded figure
           says more about the machine's load than about torch).

With --checkpoint-every K (K > 1) the connection sets
PRAGMA wal_autocheckpoint=0 and a repetition is K transactions of `steps`
steps followed by one PRAGMA wal_checkpoint(PASSIVE), all timed: a page
written by several of the K transactions is copied to the database once.
The WAL then grows to about K transactions' pages (here some 50 MB each).
The floor runs with the same cadence.

Every figure is the median of `reps` repetitions (embed and torch
alternate, so drift hits both alike), after two warm-up steps each. The
share of embed's time spent in COMMIT and checkpoint (writing the dirty
pages, 1,024 rows of 512 bytes per step plus the optimizer state, to the
WAL and then to the database) and the WAL bytes written per batch row
(frames the checkpoint found x (page size + 24) / (1,024 x steps)) are
printed per optimizer. Both
wall-clock and process CPU time are measured; the table prints steps/s and
rows/s (1,024 x steps per second) by wall clock and the ratio embed/torch
of throughputs (< 1: embed is slower) by wall clock and, in brackets, by
CPU time (the machine may be shared: when the two ratios disagree, the CPU
one is the better estimate). SQLite's page cache holds the whole table
(cache_size=-400000, 400 MB), so the figures are CPU cost, not I/O.

At the end, the rows of the last batch are compared between the table and
torch (they took the same 2 + reps * steps steps): the max relative
difference is printed and must be below 1e-5 (float32 roundings of repeated
ids' gradient sums; tests/py/test_oracle.py checks the math to 1e-6).

After the table, the SQLite floor on disk (bench/train_floor.c, see
bench_train_mem.py): the same number of rows per step written in place
through one sqlite3_blob handle (the state in the row's BLOB, as embed
keeps adagrad's and adam's) in a WAL file with the same settings and
the same COMMIT + checkpoint every `steps` steps, wall clock per row,
against torch and embed (not for momentum, whose step also moves the
rows outside the batch).

Then bench_train_mem.py runs (unless --no-memory): the same comparison in a
`:memory:` database, one transaction, CPU time per batch row, for sgd, sgd
with momentum, adagrad and adam (see its docstring), once more for the
steady state of a long transaction (100 steps timed after 300), once more
for a whole transaction of 20 steps timed from its first (no warm-up
steps: the journal copies of every page the transaction touches are
timed, and so is torch's first step, which allocates its state), and
bench_insert.py (unless --no-insert): bulk INSERT ... SELECT against an
ordinary table, in memory and in a WAL file (see its docstring).
"""
import argparse
import functools
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import STEP_SQL, cpu_model, training_batches  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA_DIR = os.path.join(ROOT, "bench", ".data")
DB_PATH = os.path.join(DATA_DIR, "train.db")
EXT = os.environ.get("EMBED_EXT") or os.path.join(ROOT, "embed")

N_ROWS, DIM, BATCH, LR = 100_000, 128, 1024, 0.01
OPTIMIZERS = [
    ("sgd", "optimizer=sgd", torch.optim.SGD),
    # each step also moves every row with a buffer, here and in torch
    ("momentum", "optimizer=sgd, momentum=0.9",
     functools.partial(torch.optim.SGD, momentum=0.9)),
    ("adagrad", "optimizer=adagrad", torch.optim.Adagrad),
    ("adam", "optimizer=adam", torch.optim.SparseAdam),
]


def fresh_db(page_size=None):
    os.makedirs(DATA_DIR, exist_ok=True)
    for suffix in ("", "-wal", "-shm", "-journal"):
        try:
            os.remove(DB_PATH + suffix)
        except FileNotFoundError:
            pass
    conn = sqlite3.connect(DB_PATH, isolation_level=None)
    conn.enable_load_extension(True)
    conn.load_extension(EXT)
    if page_size:  # before the file has a page, so that it takes
        conn.execute(f"PRAGMA page_size={int(page_size)}")
    assert conn.execute("PRAGMA journal_mode=WAL").fetchone()[0] == "wal"
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA cache_size=-400000")
    return conn


def make_batches(n):
    return [{"json": json.dumps(ids.tolist()), "blob": G.tobytes(),
             "ids": torch.from_numpy(ids), "G": torch.from_numpy(G)}
            for ids, G in training_batches(n, N_ROWS, BATCH, DIM)]


def clock(fn):
    c0, t0 = time.process_time(), time.perf_counter()
    fn()
    return time.perf_counter() - t0, time.process_time() - c0


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=25, help="steps per repetition")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--torch-threads", type=int, default=1)
    ap.add_argument("--checkpoint-every", type=int, default=1, metavar="K",
                    help="commits per checkpoint (default 1, SQLite's "
                         "autocheckpoint after each; K > 1 sets "
                         "wal_autocheckpoint=0 and checkpoints every K "
                         "commits, a repetition then being K commits)")
    ap.add_argument("--page-size", type=int, metavar="BYTES",
                    help="PRAGMA page_size of the new databases, embed's and "
                         "the floor's, here and in memory (default SQLite's, "
                         "4096)")
    ap.add_argument("--no-memory", action="store_true",
                    help="skip bench_train_mem.py's in-memory figures")
    ap.add_argument("--no-insert", action="store_true",
                    help="skip bench_insert.py's bulk-insert figures")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.torch_threads)
    print(f"bench_train: {N_ROWS:,} rows x {DIM} dims, batches of {BATCH:,} "
          f"ids, {args.reps} x {args.steps} steps per optimizer")
    print(f"cpu: {cpu_model()}, {os.cpu_count()} cores; SQLite "
          f"{sqlite3.sqlite_version}, torch {torch.__version__} "
          f"({torch.get_num_threads()} thread(s)), file {DB_PATH}")
    if args.page_size:
        print(f"page_size: {args.page_size}")
    every = max(1, args.checkpoint_every)
    per_rep = args.steps * every  # steps of one repetition
    batches = make_batches(2 + args.reps * per_rep)
    conn = fresh_db(args.page_size)
    if every > 1:
        conn.execute("PRAGMA wal_autocheckpoint=0")
        print(f"checkpoint: PRAGMA wal_checkpoint(PASSIVE) every {every} "
              f"commits (wal_autocheckpoint=0); a repetition is {every} x "
              f"{args.steps} steps")
    results = []
    for name, option, opt_class in OPTIMIZERS:
        t0 = time.perf_counter()
        conn.execute(f"CREATE VIRTUAL TABLE t USING embedding("
                     f"num_embeddings={N_ROWS}, dim={DIM}, seed=1, {option})")
        create_s = time.perf_counter() - t0
        W = np.frombuffer(b"".join(v for (v,) in conn.execute(
            "SELECT vector FROM t")), dtype=np.float32).reshape(N_ROWS, DIM)
        emb = torch.nn.Embedding.from_pretrained(torch.tensor(W), freeze=False,
                                                 sparse=True)
        opt = opt_class(emb.parameters(), lr=LR)

        commit_s, wal_bytes = [], []
        page = conn.execute("PRAGMA page_size").fetchone()[0]

        def embed_steps(bs):
            """Transactions of args.steps steps, then one checkpoint."""
            spent = 0.0
            for at in range(0, len(bs), args.steps):
                conn.execute("BEGIN")
                for b in bs[at:at + args.steps]:
                    conn.execute(STEP_SQL, (b["json"], b["blob"], LR))
                t0 = time.perf_counter()
                conn.execute("COMMIT")
                spent += time.perf_counter() - t0
            t0 = time.perf_counter()
            frames = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1]
            commit_s.append(spent + time.perf_counter() - t0)
            wal_bytes.append(frames * (page + 24) / (BATCH * len(bs)))

        def torch_steps(bs):
            for b in bs:
                opt.zero_grad()
                (emb(b["ids"]) * b["G"]).sum().backward()
                opt.step()

        # warm-up: one step each (first statement preparation, allocations)
        embed_steps(batches[0:1])
        torch_steps(batches[0:1])
        embed_steps(batches[1:2])
        torch_steps(batches[1:2])
        times = {"embed": [], "torch": []}
        for r in range(args.reps):
            bs = batches[2 + r * per_rep: 2 + (r + 1) * per_rep]
            times["embed"].append(clock(lambda: embed_steps(bs)))
            times["torch"].append(clock(lambda: torch_steps(bs)))

        last = batches[-1]["ids"].unique().tolist()
        got = np.stack([np.frombuffer(conn.execute(
            "SELECT vector FROM t WHERE id = ?", (i,)).fetchone()[0], np.float32)
            for i in last])
        want = emb.weight.detach().numpy()[last]
        diff = float((np.abs(got - want) / (1 + np.abs(want))).max())
        med = {k: (statistics.median(w for w, _ in v),
                   statistics.median(c for _, c in v)) for k, v in times.items()}
        results.append((name, create_s, med, diff))
        commit_share = statistics.median(commit_s[2:]) / med["embed"][0]
        print(f"  {name}: CREATE {create_s:.2f} s; COMMIT + checkpoint "
              f"{commit_share:.0%} of embed's time, WAL "
              f"{statistics.median(wal_bytes[2:]):,.0f} bytes per batch row; "
              f"max rel. diff vs torch over the last batch's rows {diff:.1e}",
              flush=True)
        conn.execute("DROP TABLE t")
    conn.close()

    steps = per_rep
    print()
    print(f"{'optimizer':<11}{'embed steps/s':>14}{'rows/s':>11}"
          f"{'torch steps/s':>15}{'rows/s':>12}{'embed/torch':>16}"
          f"{'torch/embed':>13}")
    for name, _, med, _ in results:
        sps = {k: steps / med[k][0] for k in med}
        wall_ratio = med["torch"][0] / med["embed"][0]
        cpu_ratio = med["torch"][1] / med["embed"][1]
        print(f"{name:<11}{sps['embed']:>14,.1f}{sps['embed'] * BATCH:>11,.0f}"
              f"{sps['torch']:>15,.1f}{sps['torch'] * BATCH:>12,.0f}"
              f"{f'{wall_ratio:.3f} ({cpu_ratio:.3f})':>16}"
              f"{f'{1 / wall_ratio:.1f}x':>13}")
    print(f"\nsteps of {BATCH:,} ids x {DIM} dims; rows/s = {BATCH:,} x steps/s "
          f"(wall clock); embed/torch = throughput ratio, wall clock (CPU time); "
          f"torch/embed = how many times slower embed is (wall clock)")
    import bench_train_mem  # the floor program and the state sizes
    floor = bench_train_mem.build_floor()
    for name, _, med, _ in results:
        if not floor:
            break
        if name not in bench_train_mem.FLOOR_STATE:  # momentum: none
            continue
        # SQLite's own cost of the same writes, same file settings and
        # COMMIT + checkpoint cadence (bench/train_floor.c)
        walls = []
        for _ in range(args.reps):
            out = subprocess.run(
                [floor, str(N_ROWS), str(DIM), str(args.reps * per_rep),
                 str(BATCH), str(bench_train_mem.FLOOR_STATE[name]),
                 DB_PATH + ".floor", str(args.steps), "2",
                 str(bench_train_mem.FLOOR_IN_RECORD[name]), str(every)]
                + ([str(args.page_size)] if args.page_size else []),
                check=True, capture_output=True, text=True).stdout.split()
            walls.append(float(out[2]))
        floor_us = statistics.median(walls)
        torch_us = med["torch"][0] * 1e6 / (BATCH * per_rep)
        embed_us = med["embed"][0] * 1e6 / (BATCH * per_rep)
        print(f"  SQLite floor, {name}: {floor_us:.2f} us/row [{min(walls):.2f},"
              f" {max(walls):.2f}] = {floor_us / torch_us:.1f}x torch; embed "
              f"{embed_us:.2f} us/row = {embed_us / floor_us:.2f}x the floor",
              flush=True)
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(DB_PATH + ".floor" + suffix):
            os.remove(DB_PATH + ".floor" + suffix)
    bad = [name for name, _, _, diff in results if not diff < 1e-5]
    if bad:
        print(f"FAIL: embed and torch weights differ for {', '.join(bad)}")
        return 1
    rc = 0
    if not args.no_memory:  # the CPU cost in memory (issue 12's 2.5x goal)
        print()
        import bench_train_mem
        page = ["--page-size", str(args.page_size)] if args.page_size else []
        rc = bench_train_mem.main(["--reps", str(max(args.reps, 3)),
                                   "--ext", EXT] + page)
        print()  # the same in a long transaction's steady state
        rc = bench_train_mem.main(
            ["--reps", "3", "--warm", "300", "--steps", "100", "--ext", EXT,
             "--only", "sgd", "--only", "adagrad", "--only", "adam"]
            + page) or rc
        print()  # a whole 20-step transaction, its journal copies included
        rc = bench_train_mem.main(
            ["--reps", "3", "--warm", "0", "--ext", EXT, "--only", "sgd",
             "--only", "adagrad", "--only", "adam"] + page) or rc
    if not args.no_insert:  # bulk insert against an ordinary table (1.2x)
        print()
        import bench_insert
        rc = bench_insert.main([]) or rc
    return rc


if __name__ == "__main__":
    sys.exit(main())
