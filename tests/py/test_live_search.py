"""Search while the table changes (README "Search while the table changes"):
every search sees exactly the rows its own transaction sees, with the
shared in-memory copy brought up to date by the change log.

    EMBED_EXT=$PWD/embed /usr/bin/python3 -m pytest -q tests/py/test_live_search.py

The randomised test interleaves writes of every kind (INSERT, UPDATE,
DELETE, id moves, single and batch embed_update, a statement that fails
half way), transactions, savepoints, ROLLBACK and ROLLBACK TO on three
connections of one process (so they share one copy), plus, in WAL mode, a
reader holding an old read transaction. After every step each connection
searches, and the answer is compared with a float64 brute-force ranking of
the rows that connection's transaction sees, read from the table's
vectors shadow table on the same connection.
"""
import os
import random
import sqlite3
import subprocess
import sys

import numpy as np
import pytest

from conftest import EXT, to_blob, from_blob

DIM = 8


def open_conn(path):
    conn = sqlite3.connect(path, isolation_level=None, timeout=0,
                           check_same_thread=False)
    conn.enable_load_extension(True)
    conn.load_extension(EXT)
    return conn


def visible_rows(conn):
    """{id: float32 vector} of what conn's transaction sees."""
    return {i: from_blob(v) for i, v in
            conn.execute("SELECT id, vector FROM tok_vectors")}


def brute(rows, q, k, allowed=None):
    """Ascending (distance, id) of the k nearest rows (l2), float64."""
    q = q.astype(np.float64)
    scored = sorted((float(np.linalg.norm(v.astype(np.float64) - q)), i)
                    for i, v in rows.items()
                    if allowed is None or i in allowed)
    return scored[:k]


def check_search(conn, rng, what, dim=DIM, extra=""):
    rows = visible_rows(conn)
    q = rng.standard_normal(dim).astype(np.float32)
    k = int(rng.integers(1, 12))
    choice = rng.integers(0, 3)
    if choice == 0 or not rows:
        allowed, sql, args = None, "", ()
    elif choice == 1:
        pick = rng.choice(sorted(rows) + [10**6], size=min(6, len(rows) + 1),
                          replace=False)
        allowed = {int(x) for x in pick}
        sql = " AND id IN (%s)" % ",".join(str(int(x)) for x in pick)
        args = ()
    else:
        lo = int(rng.integers(0, 400))
        allowed = {i for i in rows if i >= lo}
        sql, args = " AND id >= ?", (lo,)
    got = conn.execute(
        "SELECT id, distance FROM tok WHERE vector MATCH ? AND k = ?" + sql
        + extra,
        (to_blob(q), k) + args).fetchall()
    want = brute(rows, q, k, allowed)
    assert len(got) == len(want), f"{what}: {len(got)} rows, want {len(want)}"
    for (gid, gd), (wd, wid) in zip(got, want):
        # every distance is that row's exact distance in what conn sees
        assert gid in rows, f"{what}: id {gid} is not visible"
        exact = float(np.linalg.norm(rows[gid].astype(np.float64) - q))
        assert abs(gd - exact) <= 1e-6 * max(1.0, exact), \
            f"{what}: id {gid} distance {gd}, its row gives {exact}"
        assert abs(gd - wd) <= 1e-6 * max(1.0, wd), \
            f"{what}: got {got}, want {want}"


# An index=ivf table whose searches probe every cell and re-rank every
# candidate: its answers must equal the brute force exactly, so any row
# missing from the index, listed twice or stale shows.
IVF_OPTIONS = ", index=ivf, nlist=6, oversample=1000"
IVF_SEARCH = " AND nprobe = 1000"


def run_interleaving(path, journal, steps, seed, indexed=False):
    rng = np.random.default_rng(seed)
    pyr = random.Random(seed)
    setup = open_conn(path)
    setup.execute(f"PRAGMA journal_mode={journal}")
    setup.execute(f"CREATE VIRTUAL TABLE tok USING embedding(dim={DIM}, "
                  "num_embeddings=300, metric=l2, seed=7"
                  + (IVF_OPTIONS if indexed else "") + ")")
    if indexed:
        setup.execute("INSERT INTO tok(tok) VALUES ('build-index')")
    setup.close()
    extra = IVF_SEARCH if indexed else ""
    conns = [open_conn(path) for _ in range(3)]
    names = ["A", "B", "C"]
    state = {n: {"txn": False, "savepoints": 0} for n in names}
    next_id = [1000]
    done = {"writes": 0, "busy": 0, "searches": 0}

    def some_ids(conn, n):
        ids = [r[0] for r in conn.execute(
            "SELECT id FROM tok_vectors ORDER BY random() LIMIT ?", (n,))]
        return ids

    def vec():
        return to_blob(rng.standard_normal(DIM).astype(np.float32))

    def write(conn):
        op = pyr.randrange(9 if indexed else 8)
        if op == 8:
            conn.execute("INSERT INTO tok(tok) VALUES ('build-index')")
        elif op == 0:
            next_id[0] += 1
            conn.execute("INSERT INTO tok(id, vector) VALUES (?, ?)",
                         (next_id[0], vec()))
        elif op == 1:
            for i in some_ids(conn, 3):
                conn.execute("UPDATE tok SET vector = ? WHERE id = ?", (vec(), i))
        elif op == 2:
            for i in some_ids(conn, 2):
                conn.execute("DELETE FROM tok WHERE id = ?", (i,))
        elif op == 3:
            ids = some_ids(conn, 40)
            if ids:
                grads = rng.standard_normal((len(ids), DIM)).astype(np.float32)
                conn.execute("SELECT embed_update('tok', ?, ?, 0.5)",
                             ("[%s]" % ",".join(map(str, ids)), to_blob(grads)))
        elif op == 4:
            ids = some_ids(conn, 1)
            if ids:
                conn.execute("SELECT embed_update(id, ?, 1.0) FROM tok "
                             "WHERE id = ?", (vec(), ids[0]))
        elif op == 5:
            ids = some_ids(conn, 1)
            if ids:
                next_id[0] += 1
                conn.execute("UPDATE tok SET id = ? WHERE id = ?",
                             (next_id[0], ids[0]))
        elif op == 6:
            # fails on its second row: the first must not stay
            ids = some_ids(conn, 1)
            if ids:
                next_id[0] += 1
                with pytest.raises(sqlite3.IntegrityError):
                    conn.execute("INSERT INTO tok(id, vector) VALUES (?, ?), "
                                 "(?, ?)", (next_id[0], vec(), ids[0], vec()))
        else:
            rows = [(next_id[0] + j + 1, vec()) for j in range(30)]
            next_id[0] += 31
            conn.executemany("INSERT INTO tok(id, vector) VALUES (?, ?)", rows)
        done["writes"] += 1

    old_reader = None
    for step in range(steps):
        n = pyr.randrange(3)
        name, conn, st = names[n], conns[n], state[names[n]]
        action = pyr.random()
        try:
            if not st["txn"] and action < 0.15:
                conn.execute("BEGIN IMMEDIATE")
                st["txn"] = True
            elif st["txn"] and action < 0.25:
                conn.execute("COMMIT")
                st.update(txn=False, savepoints=0)
            elif st["txn"] and action < 0.32:
                conn.execute("ROLLBACK")
                st.update(txn=False, savepoints=0)
            elif st["txn"] and action < 0.40:
                conn.execute("SAVEPOINT sp")
                st["savepoints"] += 1
            elif st["txn"] and st["savepoints"] and action < 0.47:
                conn.execute("ROLLBACK TO sp")
            elif st["txn"] and st["savepoints"] and action < 0.50:
                conn.execute("RELEASE sp")
                st["savepoints"] -= 1
            elif journal == "wal" and action < 0.55 and name == "C" \
                    and not st["txn"]:
                if old_reader is None:
                    conn.execute("BEGIN")
                    conn.execute("SELECT count(*) FROM tok_vectors").fetchone()
                    old_reader = step
                    st["txn"] = "read"
            elif st["txn"] == "read":
                if step - old_reader > 25:
                    conn.execute("COMMIT")
                    st["txn"] = False
                    old_reader = None
            else:
                write(conn)
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) and "busy" not in str(e):
                raise
            done["busy"] += 1
        for m, c in enumerate(conns):
            if state[names[m]]["txn"] is False:
                # an autocommit search: its own read transaction
                pass
            check_search(c, rng, f"{journal} step {step} conn {names[m]}",
                         extra=extra)
            done["searches"] += 1
    for c in conns:
        if not c.in_transaction:
            continue
        c.execute("ROLLBACK")
    for c in conns:
        c.close()
    return done


@pytest.mark.parametrize("indexed", [False, True], ids=["copy", "ivf"])
@pytest.mark.parametrize("journal", ["wal", "delete"])
def test_random_interleavings_match_brute_force(tmp_path, journal, indexed):
    """ivf: the same interleavings on an index=ivf table (README
    "Approximate search"), with build-index among the writes."""
    seed = (21 if indexed else 11) + (journal != "wal")
    done = run_interleaving(str(tmp_path / "live.db"), journal, steps=350,
                            seed=seed, indexed=indexed)
    assert done["writes"] > 100 and done["searches"] > 1000, done


def test_own_uncommitted_writes_and_savepoints(tmp_path):
    path = str(tmp_path / "own.db")
    a = open_conn(path)
    a.execute("PRAGMA journal_mode=wal")
    a.execute("CREATE VIRTUAL TABLE tok USING embedding(dim=2, metric=l2)")
    a.execute("INSERT INTO tok(id, vector) VALUES (1, '[0, 0]'), "
              "(2, '[10, 10]')")
    b = open_conn(path)
    near = lambda c: c.execute(  # noqa: E731
        "SELECT id FROM tok WHERE vector MATCH '[5, 5]' AND k = 1").fetchone()
    assert near(a) == (1,) and near(b) == (1,)
    a.execute("BEGIN")
    a.execute("UPDATE tok SET vector = '[5, 5]' WHERE id = 2")
    assert near(a) == (2,), "a search sees its own uncommitted write"
    assert near(b) == (1,), "others do not see it"
    a.execute("SAVEPOINT s")
    a.execute("INSERT INTO tok(id, vector) VALUES (3, '[5, 5.1]')")
    a.execute("DELETE FROM tok WHERE id = 2")
    assert near(a) == (3,)
    a.execute("ROLLBACK TO s")
    assert near(a) == (2,), "ROLLBACK TO leaves nothing stale"
    a.execute("ROLLBACK")
    assert near(a) == (1,), "ROLLBACK leaves nothing stale"
    a.execute("SELECT embed_update('tok', 1, '[-1, -1]', 1.0)")
    assert near(b) == (1,) and near(a) == (1,)
    a.execute("SELECT embed_update('tok', 2, '[5, 5]', 1.0)")  # 2 -> [5, 5]
    assert near(b) == (2,), "another connection's commit is seen"
    a.close()
    b.close()


def test_a_failed_log_write_fails_the_write_and_changes_nothing(tmp_path):
    path = str(tmp_path / "fail.db")
    c = open_conn(path)
    c.execute("CREATE VIRTUAL TABLE tok USING embedding(dim=2, metric=l2)")
    c.execute("INSERT INTO tok(id, vector) VALUES (1, '[0, 0]')")
    c.execute("CREATE TRIGGER nolog BEFORE INSERT ON tok_log "
              "BEGIN SELECT RAISE(ABORT, 'the log is full'); END")
    before = c.execute("SELECT id, vector FROM tok_vectors").fetchall()
    with pytest.raises(sqlite3.DatabaseError, match="the log is full"):
        c.execute("SELECT embed_update('tok', 1, '[1, 1]', 1.0)")
    with pytest.raises(sqlite3.DatabaseError, match="the log is full"):
        c.execute("INSERT INTO tok(id, vector) VALUES (2, '[3, 3]')")
    assert not c.in_transaction
    assert c.execute("SELECT id, vector FROM tok_vectors").fetchall() == before
    c.execute("DROP TRIGGER nolog")
    c.close()


def test_a_table_without_a_log_searches_the_table(tmp_path):
    """Tables made before the change log (no tok_log, no layout row) still
    search exactly, by reading the table, and take writes."""
    path = str(tmp_path / "old.db")
    c = open_conn(path)
    c.execute(f"CREATE VIRTUAL TABLE tok USING embedding(dim={DIM}, "
              "metric=l2, num_embeddings=4, seed=3)")
    c.execute("DROP TABLE tok_log")
    c.execute("DELETE FROM tok_config WHERE key IN ('layout', 'instance')")
    c.close()
    c = open_conn(path)
    c.execute("UPDATE tok SET vector = ? WHERE id = 2", (to_blob([9] * DIM),))
    c.execute("SELECT embed_update('tok', 3, ?, 1.0)", (to_blob([-9] * DIM),))
    rng = np.random.default_rng(5)
    for _ in range(20):
        check_search(c, rng, "no log")
    assert c.execute("SELECT count(*) FROM sqlite_schema WHERE name = "
                     "'tok_log'").fetchone() == (0,)
    c.close()


MEMORY_PROBE = r"""
import sqlite3, sys
ext, path, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096
def conn():
    c = sqlite3.connect(path, isolation_level=None)
    c.enable_load_extension(True); c.load_extension(ext)
    c.execute("PRAGMA cache_size=0")
    return c
q = bytes(256 * 4)
conns = [conn() for _ in range(n)]
base = rss()
conns[0].execute("SELECT id FROM tok WHERE vector MATCH ? AND k = 5", (q,)).fetchall()
one = rss()
for c in conns[1:]:
    c.execute("SELECT id FROM tok WHERE vector MATCH ? AND k = 5", (q,)).fetchall()
more = rss()
for c in conns:
    c.close()
gone = rss()
print(base, one, more, gone)
"""


def test_connections_of_a_process_share_one_copy(tmp_path):
    path = str(tmp_path / "mem.db")
    rows, dim = 20000, 256
    c = open_conn(path)
    c.execute(f"CREATE VIRTUAL TABLE tok USING embedding(dim={dim})")
    data = np.random.default_rng(3).standard_normal((rows, dim)).astype("<f4")
    c.execute("BEGIN")
    c.executemany("INSERT INTO tok(id, vector) VALUES (?, ?)",
                  ((i, data[i].tobytes()) for i in range(rows)))
    c.execute("COMMIT")
    c.close()
    out = subprocess.run([sys.executable, "-c", MEMORY_PROBE, EXT, path, "4"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    base, one, more, gone = map(int, out.stdout.split())
    copy = rows * dim * 4
    assert one - base >= 0.8 * copy, (base, one)  # the copy was built
    if "libasan" in os.environ.get("LD_PRELOAD", ""):
        return  # AddressSanitizer's redzones and quarantine skew the RSS
    assert more - one <= 0.15 * copy, \
        f"3 more connections added {(more - one) / copy:.0%} of one copy"
    assert one - gone >= 0.8 * copy, "the copy is freed with the last one"
