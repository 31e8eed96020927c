#!/usr/bin/python3
"""bench_train_mem.py - the CPU cost of a training step: the step command in a
`:memory:` database against torch's sparse nn.Embedding + optimizer on one
thread, per optimizer (issue 12's CPU goal: within 2.5x).

Run from the repository root after `make`:

    /usr/bin/python3 bench/bench_train_mem.py [--steps 20] [--warm 2]
        [--reps 5] [--form step|select] [--page-size BYTES]
        [--ext PATH [--ext PATH ...]]

What it measures:

  data     per optimizer (sgd, sgd with momentum=0.9, adagrad, adam =
           SparseAdam) a fresh table embedding(num_embeddings=100000,
           dim=128, seed=1, ...) in a `:memory:` database; torch starts from
           the same weights in nn.Embedding.from_pretrained(W, freeze=False,
           sparse=True) with torch.optim.SGD / Adagrad / SparseAdam, lr 0.01,
           torch.set_num_threads(1).
  batches  `warm` warm-up + steps batches of 1,024 ids drawn uniformly from
           0..99,999 (numpy default_rng(0); a few repeats per batch) with a
           1,024 x 128 float32 gradient; the same batches on both sides.
  embed    one repetition = `steps` x the step command INSERT INTO
           t(t, id, vector, lr) VALUES ('step', :ids_json, :grads_blob,
           0.01) (with --form select: SELECT embed_update('t', :ids_json,
           :grads_blob, 0.01), the same step), all in one transaction
           (BEGIN before the warm-up, COMMIT after).
  torch    one repetition = `steps` x (zero_grad; (emb(ids) * G).sum()
           .backward(); opt.step()).

Each repetition runs in a fresh child process per extension (so two builds
of the extension, given as several --ext, never share a process), the
extensions and torch measured alternately in the same run. Figures are CPU
time (process time) per batch row, 1,024 x steps rows per repetition:
median and [min, max] over the repetitions, and the ratio of the medians.
With momentum both sides also move every row that has a momentum buffer
(embed: the lazy row-wise update plus those rows; torch: its sparse
buffer), so its per-row figure grows with the steps taken.

The SQLite floor (bench/train_floor.c, compiled here against the system
SQLite): the same number of rows per step moved through one sqlite3_blob
handle in a `:memory:` database, one transaction: seek, read, one add,
write back in place, each row holding the weight and then the optimizer's
state, as embed stores adagrad's and adam's (D floats, 2D; none for sgd;
not run for momentum).
It is what any in-place write through SQLite's public API costs, most of
it the first write of each page in the transaction copying the page to
the rollback journal; embed is printed against it too.

The journal copy is paid once per page and transaction, so the longer a
transaction, the less of it each step carries: bench_train.py also runs
`--warm 300 --steps 100 --only sgd adagrad adam` (100 steps timed after
300 in the same transaction, by which time every page has been journaled
and most rows of adagrad and adam have a state row), the steady state of
a long training transaction. Momentum is left out there: each of its
steps moves every row with a buffer, most of the table by then.
"""
import argparse
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import time

from common import SELECT_STEP_SQL, STEP_SQL, training_batches

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_EXT = os.environ.get("EMBED_EXT") or os.path.join(ROOT, "embed")
N_ROWS, DIM, BATCH, LR = 100_000, 128, 1024, 0.01
OPTIMIZERS = {
    "sgd": ("optimizer=sgd", "SGD", {}),
    "momentum": ("optimizer=sgd, momentum=0.9", "SGD", {"momentum": 0.9}),
    "adagrad": ("optimizer=adagrad", "Adagrad", {}),
    "adam": ("optimizer=adam", "SparseAdam", {}),
}
# floats of optimizer state per row (core/optimizer.c), for the floor;
# momentum has none: its steps also move every row with a buffer
FLOOR_STATE = {"sgd": 0, "adagrad": DIM, "adam": 2 * DIM}
# train_floor's IN_RECORD: where the state is, as embed keeps it (1: after
# the weight in the row's BLOB, layout 3)
FLOOR_IN_RECORD = {"sgd": 0, "adagrad": 1, "adam": 1}
FLOOR_SRC = os.path.join(ROOT, "bench", "train_floor.c")
FLOOR_BIN = os.path.join(ROOT, "build", "bench-data", "train_floor")


def build_floor():
    """Compile bench/train_floor.c against the system SQLite (the one
    Python's sqlite3 module uses here); None when that fails."""
    os.makedirs(os.path.dirname(FLOOR_BIN), exist_ok=True)
    cmd = [os.environ.get("CC", "cc"), "-O2", "-o", FLOOR_BIN, FLOOR_SRC,
           "-lsqlite3"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        print(f"  floor: {' '.join(cmd)} failed:\n{r.stderr}", flush=True)
        return None
    return FLOOR_BIN


def child(ext, name, steps, warm, sql=STEP_SQL, page_size=None):
    """One repetition of one optimizer: CPU seconds of embed or torch."""
    option, opt_name, kwargs = OPTIMIZERS[name]
    if ext == "floor":
        out = subprocess.run(
            [FLOOR_BIN, str(N_ROWS), str(DIM), str(steps), str(BATCH),
             str(FLOOR_STATE[name]), ":memory:", "0", str(warm),
             str(FLOOR_IN_RECORD[name])]
            + (["1", str(page_size)] if page_size else []),
            check=True, capture_output=True,
            text=True).stdout
        return float(out.split()[1]) * 1e-6 * BATCH * steps
    bs = training_batches(warm + steps, N_ROWS, BATCH, DIM)
    if ext == "torch":
        import numpy as np
        import torch
        torch.set_num_threads(1)
        rng = np.random.default_rng(1)
        W = torch.tensor(rng.standard_normal((N_ROWS, DIM), dtype=np.float32))
        emb = torch.nn.Embedding.from_pretrained(W, freeze=False, sparse=True)
        opt = getattr(torch.optim, opt_name)(emb.parameters(), lr=LR, **kwargs)
        items = [(torch.from_numpy(i), torch.from_numpy(g)) for i, g in bs]

        def run(part):
            for ids, G in part:
                opt.zero_grad()
                (emb(ids) * G).sum().backward()
                opt.step()
    else:
        conn = sqlite3.connect(":memory:", isolation_level=None)
        conn.enable_load_extension(True)
        conn.load_extension(ext)
        if page_size:
            conn.execute(f"PRAGMA page_size={int(page_size)}")
        conn.execute(f"CREATE VIRTUAL TABLE t USING embedding("
                     f"num_embeddings={N_ROWS}, dim={DIM}, seed=1, {option})")
        items = [(json.dumps(i.tolist()), g.tobytes(), LR) for i, g in bs]
        conn.execute("BEGIN")

        def run(part):
            for a in part:
                conn.execute(sql, a).fetchall()
    run(items[:warm])
    c0 = time.process_time()
    run(items[warm:])
    return time.process_time() - c0


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warm", type=int, default=2,
                    help="warm-up steps before the timed ones, in the same "
                         "transaction")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--ext", action="append",
                    help="extension to load (repeatable); default ./embed")
    ap.add_argument("--only", action="append", choices=list(OPTIMIZERS))
    ap.add_argument("--form", choices=("step", "select"), default="step",
                    help="embed's statement: the step command (default) or "
                         "SELECT embed_update(...)")
    ap.add_argument("--page-size", type=int, metavar="BYTES",
                    help="PRAGMA page_size of embed's and the floor's "
                         "databases (default SQLite's, 4096)")
    ap.add_argument("--child", nargs=2, metavar=("EXT", "OPTIMIZER"),
                    help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        sql = STEP_SQL if args.form == "step" else SELECT_STEP_SQL
        print(json.dumps(child(args.child[0], args.child[1], args.steps,
                               args.warm, sql, args.page_size)))
        return 0
    exts = args.ext or [DEFAULT_EXT]
    names = args.only or list(OPTIMIZERS)
    floor = build_floor()
    rows = BATCH * args.steps
    print(f"bench_train_mem: :memory:, {N_ROWS:,} rows x {DIM} dims, "
          f"{args.reps} reps x {args.steps} steps of {BATCH:,} ids after "
          f"{args.warm} warm-up steps in the same transaction, embed by "
          f"{'the step command' if args.form == 'step' else 'SELECT embed_update'}"
          f"{f', page_size {args.page_size}' if args.page_size else ''}; SQLite "
          f"{sqlite3.sqlite_version}; CPU us per batch row, median [min, max]")
    width = max(len(s) for s in exts + ["SQLite floor"]) + 2
    for name in names:
        sides = exts + ["torch"] + (["floor"] if floor and
                                     name in FLOOR_STATE else [])
        us = {s: [] for s in sides}
        for _ in range(args.reps):
            for s in sides:
                out = subprocess.run(
                    [sys.executable, os.path.abspath(__file__), "--steps",
                     str(args.steps), "--warm", str(args.warm), "--form",
                     args.form, "--child", s, name]
                    + (["--page-size", str(args.page_size)]
                       if args.page_size else []),
                    check=True, capture_output=True, text=True).stdout
                us[s].append(json.loads(out) * 1e6 / rows)
        med_t = statistics.median(us["torch"])
        print(f"{name}:")
        for s in sides:
            med = statistics.median(us[s])
            ratio = "" if s == "torch" else f"  {med / med_t:.2f}x torch"
            if s in exts and "floor" in us:
                ratio += (f", {med / statistics.median(us['floor']):.2f}x "
                          f"the floor")
            label = "SQLite floor" if s == "floor" else s
            print(f"  {label:<{width}}{med:7.2f} us/row [{min(us[s]):.2f}, "
                  f"{max(us[s]):.2f}]{ratio}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
