"""kill -9 during training: a process that trains in a loop on a file
database is SIGKILLed at random moments, many times, in WAL and
rollback-journal modes; after each kill the file must be intact and hold
exactly the committed steps.

    EMBED_EXT=$PWD/embed /usr/bin/python3 -m pytest -q tests/robust/test_crash.py
    EMBED_CRASH_KILLS=300 ... (per journal mode; the default is 12)

The child (CHILD below, a separate python3 process with the extension) opens
the file and runs steps from the last logged one on, forever; step i is one
of (chosen by i):

  txn    BEGIN IMMEDIATE; INSERT INTO log(step); embed_update on an SGD
         table, an Adam table and an SGD momentum table (batches with
         repeated ids; momentum also moves, and marks, the rows that have
         a buffer); COMMIT
  one    INSERT INTO log(step, n) VALUES (?, embed_update('a', ...)):
         one autocommit statement, atomic as a statement
  reset  BEGIN; INSERT INTO log; embed_optimizer_reset of a and m; COMMIT
  grow   BEGIN; INSERT INTO log; INSERT INTO s(id) (a new row); UPDATE
         s SET vector (an existing row); DELETE one; INSERT OR REPLACE
         of a row of m (its buffer and mark start afresh); COMMIT
  build  BEGIN; INSERT INTO log; build-index of s (an index=ivf table,
         searched in every txn step too); COMMIT

and prints the step number after its COMMIT returned. The parent kills it
after a random delay, then, with the extension on a new connection (which
rolls back a hot journal or recovers the WAL):

  - PRAGMA integrity_check is "ok";
  - every row of every embedding table is exactly dim finite float32;
  - the log is steps 1..M with no gap, M >= the last step the child
    reported committed (and M <= that + 1: a kill between COMMIT and the
    print);
  - every shadow table (vectors, optimizer state, step count, the index's
    cells) equals an in-memory replay of steps 1..M, and integrity-check
    of the indexed table and of the momentum table passes.

Then a new child continues from M + 1. The figure printed is the number of
kills survived.
"""
import os
import random
import signal
import sqlite3
import struct
import subprocess
import sys
import time

import pytest

from conftest import EXT, say


DIM = 8
ROWS = 64

# Shared by the child and the parent's replay: the schema and one step.
STEP_CODE = r'''
import random, struct, sqlite3

DIM, ROWS = 8, 64
SCHEMA = """
CREATE VIRTUAL TABLE s USING embedding(dim=8, num_embeddings=64, seed=11,
                                       index=ivf, nlist=4);
CREATE VIRTUAL TABLE a USING embedding(dim=8, num_embeddings=64, seed=12,
                                       optimizer=adam);
CREATE VIRTUAL TABLE m USING embedding(dim=8, num_embeddings=64, seed=13,
                                       optimizer=sgd, momentum=0.9);
CREATE TABLE log(step INTEGER PRIMARY KEY, n);
"""

def batch(step):
    rng = random.Random(step)
    ids = [rng.randrange(ROWS) for _ in range(6)] + [rng.randrange(4)]
    grads = struct.pack("<%df" % (len(ids) * DIM),
                        *[rng.uniform(-1, 1) for _ in range(len(ids) * DIM)])
    return "[" + ",".join(map(str, ids)) + "]", grads

def kind(step):
    if step % 13 == 0:
        return "reset"
    if step % 7 == 0:
        return "grow"
    if step % 11 == 0:
        return "build"
    return "one" if step % 3 == 0 else "txn"

def do_step(conn, step, in_txn=False):
    """Run step `step` (its own transaction unless in_txn)."""
    ids, grads = batch(step)
    k = kind(step)
    if k == "one":
        conn.execute("INSERT INTO log(step, n) VALUES (?, "
                     "embed_update('a', ?, ?, 0.01))", (step, ids, grads))
        return
    if not in_txn:
        conn.execute("BEGIN IMMEDIATE")
    conn.execute("INSERT INTO log(step, n) VALUES (?, 0)", (step,))
    if k == "txn":
        conn.execute("SELECT embed_update('s', ?, ?, 0.05)", (ids, grads))
        conn.execute("SELECT embed_update('a', ?, ?, 0.01)", (ids, grads))
        conn.execute("SELECT embed_update('m', ?, ?, 0.01)", (ids, grads))
        conn.execute("SELECT id FROM s WHERE vector MATCH embed_lookup('a', 1)"
                     " AND k = 3").fetchall()
    elif k == "reset":
        conn.execute("SELECT embed_optimizer_reset('a')")
        conn.execute("SELECT embed_optimizer_reset('m')")
    elif k == "build":
        conn.execute("INSERT INTO s(s) VALUES ('build-index')")
    else:  # grow
        conn.execute("INSERT INTO s(id) VALUES (?)", (1000 + step,))
        conn.execute("UPDATE s SET vector = embed_scale(vector, 0.5) "
                     "WHERE id = ?", (step % ROWS,))
        conn.execute("DELETE FROM s WHERE id = ?", (1000 + step - 14,))
        conn.execute("INSERT OR REPLACE INTO m(id) VALUES (?)", (step % ROWS,))
    if not in_txn:
        conn.execute("COMMIT")
'''

CHILD = STEP_CODE + r'''
import sys
ext, path, mode = sys.argv[1:4]
conn = sqlite3.connect(path, isolation_level=None, timeout=10)
conn.enable_load_extension(True)
conn.load_extension(ext)
conn.execute("PRAGMA journal_mode=" + mode)
conn.execute("PRAGMA synchronous=FULL")
if not conn.execute("SELECT count(*) FROM sqlite_schema WHERE name = 'log'"
                    ).fetchone()[0]:
    conn.execute("BEGIN")
    for stmt in SCHEMA.strip().split(";"):
        if stmt.strip():
            conn.execute(stmt)
    conn.execute("COMMIT")
    print(0, flush=True)
step = conn.execute("SELECT coalesce(max(step), 0) FROM log").fetchone()[0]
while True:
    step += 1
    do_step(conn, step)
    print(step, flush=True)
'''

ns = {}
exec(STEP_CODE, ns)
SCHEMA, do_step = ns["SCHEMA"], ns["do_step"]


def connect(path):
    conn = sqlite3.connect(path, isolation_level=None, timeout=10)
    conn.enable_load_extension(True)
    conn.load_extension(EXT)
    return conn


def dump(conn):
    """Every shadow table and the log, as comparable rows."""
    out = {}
    for t in ("s_vectors", "s_state", "s_cells", "a_vectors", "a_state",
              "m_vectors", "m_state", "log"):
        out[t] = conn.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall()
    out["a_step"] = conn.execute(
        "SELECT value FROM a_config WHERE key = 'step'").fetchall()
    return out


class Reference:
    """An in-memory database advanced by replaying steps."""

    def __init__(self):
        self.conn = connect(":memory:")
        for stmt in SCHEMA.strip().split(";"):
            if stmt.strip():
                self.conn.execute(stmt)
        self.step = 0

    def advance(self, to):
        self.conn.execute("BEGIN")
        while self.step < to:
            self.step += 1
            do_step(self.conn, self.step, in_txn=True)
        self.conn.execute("COMMIT")


def check(path, reported, ref):
    """Verify the file after a kill; returns the last step it holds."""
    conn = connect(path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        if not conn.execute("SELECT count(*) FROM sqlite_schema "
                            "WHERE name = 'log'").fetchone()[0]:
            assert reported < 0, "the schema was committed but is gone"
            return None
        for t in ("s", "a", "m"):
            for id_, vec in conn.execute(f"SELECT id, vector FROM {t}"):
                assert isinstance(vec, bytes) and len(vec) == 4 * DIM, \
                    f"{t} row {id_}: {vec!r}"
                vals = struct.unpack("<%df" % DIM, vec)
                assert all(v == v and abs(v) != float("inf") for v in vals), \
                    f"{t} row {id_} not finite: {vals}"
        steps = [r[0] for r in conn.execute("SELECT step FROM log ORDER BY 1")]
        last = steps[-1] if steps else 0
        assert steps == list(range(1, last + 1)), "a gap in the log"
        assert last >= reported, \
            f"step {reported} was committed but the file ends at {last}"
        assert last <= max(reported, 0) + 1, \
            f"the file holds step {last}, never committed (last {reported})"
        # the index (s is index=ivf) matches its rows
        conn.execute("INSERT INTO s(s) VALUES ('integrity-check')")
        conn.execute("INSERT INTO m(m) VALUES ('integrity-check')")
        ref.advance(last)
        got, want = dump(conn), dump(ref.conn)
        for t in want:
            assert got[t] == want[t], f"{t} differs from the replay of " \
                                      f"steps 1..{last}"
        return last
    finally:
        conn.close()


@pytest.mark.parametrize("mode", ["WAL", "DELETE"])
def test_kill_during_training(mode, tmp_path, request):
    kills = int(os.environ.get("EMBED_CRASH_KILLS", "12"))
    path = str(tmp_path / "train.db")
    rng = random.Random(f"crash-{mode}")
    ref = Reference()
    survived = 0
    steps_seen = 0
    for _ in range(kills):
        proc = subprocess.Popen([sys.executable, "-c", CHILD, EXT, path, mode],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        # let it start (the first line) so most kills land in training
        first = proc.stdout.readline()
        if not first:
            err = proc.stderr.read()
            proc.wait()
            pytest.fail(f"the child died before training: {err}")
        time.sleep(rng.uniform(0.0, 0.25))
        proc.send_signal(signal.SIGKILL)
        out, err = proc.communicate()
        assert proc.returncode == -signal.SIGKILL, \
            f"the child stopped on its own ({proc.returncode}): {err}"
        lines = [first] + out.splitlines()
        reported = max(int(x) for x in lines if x.strip())
        last = check(path, reported, ref)
        steps_seen = max(steps_seen, last or 0)
        survived += 1
    say(request, f"\ncrash: {mode}: {survived} kills survived, "
                 f"{steps_seen} steps committed")
