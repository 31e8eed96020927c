"""Backup and read replicas with Litestream (make test-litestream).

Litestream 0.3.13 (the static binary of the npm package
@flydotio/litestream-linux-x64@1.0.1, installed into build/litestream by
tests/install-deps.sh) replicates a WAL database holding an `embedding`
table to a file:// replica while a process trains it, one transaction per
step. Then:

- a restore taken while the training still runs is a committed state: its
  rows are, bit for bit, those of a replay of the steps it has (its log
  table says how many), and it answers searches as the replay does;
- after the last step, a restore has the source's rows, optimizer state,
  step count and search results exactly, passes PRAGMA integrity_check,
  takes another training step, and passes the table's own
  `INSERT INTO t(t) VALUES('integrity-check')` where this build has that
  command (skipped, and said, where it does not).

Page-level replication copies the shadow tables like any other table, so
nothing about the extension is special here: any SQLite that loads embed
reads the replica.

Not named test_*.py, so that make test-python does not collect it; the
Makefile passes this file to pytest by name. EMBED_LITESTREAM is the
litestream binary.
"""
import os
import signal
import subprocess
import time

import numpy as np
import pytest

from conftest import connect, say

LITESTREAM = os.environ.get("EMBED_LITESTREAM", "")
N, DIM, BATCH, LR = 2000, 32, 64, 0.05
CREATE = (f"CREATE VIRTUAL TABLE t USING embedding(num_embeddings={N}, "
          f"dim={DIM}, seed=20261201, optimizer=adam)")
QUERIES = np.random.default_rng(7).standard_normal((5, DIM)).astype(np.float32)

pytestmark = pytest.mark.skipif(not os.access(LITESTREAM, os.X_OK),
                                reason="no litestream binary (EMBED_LITESTREAM)")


def setup_schema(con):
    con.execute(CREATE)
    con.execute("CREATE TABLE log(step INTEGER PRIMARY KEY, rows INTEGER)")


def step(con, k):
    """Training step k (1, 2, ...): one transaction with a batch update, on
    every 10th step a new row and a deleted one, and the log row; the data
    depends on k only, so a replay gives the same bits."""
    rng = np.random.default_rng(k)
    ids = rng.integers(N // 2, N, BATCH)  # the deleted ids are below N // 2
    grads = rng.standard_normal((BATCH, DIM)).astype(np.float32)
    con.execute("BEGIN IMMEDIATE")
    con.execute("SELECT embed_update('t', ?, ?, ?)",
                (str(ids.tolist()), grads.tobytes(), LR)).fetchall()
    if k % 10 == 0:
        con.execute("INSERT INTO t(id) VALUES (?)", (N + k,))
        con.execute("DELETE FROM t WHERE id = ?", (k // 10,))
    con.execute("INSERT INTO log VALUES (?, (SELECT count(*) FROM t_vectors))",
                (k,))
    con.execute("COMMIT")


def state(con):
    """Everything training touched: rows, optimizer state, step count."""
    return (con.execute("SELECT id, vector FROM t_vectors ORDER BY id").fetchall(),
            con.execute("SELECT id, state FROM t_state ORDER BY id").fetchall(),
            con.execute("SELECT value FROM t_config WHERE key = 'step'").fetchall(),
            con.execute("SELECT * FROM log ORDER BY step").fetchall())


def searches(con):
    return [con.execute("SELECT id, distance FROM t WHERE vector MATCH ? AND k = 10",
                        (q.tobytes(),)).fetchall() for q in QUERIES]


def replay(steps):
    con = connect()
    setup_schema(con)
    for k in range(1, steps + 1):
        step(con, k)
    return con


def restore(replica, out):
    if os.path.exists(out):
        os.remove(out)
    started = time.monotonic()
    run = subprocess.run([LITESTREAM, "restore", "-o", out, f"file://{replica}"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    return time.monotonic() - started


def restore_step(replica, out, want_step, timeout=30):
    """Restore the replica into `out` until the copy holds step
    `want_step`: (the copy's connection, seconds of the last restore)."""
    deadline = time.monotonic() + timeout
    while True:
        seconds = restore(replica, out)
        got = connect(out)
        if got.execute("SELECT max(step) FROM log").fetchone()[0] == want_step:
            return got, seconds
        got.close()
        assert time.monotonic() < deadline, "the replica did not catch up"
        time.sleep(0.2)


def stopped_cleanly(returncode, out):
    """Litestream exited from SIGTERM without an error, or with only the
    race of 0.3.13's shutdown against its own sync of a last write (both
    write one WAL segment's temporary file; the loser fails to stat it and
    the process exits 1), which is Litestream's and changes no replica
    already restored."""
    if returncode in (0, -signal.SIGTERM):
        return True
    parts = out.split('msg="signal received', 1)
    errors = [line for line in parts[-1].splitlines() if "level=ERROR" in line]
    return (returncode == 1 and len(parts) == 2 and bool(errors) and
            all(".tmp: no such file or directory" in e for e in errors))


def table_integrity_check(con):
    """The table's own check, where this build has it; None when not."""
    try:
        con.execute("INSERT INTO t(t) VALUES('integrity-check')")
    except Exception as e:  # noqa: BLE001 - the message tells which
        if "has no column named t" in str(e):
            return None
        raise
    return True


def test_replicate_while_training_restore_and_compare(tmp_path, request):
    db_path = str(tmp_path / "live.db")
    replica = str(tmp_path / "replica")
    con = connect(db_path)
    con.execute("PRAGMA journal_mode=WAL")
    setup_schema(con)
    config = tmp_path / "litestream.yml"
    config.write_text(
        "dbs:\n"
        f"  - path: {db_path}\n"
        "    monitor-interval: 50ms\n"
        "    replicas:\n"
        f"      - url: file://{replica}\n"
        "        sync-interval: 100ms\n")
    server = subprocess.Popen([LITESTREAM, "replicate", "-config", str(config)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True)
    try:
        started = time.monotonic()
        steps, mid = 0, None
        # train for about 4 seconds; halfway, restore while it goes on
        while time.monotonic() - started < 4.0:
            steps += 1
            step(con, steps)
            if mid is None and time.monotonic() - started > 2.0:
                time.sleep(0.5)  # let a sync or two reach the replica
                mid_path = str(tmp_path / "mid.db")
                mid_restore = restore(replica, mid_path)
                mid = connect(mid_path)
        train_s = time.monotonic() - started
        assert steps // 10 < N // 2
        # the mid-run restore is a committed state: a replay of its steps
        mid_steps = mid.execute("SELECT max(step) FROM log").fetchone()[0]
        assert mid_steps and 0 < mid_steps < steps
        ref = replay(mid_steps)
        assert state(mid) == state(ref)
        assert searches(mid) == searches(ref)
        assert mid.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        # after the last step: wait until the replica has it
        want, want_search = state(con), searches(con)
        lag = time.monotonic()
        got, final_restore = restore_step(replica, str(tmp_path / "restored.db"),
                                          steps)
        lag = time.monotonic() - lag
        assert state(got) == want
        assert searches(got) == want_search
        assert got.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        checked = table_integrity_check(got)
        # the restored copy trains on, as the source does
        step(got, steps + 1)
        step(con, steps + 1)
        assert state(got) == state(con)
        # stopped while it syncs a write, Litestream can race its own final
        # sync (stopped_cleanly): stop it once the replica holds the last
        # step
        restore_step(replica, str(tmp_path / "last.db"), steps + 1)[0].close()
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            out, _ = server.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            out, _ = server.communicate()
    assert stopped_cleanly(server.returncode, out), out
    size = os.path.getsize(db_path)
    say(request, f"test-litestream: {steps} training steps ({BATCH} ids x {DIM}, "
                 f"adam, {N} rows, {size // 1024} KiB) in {train_s:.1f} s while "
                 f"replicating; a restore mid-run had {mid_steps} steps, equal to "
                 f"their replay bit for bit ({mid_restore:.2f} s); the final "
                 f"restore matched rows, state and {len(QUERIES)} searches "
                 f"{lag:.2f} s after the last step ({final_restore:.2f} s); "
                 "integrity_check ok; table integrity-check "
                 + ("clean" if checked else "not in this build (skipped)"))
